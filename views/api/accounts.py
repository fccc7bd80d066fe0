"""Accounts: registration, API tokens, the signed-in user, their password, ledger and
vouchers."""
from __future__ import annotations

from flask import current_app, g, jsonify, request, session
from flask_login import current_user, logout_user

from services.accounts import credits, passwords, signin, users, vouchers
from services.accounts.links import pending_email
from services.accounts.passwords import MIN_PASSWORD
from services.core.errors import ValidationError
from views.api.common import body, bp, listing, paging, public
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref
from views.auth import end_this_session, link_base, log_in
from views.reauth import mark_recent_auth, require_for_new_token


def _bearer_token_id() -> str | None:
    if getattr(g, "auth_via", None) != "bearer":
        return None
    token = signin.api_token_for(request.headers.get("Authorization", "")[7:].strip())
    return token.id if token else None


def _session_key() -> str | None:
    """This browser sign-in's key (None for a bearer token)."""
    if getattr(g, "auth_via", None) == "bearer":
        return None
    return session.get("_user_id")


def _renew_session(user) -> None:
    """After the auth epoch moved on, sign this browser session in again with it (the
    same sign-in: its row and secret stay)."""
    key = signin.renewed_session_key(user, _session_key())
    if key is None:
        return
    remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    log_in(user, key, remember)
    mark_recent_auth()


@public
@bp.post("/auth/register")
def register():
    data = body()
    user = users.register_user(data.get("username"), data.get("email"), data.get("password"),
                               invite=data.get("invite"), address=request.remote_addr,
                               link_base=link_base())
    notes = [users.WAITING_FOR_APPROVAL] if user.pending else []
    if user.held_tokens:
        notes.append(f"Confirm your email to get your {user.held_tokens} starting tokens: "
                     f"we sent a link to {user.email}.")
    created = {**user.to_dict(), "held_tokens": user.held_tokens or 0}
    if notes:
        created["message"] = " ".join(notes)
    return jsonify(created), 201


@public
@bp.post("/auth/tokens")
def create_token():
    data = body()
    if current_user.is_authenticated and "password" not in data:
        user = current_user
        require_for_new_token(user)
    else:
        user = signin.authenticate(data.get("login"), data.get("password"),
                                   address=request.remote_addr,
                                   device_cookie=request.cookies.get(signin.DEVICE_COOKIE))
    token, secret = signin.create_api_token(user, data.get("name"))
    return jsonify({**token.to_dict(), "token": secret}), 201


@bp.get("/auth/tokens")
def list_tokens():
    items = [t.to_dict() for t in signin.list_api_tokens(current_user)]
    return listing(items, len(items), 0, len(items))


@bp.delete("/auth/tokens/<token_id>")
def revoke_token(token_id: str):
    signin.revoke_api_token(current_user, token_id)
    return "", 204


@bp.post("/auth/reauth")
def reauth():
    """Enter the password again: staff actions that need a recent sign-in may go."""
    passwords.check_password(current_user, body().get("password"))
    mark_recent_auth()
    return "", 204


def _me_dict(user) -> dict:
    """The user, with the new email waiting for its confirmation link (or null)."""
    return {**user.to_dict(), "pending_email": pending_email(user)}


@bp.get("/me")
def me():
    return jsonify(_me_dict(current_user))


PROFILE_FIELDS = ("email", "first_name", "last_name", "mobile", "settings")


@bp.patch("/me")
def update_me():
    data = body()
    if not data:  # no body, or {}: nothing to change is a mistake worth saying
        raise ValidationError("body", "send a JSON object with at least one of the fields to change: "
                                      + ", ".join(PROFILE_FIELDS))
    unknown = set(data) - set(PROFILE_FIELDS)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a profile field (" + ", ".join(PROFILE_FIELDS) + ")")
    return jsonify(_me_dict(users.update_profile(current_user, data, link_base=link_base())))


@bp.delete("/me")
def delete_me():
    users.delete_own_account(current_user._get_current_object(), body().get("password"))
    if getattr(g, "auth_via", None) != "bearer":
        session.clear()
        logout_user()  # after clear(): its mark deletes the remember-me cookie
    return "", 204


