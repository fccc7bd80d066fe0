"""Single sign-on with OpenID Connect (issue 27), through Authlib: the provider's
discovery document (its issuer must be the address it was found at), the
Authorization Code flow with PKCE (S256), state and nonce, the ID token checked by
Authlib's CodeIDToken (signature by the provider's keys, issuer, audience, nonce,
expiry), and the account it signs in to.

The flow is two calls: `start` gives the provider's address to send the browser to and
the pending sign-in (state, nonce, PKCE verifier) that the caller keeps in the session;
`finish` takes that pending sign-in back with the provider's answer and returns the
account. Accounts are found by (issuer, subject); a first sign-in makes one, or links
an account of the same email when the provider says the email is verified. The groups
claim joins classes (classes.sync_sso_groups) and DAYDREAM_OIDC_STAFF_GROUP makes the
account staff (only ever granted here, never taken away).

Settings: config.py's OIDC_* and SSO_*; signin.py refuses passwords under SSO_ONLY."""
from __future__ import annotations

import secrets
import time
import unicodedata
from dataclasses import dataclass

import requests
import sqlalchemy as sa
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token, is_secure_transport
from authlib.common.urls import add_params_to_uri
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Role, User
from services.accounts import classes, credits, names
from services.accounts.signin import WAITING_FOR_APPROVAL
from services.core import audit
from services.core.errors import ServiceError

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
HTTP_TIMEOUT = 10  # seconds, for every call to the provider
DISCOVERY_TTL = 3600  # a discovery document is fetched again after this long
PENDING_TTL = 600  # a sign-in must come back from the provider within this long
# ID tokens signed with the provider's published (asymmetric) keys only.
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY = 120  # seconds of clock difference allowed on iat/exp
UNUSABLE_PASSWORD = "!sso:"  # the start of the password hash of an account made by SSO


class SignOnFailed(ServiceError):
    """The provider's answer does not belong to this sign-in (state, nonce, issuer,
    audience, signature): nothing is signed in; starting again helps."""
    status = 400
    code = "sso_failed"


class SignOnRefused(ServiceError):
    """The sign-in was genuine, but it may not open an account here."""
    status = 403
    code = "sso_refused"


class ProviderUnavailable(ServiceError):
    """The provider did not answer, or answered something unusable."""
    status = 502
    code = "sso_provider_unavailable"


@dataclass
class SignOn:
    user: User
    id_token: str
    next_url: str | None


# --- settings and the provider's discovery document ----------------------------------------

def configured() -> bool:
    return bool(current_app.config.get("OIDC_DISCOVERY_URL") and current_app.config.get("OIDC_CLIENT_ID"))


def provider_name() -> str:
    """What the button says: "Sign in with <this>"."""
    return current_app.config.get("OIDC_NAME") or "school account"


_documents: dict[str, tuple[float, dict]] = {}  # discovery URL -> (fetched at, checked document)
_key_sets: dict[str, dict] = {}  # jwks_uri -> the provider's published keys


def _get_json(url: str, what: str, **kwargs) -> dict:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT, **kwargs)
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"{provider_name()} did not answer with its {what} ({exc.__class__.__name__}); "
                                  "try again in a moment.")
    if not isinstance(data, dict):
        raise ProviderUnavailable(f"{provider_name()} answered its {what} with something other than a JSON object.")
    return data


def provider() -> dict:
    """The provider's discovery document, fetched at most once an hour and checked: its
    issuer is the address it was found at (OpenID Connect Discovery 1.0, section 4.3),
    and every endpoint is https (http only on this machine's loopback, for tests)."""
    url = current_app.config["OIDC_DISCOVERY_URL"]
    cached = _documents.get(url)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    if not is_secure_transport(url):
        raise ProviderUnavailable("DAYDREAM_OIDC_DISCOVERY_URL must be an https address (http only for a "
                                  "provider on this machine).")
    document = _get_json(url, "discovery document")
    issuer = document.get("issuer")
    expected = url.removesuffix(DISCOVERY_SUFFIX)
    if not isinstance(issuer, str) or issuer.rstrip("/") != expected.rstrip("/"):
        raise ProviderUnavailable(f"The discovery document at {url} names the issuer {issuer!r}, not {expected!r} "
                                  "where it was found: check DAYDREAM_OIDC_DISCOVERY_URL.")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(name), str) or not is_secure_transport(document[name]):
            raise ProviderUnavailable(f"The discovery document at {url} has no usable {name} (https).")
    for name in ("userinfo_endpoint", "end_session_endpoint"):
        if not (isinstance(document.get(name), str) and is_secure_transport(document[name])):
            document.pop(name, None)
    _documents[url] = (time.monotonic(), document)
    return document


