"""Accounts: registration, API tokens, the signed-in user."""
from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from services import accounts
from services.openapi import answer, list_of, op, path_id, ref
from views.api import body, bp, listing


@bp.post("/auth/register")
def register():
    data = body()
    user = accounts.register_user(data.get("username"), data.get("email"), data.get("password"))
    return jsonify(user.to_dict()), 201


@bp.post("/auth/tokens")
def create_token():
    data = body()
    if current_user.is_authenticated and "password" not in data:
        user = current_user
    else:
        user = accounts.authenticate(data.get("login"), data.get("password"))
    token, secret = accounts.create_api_token(user, data.get("name"))
    return jsonify({**token.to_dict(), "token": secret}), 201


@bp.get("/auth/tokens")
def list_tokens():
    items = [t.to_dict() for t in accounts.list_api_tokens(current_user)]
    return listing(items, len(items), 0, len(items))


@bp.delete("/auth/tokens/<token_id>")
def revoke_token(token_id: str):
    accounts.revoke_api_token(current_user, token_id)
    return "", 204


@bp.get("/me")
def me():
    return jsonify(current_user.to_dict())


@bp.patch("/me")
def update_me():
    return jsonify(accounts.update_profile(current_user, body()).to_dict())


# --- generation -------------------------------------------------------------------


OPENAPI = {
    "/auth/register": {"post": op("Create an account", answer("The new user", ref("User"), "201"),
                                   body={"type": "object", "required": ["username", "email", "password"],
                                         "properties": {k: {"type": "string"} for k in ("username", "email", "password")}},
                                   public=True, error_codes=(400, 403, 409, 422))},
    "/auth/tokens": {
        "post": op("Create a personal API token (shown once)",
                    answer("The token", ref("NewToken"), "201"),
                    body={"type": "object", "required": ["login", "password", "name"],
                          "properties": {k: {"type": "string"} for k in ("login", "password", "name")}},
                    public=True, error_codes=(401, 422)),
        "get": op("List your API tokens", answer("Tokens", list_of("ApiToken"))),
    },
    "/auth/tokens/{id}": {"delete": op("Revoke an API token", {"204": {"description": "Revoked"}},
                                        params=[path_id("id")], error_codes=(401, 404))},
    "/me": {"get": op("You", answer("The signed-in user", ref("User"))),
            "patch": op("Change your settings", answer("The user", ref("User")),
                         body={"type": "object", "properties": {"settings": {
                             "type": "object", "properties": {"cancel_on_leave": {"type": "boolean"},
                                                              "previews": {"type": "boolean"}}}}},
                         error_codes=(400, 401, 422))},
}