@bp.delete("/me/sessions")
def end_my_sessions():
    """Sign out everywhere: every browser sign-in of this user ends (this one too, when
    the request comes from a browser); API tokens stay."""
    ended = signin.end_all_sessions(current_user._get_current_object())
    if _session_key() is not None:
        end_this_session()
    return jsonify({"ended": ended})


@bp.post("/me/password")
def change_password():
    data = body()
    keep = data.get("keep_sessions", False)
    if not isinstance(keep, bool):
        raise ValidationError("keep_sessions", "must be true or false")
    user = users.change_password(current_user._get_current_object(), data.get("current_password"),
                                 data.get("new_password"), keep_sessions=keep,
                                 keep_token_id=_bearer_token_id(), keep_session_key=_session_key())
    _renew_session(user)
    return "", 204


@bp.post("/me/redeem")
def redeem():
    voucher = vouchers.redeem_limited(current_user, body().get("code"))
    user = current_user._get_current_object()
    return jsonify({**user.to_dict(), "redeemed": voucher.tokens})


@bp.get("/me/ledger")
def my_ledger():
    offset, limit = paging()
    rows, total = credits.ledger_page(current_user, offset, limit)
    return listing([r.to_dict() for r in rows], total, offset, limit)


_STR = {"type": "string"}
# The limits services/accounts/users.py and passwords.py enforce (a 422 naming the field).
USERNAME = {"type": "string", "pattern": r"^\s*[A-Za-z0-9_.-]{3,40}\s*$"}
SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")  # email_validator refuses them
EMAIL = {"type": "string", "format": "email", "maxLength": 254,
         "not": {"pattern": r"\.(%s)$" % "|".join("".join(f"[{c.upper()}{c}]" for c in name)
                                                  for name in SPECIAL_USE)},
         "description": "not at a special-use domain (" + ", ".join("." + n for n in SPECIAL_USE) + ")"}
PASSWORD_RULE = "not a well-known password, nor a run like aaaaaaaaaa or 0123456789"
NEW_PASSWORD = {"type": "string", "minLength": MIN_PASSWORD, "maxLength": 1024, "description": PASSWORD_RULE}
NAME = {"type": ["string", "null"], "maxLength": 80, "pattern": "^[^\\u0000-\\u001f]*$"}
MOBILE = {"type": ["string", "null"], "pattern": r"^(\+?[0-9][0-9 ()./-]{4,29}[0-9()./-])?$",
          "description": "digits, spaces and an optional leading +; empty or null: none"}
VOUCHER_CODE = {"type": "string", "pattern": "^([Dd][Dd]-?)?[A-Za-z0-9]{4}(-?[A-Za-z0-9]{4}){3}$",
                "description": "as printed, like DD-ABCD-EFGH-JKLM-NPQR (any case, dashes optional)"}
CURRENT_PASSWORD = {"type": "string", "minLength": 1,
                    "description": "your password (wrong: a 422 naming the field; many wrong: 429)"}
OPENAPI_SCHEMAS = {
    "ApiToken": {"type": "object", "properties": {
        "id": _STR, "name": _STR, "created_at": _STR, "last_used_at": {"type": ["string", "null"]}}},
    "NewToken": {"type": "object", "properties": {
        "id": _STR, "name": _STR, "created_at": _STR, "token": _STR}},
    "LedgerRow": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "kind": {"enum": ["starting_grant", "debit", "refund", "staff_grant", "staff_revoke",
                          "voucher", "allowance"]},
        "delta": {"type": "integer"}, "balance_after": {"type": "integer"},
        "task_id": {"type": ["string", "null"]}, "note": _STR, "created_at": _STR}},
}

