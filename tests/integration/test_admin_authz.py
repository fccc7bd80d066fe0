"""Staff-only comes from the structure, not from each route: every rule of the staff
API blueprint (api.admin, views/api/common.py) and of the staff pages (admin,
views/admin/common.py), walked from app.url_map with each of its methods, is refused to a
stranger (401; a page sends them to sign in) and to a signed-in user who is not staff
(403), whether they come with a session cookie and its CSRF token or with an API token.
Signed-in only is the same: every rule of the studio, gallery and account pages
(views/access.py) sends a stranger to sign in, and back here afterwards."""
from __future__ import annotations

import re

from tests.helpers import unique
from tests.integration.helpers import ApiUser, csrf_from, make_staff, sign_in

STAFF_BLUEPRINTS = {"api.admin": "api", "admin": "page"}


def staff_routes(app) -> list[tuple[str, str, str]]:
    """(api|page, method, url) for every rule of the staff blueprints, each URL
    variable filled with a dummy value."""
    routes = []
    for rule in app.url_map.iter_rules():
        kind = STAFF_BLUEPRINTS.get(rule.endpoint.rpartition(".")[0])
        if kind is None:
            continue
        url = re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "nobody", rule.rule)
        routes += [(kind, method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(routes)


def send(client, method: str, url: str, headers: dict | None = None):
    return client.open(url, method=method, json={}, headers=headers or {})


def test_the_walk_covers_the_admin_api_the_staff_showcase_and_the_pages(idle_app):
    routes = staff_routes(idle_app)
    assert len(routes) > 10  # an empty or renamed blueprint fails here
    urls = {(method, url) for _kind, method, url in routes}
    assert ("PATCH", "/api/v1/admin/users/nobody") in urls
    assert ("POST", "/api/v1/showcase") in urls  # curation is staff-only; the listing is not
    assert ("GET", "/api/v1/showcase") not in urls
    assert ("GET", "/admin/queue") in urls


def test_a_stranger_is_asked_to_sign_in(idle_app):
    client = idle_app.test_client()
    wrong = []
    for kind, method, url in staff_routes(idle_app):
        response = send(client, method, url)
        if kind == "api":
            ok = response.status_code == 401 and response.get_json()["error"]["code"] == "not_signed_in"
        else:
            ok = response.status_code == 302 and "/login" in response.headers["Location"]
        if not ok:
            wrong.append(f"{method} {url}: {response.status_code}")
    assert not wrong, wrong


def test_a_signed_in_user_who_is_not_staff_is_refused_by_session(idle_app):
    client = idle_app.test_client()
    user = ApiUser(client, unique("plain"))
    csrf = sign_in(client, user.username, user.password)
    wrong = []
    for kind, method, url in staff_routes(idle_app):
        response = send(client, method, url, {"X-CSRFToken": csrf})
        ok = response.status_code == 403 and (
            kind == "page" or response.get_json()["error"]["code"] == "forbidden")
        if not ok:
            wrong.append(f"{method} {url}: {response.status_code}")
    assert not wrong, wrong
    assert client.get("/api/v1/me").get_json()["username"] == user.username  # still signed in


def test_a_signed_in_user_who_is_not_staff_is_refused_by_api_token(idle_app):
    user = ApiUser(idle_app.test_client(), unique("plain"))
    client = idle_app.test_client()  # no cookie: the token alone
    wrong = []
    for kind, method, url in staff_routes(idle_app):
        if kind != "api":
            continue
        response = send(client, method, url, user.headers)
        if response.status_code != 403 or response.get_json()["error"]["code"] != "forbidden":
            wrong.append(f"{method} {url}: {response.status_code}")
    assert not wrong, wrong


def test_staff_get_through(idle_app):
    """The same walk with a staff token: the blueprint lets them in (every GET without a
    URL variable answers 200)."""
    headers = make_staff(idle_app, unique("chief"))
    client = idle_app.test_client()
    gets = [url for kind, method, url in staff_routes(idle_app)
            if kind == "api" and method == "GET" and "nobody" not in url]
    assert len(gets) >= 5
    statuses = {url: send(client, "GET", url, headers).status_code for url in gets}
    assert set(statuses.values()) == {200}, statuses


def test_options_on_a_staff_page_is_refused_like_any_method(idle_app):
    """OPTIONS runs no view, but the staff check answers it as it answers a GET (it was
    a 500: the check asked an anonymous user whether it was staff)."""
    pages = sorted({url for kind, _method, url in staff_routes(idle_app) if kind == "page"})
    stranger = idle_app.test_client()
    for url in pages:
        response = stranger.options(url)
        assert response.status_code == 302, (url, response.status_code)
        assert response.headers["Location"] == f"/login?next={url}"
    client = idle_app.test_client()
    user = ApiUser(client, unique("plain"))
    sign_in(client, user.username, user.password)
    assert {url: client.options(url).status_code for url in pages} == dict.fromkeys(pages, 403)


SIGNED_IN_BLUEPRINTS = ("studio", "gallery", "account")


def test_every_signed_in_page_sends_a_stranger_to_sign_in_and_back(idle_app):
    """Each rule of the signed-in page blueprints, each method: a redirect to /login with
    the path and query to come back to; a JSON-ish partial (the account's tables) too."""
    routes = [(method, re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "nobody", rule.rule))
              for rule in idle_app.url_map.iter_rules()
              if rule.endpoint.partition(".")[0] in SIGNED_IN_BLUEPRINTS
              for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    assert {("GET", "/studio"), ("GET", "/images/nobody"), ("GET", "/account/ledger"),
            ("POST", "/account/sign-out-everywhere")} <= set(routes)
    client = idle_app.test_client()
    csrf = csrf_from(client.get("/login").data)
    wrong = []
    for method, url in routes:
        response = client.open(url + "?offset=20", method=method, data={"csrf_token": csrf})
        if response.status_code != 302 or response.headers["Location"] != f"/login?next={url}?offset%3D20":
            wrong.append(f"{method} {url}: {response.status_code} {response.headers.get('Location')}")
    assert not wrong, wrong
