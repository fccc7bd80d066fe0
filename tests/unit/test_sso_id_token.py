"""The ID token's checks (services/accounts/sso.py _id_token_claims, Authlib's
CodeIDToken on the provider's published keys): a token for this client, from the
provider's issuer, with this sign-in's nonce passes; one meant for another client (its
audience), from another issuer, with another nonce, or signed by another key is refused,
saying which. (The whole flow against a real provider: tests/integration/test_sso.py.)"""
from __future__ import annotations

import time

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.accounts import sso

ISSUER = "https://id.school.example"
CLIENT = "daydream-client"
NONCE = "this-sign-ins-nonce"
DOCUMENT = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/unit-test-keys",
            "id_token_signing_alg_values_supported": ["RS256"]}
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})


@pytest.fixture
def sso_context(monkeypatch):
    # The provider's published keys, as if fetched from its jwks_uri.
    monkeypatch.setitem(sso._key_sets, DOCUMENT["jwks_uri"], {"keys": [KEY.as_dict(private=False)]})
    app = Flask(__name__)
    app.config.update(OIDC_CLIENT_ID=CLIENT, OIDC_NAME="Test School")
    with app.app_context():
        yield


def id_token(key=KEY, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "pia", "nonce": NONCE, "iat": now, "exp": now + 300, **changes}
    return {"id_token": jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key), "access_token": None}


def test_a_token_for_this_client_and_sign_in_passes(sso_context):
    claims = sso._id_token_claims(DOCUMENT, id_token(), NONCE)
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("pia", CLIENT, ISSUER)


@pytest.mark.parametrize("changes, code, words", [
    ({"aud": "another-client"}, "sso_aud", "meant for another client"),
    ({"aud": ["another-client", "a-third"]}, "sso_aud", "meant for another client"),
    ({"iss": "https://elsewhere.example"}, "sso_iss", "comes from another issuer"),
    ({"nonce": "another-sign-ins-nonce"}, "sso_nonce", "nonce does not match"),
    ({"exp": int(time.time()) - 3600}, "sso_exp", "has expired"),
])
def test_a_token_for_another_client_issuer_nonce_or_time_is_refused(sso_context, changes, code, words):
    with pytest.raises(sso.SignOnFailed, match=words) as refused:
        sso._id_token_claims(DOCUMENT, id_token(**changes), NONCE)
    assert refused.value.code == code


def test_a_token_signed_by_another_key_is_refused(sso_context):
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(sso.SignOnFailed, match="not signed by") as refused:
        sso._id_token_claims(DOCUMENT, id_token(key=forger), NONCE)
    assert refused.value.code == "sso_id_token"