OPENAPI = {
    "/auth/register": {"post": op("Create an account, as the server's registration mode allows "
                                  "(`open`, `invite`: `invite` is a voucher code from staff, "
                                  "`approval`: the account is `pending` until staff approve it, "
                                  "`closed`: 403). With mail configured the starting tokens "
                                  "(`held_tokens`) come when the email is confirmed. New accounts "
                                  "are limited per address and network (429 with Retry-After; 503 "
                                  "while the rate-limit store is down).",
                                  answer("The new user, with `message` and `held_tokens` where they apply",
                                         ref("User"), "201"),
                                   body={"type": "object", "required": ["username", "email", "password"],
                                         "properties": {"username": USERNAME, "email": EMAIL,
                                                        "password": NEW_PASSWORD | {
                                                            "description": PASSWORD_RULE + ", nor your "
                                                                           "username or email"},
                                                        # (only `invite` mode reads it)
                                                        "invite": ref("JsonValue") | {"description":
                                                                  "`invite` mode: the invite code, as "
                                                                  "printed (DD-ABCD-EFGH-JKLM-NPQR); "
                                                                  "other modes ignore it"}}},
                                   public=True, error_codes=(400, 403, 409, 422, 429, 503))},
    "/auth/tokens": {
        "post": op("Create a personal API token (shown once). Failed attempts slow down the "
                   "account and address that made them (429 with Retry-After); 503 while the "
                   "rate-limit store is down.",
                    answer("The token", ref("NewToken"), "201"),
                    body={"type": "object", "required": ["name"],
                          "description": "`login` (username or email) and `password`; signed in "
                                         "(a session or a token) without `password`: for yourself",
                          "properties": {"login": ref("JsonValue"), "password": {"type": "string"},
                                         "name": {"type": "string", "minLength": 1, "maxLength": 80}},
                          # (signed in without a password, `login` is not read)
                          "if": {"required": ["password"]},
                          "then": {"properties": {"login": {"type": "string"}}}},
                    public=True, error_codes=(401, 403, 422, 429, 503)),
        "get": op("List your API tokens", answer("Tokens", list_of("ApiToken"))),
    },
    "/auth/tokens/{id}": {"delete": op("Revoke an API token", {"204": {"description": "Revoked"}},
                                        params=[path_id("id")], error_codes=(401, 404))},
    "/auth/reauth": {"post": op("Enter your password again (staff actions need a sign-in from "
                                "the last 15 minutes)", {"204": {"description": "Confirmed"}},
                                 body={"type": "object", "required": ["password"],
                                       "properties": {"password": CURRENT_PASSWORD}},
                                 error_codes=(401, 422, 429, 503))},
    "/me": {"get": op("You", answer("The signed-in user", ref("User"))),
            "patch": op("Change your profile and settings. With mail configured, a new email "
                        "is not changed at once: a confirmation link goes to it and `pending_email` "
                        "says which address waits (429 when too many were sent)",
                        answer("The user", ref("User")),
                         body={"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
                             "email": EMAIL | {"description": "not another account's"},
                             "first_name": NAME, "last_name": NAME, "mobile": MOBILE,
                             "settings": {
                                 "type": "object", "additionalProperties": False,
                                 "properties": {"cancel_on_leave": {"type": "boolean"},
                                                "previews": {"type": "boolean"}}}}},
                         error_codes=(400, 401, 422, 429, 503)),
            "delete": op("Delete your account, its images and their files",
                          {"204": {"description": "Deleted"}},
                          body={"type": "object", "required": ["password"], "properties": {"password": _STR}},
                          error_codes=(401, 409, 422, 429, 503))},
    "/me/sessions": {"delete": op("Sign out everywhere: every browser sign-in of yours ends "
                                  "(this one too when the request comes from a browser; API "
                                  "tokens stay)",
                                  answer("How many sign-ins ended", {
                                      "type": "object", "required": ["ended"],
                                      "properties": {"ended": {"type": "integer"}}}),
                                  error_codes=(400, 401))},
    "/me/password": {"post": op("Change your password. Other sessions are signed out and other "
                                "API tokens revoked unless keep_sessions is true.",
                                 {"204": {"description": "Changed"}},
                                 body={"type": "object", "required": ["current_password", "new_password"],
                                       "properties": {"current_password": CURRENT_PASSWORD,
                                                      "new_password": NEW_PASSWORD | {
                                                          "description": PASSWORD_RULE + ", nor your "
                                                                         "username or email"},
                                                      "keep_sessions": {"type": "boolean", "default": False}}},
                                 error_codes=(400, 401, 422, 429, 503))},
    "/me/redeem": {"post": op("Redeem a voucher code", answer("The user, with `redeemed`: the tokens added",
                                                               ref("User")),
                               body={"type": "object", "required": ["code"], "properties": {"code": VOUCHER_CODE}},
                               error_codes=(401, 404, 409, 422, 429))},
    "/me/ledger": {"get": op("Your ledger: every change of your balance, newest first",
                              answer("Ledger rows", list_of("LedgerRow")), params=PAGING,
                              error_codes=(401, 422))},
}