def _key_set(document: dict, refresh: bool = False) -> KeySet:
    uri = document["jwks_uri"]
    if refresh or uri not in _key_sets:
        _key_sets[uri] = _get_json(uri, "signing keys")
    try:
        return KeySet.import_key_set(_key_sets[uri])
    except (JoseError, ValueError, KeyError, TypeError):
        raise ProviderUnavailable(f"{provider_name()}'s signing keys could not be read.")


def _client(document: dict, redirect_uri: str) -> OAuth2Session:
    """Authlib's OAuth 2 client for this provider: PKCE with S256, and the client's
    secret sent as the provider says it takes it (HTTP Basic unless it lists only POST)."""
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_basic" if "client_secret_basic" in methods or "client_secret_post" not in methods \
        else "client_secret_post"
    config = current_app.config
    return OAuth2Session(config["OIDC_CLIENT_ID"], config.get("OIDC_CLIENT_SECRET") or None,
                         scope=config.get("OIDC_SCOPES") or "openid email profile", redirect_uri=redirect_uri,
                         code_challenge_method="S256", token_endpoint_auth_method=method,
                         default_timeout=HTTP_TIMEOUT)


# --- the flow ------------------------------------------------------------------------------

def start(redirect_uri: str, next_url: str | None = None) -> tuple[str, dict]:
    """The provider's address to send the browser to, and the pending sign-in to keep
    in the session until it comes back (finish)."""
    document = provider()
    pending = {"state": generate_token(32), "nonce": generate_token(32), "verifier": generate_token(64),
               "next": next_url, "at": int(time.time())}
    with _client(document, redirect_uri) as client:
        url, _state = client.create_authorization_url(document["authorization_endpoint"], state=pending["state"],
                                                      code_verifier=pending["verifier"], nonce=pending["nonce"])
    return url, pending


def finish(pending: dict | None, answer: dict, redirect_uri: str) -> SignOn:
    """The account the provider's answer signs in to. `pending`: what start() gave for
    the answer's state (None when the session holds no sign-in of that state); `answer`:
    the query of the redirect back (code, state, iss, or error)."""
    if not pending or not secrets.compare_digest(str(answer.get("state") or "").encode(),
                                                 str(pending.get("state", "")).encode()) \
            or time.time() - pending.get("at", 0) > PENDING_TTL:
        raise SignOnFailed("This sign-in did not start in this browser, or took too long (its state does not "
                           "match): start again.", code="sso_state")
    if answer.get("error"):
        detail = str(answer.get("error_description") or answer["error"])[:200]
        raise SignOnRefused(f"{provider_name()} did not sign you in: {detail}", code="sso_provider_error")
    document = provider()
    if answer.get("iss") is not None and answer["iss"] != document["issuer"]:  # RFC 9207
        raise SignOnFailed(f"The answer came from another issuer ({str(answer['iss'])[:200]}), not "
                           f"{document['issuer']}: sign-in refused.", code="sso_issuer")
    code = answer.get("code")
    if not isinstance(code, str) or not code:
        raise SignOnFailed("The provider's answer has no authorization code: start again.", code="sso_no_code")
    token = _exchange(document, code, pending["verifier"], redirect_uri)
    claims = _id_token_claims(document, token, pending["nonce"])
    claims = {**_userinfo(document, token, claims), **claims}
    user = account_for(document["issuer"], claims)
    return SignOn(user, token["id_token"], pending.get("next"))


def _exchange(document: dict, code: str, verifier: str, redirect_uri: str) -> dict:
    try:
        with _client(document, redirect_uri) as client:
            token = client.fetch_token(document["token_endpoint"], grant_type="authorization_code", code=code,
                                       code_verifier=verifier)
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{provider_name()} did not answer ({exc.__class__.__name__}); try again.")
    except (AuthlibBaseError, ValueError) as exc:
        raise SignOnFailed(f"{provider_name()} would not exchange the sign-in's code "
                           f"({getattr(exc, 'error', None) or exc.__class__.__name__}): start again.",
                           code="sso_token")
    if not isinstance(token.get("id_token"), str):
        raise SignOnFailed(f"{provider_name()} sent no ID token: is the openid scope asked for?", code="sso_token")
    return token


