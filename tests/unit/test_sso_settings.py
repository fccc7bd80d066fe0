"""The single sign-on settings are checked at start (config.py check_sso): a provider
needs both its discovery URL and client id, OpenID Connect needs the openid scope, and
passwords cannot be turned off with no provider to sign in with instead."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from config import check_sso

GOOGLE = "https://accounts.google.com/.well-known/openid-configuration"


def sso_settings(**changes) -> SimpleNamespace:
    settings = {"OIDC_DISCOVERY_URL": GOOGLE, "OIDC_CLIENT_ID": "client", "OIDC_SCOPES": "openid email profile",
                "SSO_ONLY": False}
    return SimpleNamespace(**{**settings, **changes})


@pytest.mark.parametrize("changes, words", [
    ({"OIDC_CLIENT_ID": ""}, "go together"),
    ({"OIDC_DISCOVERY_URL": ""}, "go together"),
    ({"OIDC_SCOPES": "email profile"}, "openid scope"),
    ({"OIDC_DISCOVERY_URL": "", "OIDC_CLIENT_ID": "", "SSO_ONLY": True}, "needs a provider"),
])
def test_settings_that_would_lock_people_out_stop_the_start(changes, words):
    with pytest.raises(ValueError, match=words):
        check_sso(sso_settings(**changes))


@pytest.mark.parametrize("changes", [{}, {"SSO_ONLY": True}, {"OIDC_DISCOVERY_URL": "", "OIDC_CLIENT_ID": ""}])
def test_whole_settings_pass(changes):
    check_sso(sso_settings(**changes))