CLAIM_PROBLEMS = {
    "iss": "comes from another issuer than {issuer}",
    "aud": "is meant for another client than this server's",
    "azp": "is meant for another client than this server's",
    "nonce": "is not the answer to this sign-in (its nonce does not match)",
    "exp": "has expired",
    "iat": "has no valid issue time",
    "sub": "names no subject",
    "at_hash": "does not match its access token",
}


def _id_token_claims(document: dict, token: dict, nonce: str) -> dict:
    """The ID token's claims, once its signature (the provider's published keys), issuer,
    audience, nonce, expiry and access-token hash hold (Authlib's CodeIDToken)."""
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(algorithms=[alg for alg in offered if alg in SIGNING_ALGS] or ["RS256"],
                           strict_check_header=False)
    try:
        try:
            decoded = jwt.decode(token["id_token"], key=_key_set(document), registry=registry)
        except InvalidKeyIdError:  # the provider rolled its keys since they were fetched
            decoded = jwt.decode(token["id_token"], key=_key_set(document, refresh=True), registry=registry)
    except (JoseError, ValueError) as exc:
        raise SignOnFailed(f"The ID token is not signed by {provider_name()}'s keys ({exc.__class__.__name__}).",
                           code="sso_id_token")
    client_id = current_app.config["OIDC_CLIENT_ID"]
    claims = CodeIDToken(decoded.claims, decoded.header,
                         {"iss": {"essential": True, "values": [document["issuer"]]},
                          "aud": {"essential": True, "values": [client_id]}},
                         {"nonce": nonce, "client_id": client_id, "access_token": token.get("access_token")})
    try:
        claims.validate(leeway=CLOCK_LEEWAY)
    except ClaimError as exc:
        problem = CLAIM_PROBLEMS.get(exc.claim, f"has a bad {exc.claim} claim").format(issuer=document["issuer"])
        raise SignOnFailed(f"The ID token {problem}: sign-in refused.", code=f"sso_{exc.claim}")
    except JoseError as exc:
        raise SignOnFailed(f"The ID token is not valid ({exc.__class__.__name__}): sign-in refused.",
                           code="sso_id_token")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignOnFailed("The ID token names no subject: sign-in refused.", code="sso_sub")
    return dict(claims)


def _userinfo(document: dict, token: dict, claims: dict) -> dict:
    """The userinfo endpoint's claims, asked for only when the ID token lacks the email or
    the groups claim (some providers put them only there), and only when they are about
    the same subject. Nothing when there is none or it does not answer: the ID token's
    own claims decide then."""
    groups_claim = current_app.config.get("OIDC_GROUPS_CLAIM") or "groups"
    if "email" in claims and groups_claim in claims:
        return {}
    if not document.get("userinfo_endpoint") or not token.get("access_token"):
        return {}
    try:
        info = _get_json(document["userinfo_endpoint"], "userinfo",
                         headers={"Authorization": f"Bearer {token['access_token']}"})
    except ProviderUnavailable as exc:
        current_app.logger.warning("single sign-on: %s", exc.message)
        return {}
    return info if info.get("sub") == claims["sub"] else {}


def end_session_url(id_token: str | None, post_logout_redirect_uri: str) -> str | None:
    """The provider's sign-out address (RP-Initiated Logout), to offer after a sign-out
    here, or None when the provider has none (or cannot be reached now)."""
    if not configured():
        return None
    try:
        document = provider()
    except ServiceError:
        return None
    endpoint = document.get("end_session_endpoint")
    if not endpoint:
        return None
    params = {"client_id": current_app.config["OIDC_CLIENT_ID"],
              "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        params["id_token_hint"] = id_token
    return add_params_to_uri(endpoint, params)


# --- the account -------------------------------------------------------------------------

def account_for(issuer: str, claims: dict) -> User:
    """The account these (checked) claims sign in to: the one linked to (issuer, sub);
    else the one with the same email, linked now, when the provider says the email is
    verified; else a new one. Its classes follow the groups claim, and the staff group
    makes it staff. Deactivated and pending accounts are refused. Commits."""
    subject = claims["sub"]
    user = db.session.scalar(sa.select(User).where(User.sso_issuer == issuer, User.sso_subject == subject))
    if user is None:
        email = _email(claims)
        user = names.find_by_email(email)
        if user is None:
            user = _create_account(issuer, subject, email, claims)
        else:
            _link(user, issuer, subject, email, claims)
    _check_may_sign_in(user)
    _apply_groups(user, claims)
    return user


def _email(claims: dict) -> str:
    try:
        return validate_email(claims.get("email") if isinstance(claims.get("email"), str) else "",
                              check_deliverability=False).normalized
    except EmailNotValidError:
        raise SignOnRefused(f"{provider_name()} sent no usable email address for this account, so no account "
                            "can be made for it here: ask staff to have it send the email claim.",
                            code="sso_no_email")


def _email_verified(claims: dict) -> bool:
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _link(user: User, issuer: str, subject: str, email: str, claims: dict) -> None:
    """An existing account of the same email signs in with SSO from now on, when the
    provider vouches for the email: otherwise anyone who could set that address at the
    provider would take the account over."""
    if not _email_verified(claims):
        raise SignOnRefused(f"An account with the email {email} exists already, and {provider_name()} does not "
                            "say that this email is verified, so the two are not linked. Sign in with that "
                            "account's password, or ask staff.", code="sso_email_unverified")
    if user.sso_subject is not None:
        raise SignOnRefused(f"The account with the email {email} signs in with another {provider_name()} "
                            "already; ask staff.", code="sso_linked_elsewhere")
    _check_may_sign_in(user)
    user.sso_issuer, user.sso_subject = issuer, subject
    audit.record("users.sso_link", target=user, details={"issuer": issuer}, actor=user)
    db.session.commit()


def _check_may_sign_in(user: User) -> None:
    if user.pending:
        raise SignOnRefused(WAITING_FOR_APPROVAL, code="pending_approval")
    if not user.active:
        raise SignOnRefused("This account is deactivated; contact staff.", code="inactive")


def _create_account(issuer: str, subject: str, email: str, claims: dict) -> User:
    """A first sign-in: a new account (username from the claims, made unique; a
    password nobody knows), with the starting tokens registration gives."""
    user = User(username=_free_username(claims, email), email=email, role=Role.USER.value, tokens=0,
                password_hash=UNUSABLE_PASSWORD + secrets.token_urlsafe(24),
                tier=current_app.config.get("DEFAULT_TIER") or "free",
                first_name=_name_claim(claims, "given_name"), last_name=_name_claim(claims, "family_name"),
                sso_issuer=issuer, sso_subject=subject)
    try:
        db.session.add(user)
        db.session.flush()
        credits.grant_starting_tokens(user, max(0, int(current_app.config["STARTING_TOKENS"])))
        db.session.commit()
    except IntegrityError:  # the same person's first sign-in twice at once, or a name just taken
        db.session.rollback()
        found = db.session.scalar(sa.select(User).where(User.sso_issuer == issuer, User.sso_subject == subject))
        if found is None:
            raise SignOnFailed("The account could not be made just now: try again.", code="sso_conflict")
        return found
    return user


def _name_claim(claims: dict, name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or any(ord(ch) < 32 for ch in value):
        return ""
    return value.strip()[:80]


def _free_username(claims: dict, email: str) -> str:
    """preferred_username (its part before an @), else the email's local part, cut to
    the letters a username may hold (users.USERNAME_RE), with a number added until no
    account has it."""
    preferred = claims.get("preferred_username")
    source = preferred if isinstance(preferred, str) and preferred.strip() else email
    source = unicodedata.normalize("NFKD", source.split("@", 1)[0])
    base = "".join(ch for ch in source if ch.isascii() and (ch.isalnum() or ch in "_.-"))[:34].strip(".-")
    if len(base) < 3:
        base = f"user-{base}" if base else "user"
    for number in range(1, 100):
        candidate = base if number == 1 else f"{base}{number}"
        if names.find_by_username(candidate) is None:
            return candidate
    return f"{base}-{secrets.token_hex(3)}"


def _groups(claims: dict) -> list[str] | None:
    """The groups claim as a list of names, or None when the claim is not there (the
    memberships stay as they are then: a provider may leave it out, as Entra ID does
    when a person has too many groups)."""
    value = claims.get(current_app.config.get("OIDC_GROUPS_CLAIM") or "groups")
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [group for group in value if isinstance(group, str)]
    return None


def _apply_groups(user: User, claims: dict) -> None:
    groups = _groups(claims)
    if groups is None:
        return
    staff_group = current_app.config.get("OIDC_STAFF_GROUP")
    if staff_group and staff_group in groups and not user.is_staff:
        audit.record("users.role", target=user, reason=f"in the {staff_group} group of {provider_name()}",
                     details={"from": user.role, "to": Role.STAFF.value}, actor=user)
        user.role = Role.STAFF.value
        db.session.commit()
    classes.sync_sso_groups(user, groups)
