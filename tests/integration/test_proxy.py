"""Behind a reverse proxy (DAYDREAM_TRUSTED_PROXIES, services/core/proxy.py): with the
proxy trusted, the sign-in limits, the audit rows and the links see the client's address
and scheme, not the proxy's; a forwarded header from anyone else is ignored; unset, no
forwarded header is believed. Shown through the WSGI test client (REMOTE_ADDR set to the
proxy's address, the headers a proxy adds) and through a real local reverse proxy in front
of the real web server, its clients connecting from different loopback addresses."""
from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import WebServer, instance_env, make_app, unique
from tests.integration.helpers import ApiUser, csrf_from, make_staff

PROXY_PASSWORD = "correct horse battery"
PROXY_ADDR, OTHER_PROXY = "10.0.0.5", "10.0.0.7"
CLIENT_A, CLIENT_B, OUTSIDER = "203.0.113.7", "198.51.100.20", "192.0.2.99"


def proxy_client(app, peer: str, forwarded_for: str | None = None, proto: str | None = None):
    """A test client whose requests come from `peer` with the headers a proxy adds."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    headers = {}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    client.environ_base.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    return client


def proxy_token_attempt(client, login: str, password: str):
    """The API's sign-in (making a token): the same limits as the sign-in page."""
    return client.post("/api/v1/auth/tokens", json={"login": login, "password": password, "name": "x"})


def proxy_seen_address(app, client, staff_headers) -> str:
    """The address the app saw for a request of `client`: a staff action's audit row."""
    whom = ApiUser(app.test_client(), unique("seen"))
    reason = unique("seen-by ")
    response = client.patch(f"/api/v1/admin/users/{whom.data['id']}", json={"tokens_delta": 1, "reason": reason},
                            headers=staff_headers)
    assert response.status_code == 200, response.get_json()
    [row] = app.test_client().get("/api/v1/admin/audit", query_string={"q": reason},
                                  headers=staff_headers).get_json()["items"]
    return row["address"]


def proxy_reset_url(app, client, staff_headers) -> str:
    """An external URL the app builds from the request (no DAYDREAM_PUBLIC_URL): a reset link."""
    whom = ApiUser(app.test_client(), unique("linked"))
    response = client.post(f"/api/v1/admin/users/{whom.data['id']}/reset-link", headers=staff_headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]


@pytest.fixture
def proxied(fresh):
    """An app trusting the proxies of 10.0.0.0/24, with a low per-address sign-in cap."""
    app = fresh(DAYDREAM_TRUSTED_PROXIES="10.0.0.0/24, ::1", DAYDREAM_SIGNIN_LIMIT_IP="3 per 15 minutes")
    app.staff_headers = make_staff(app, unique("gate"), "a staff password")
    return app


def test_proxy_sign_in_cap_counts_per_client_behind_a_trusted_proxy(proxied):
    owner = ApiUser(proxied.test_client(), unique("owner"))
    for n in range(3):  # CLIENT_A sprays unknown accounts through the proxy
        spray = proxy_client(proxied, PROXY_ADDR, CLIENT_A)
        assert proxy_token_attempt(spray, unique("nobody"), f"guess {n}").status_code == 401
    capped = proxy_token_attempt(proxy_client(proxied, PROXY_ADDR, CLIENT_A), unique("nobody"), "again")
    assert capped.status_code == 429 and capped.get_json()["error"]["code"] == "rate_limited"
    # Another client of the same proxy is not capped: it signs in, and may fail on its own.
    other = proxy_client(proxied, PROXY_ADDR, CLIENT_B)
    assert proxy_token_attempt(other, owner.username, PROXY_PASSWORD).status_code == 201
    assert proxy_token_attempt(other, unique("nobody"), "a typo").status_code == 401


def test_proxy_without_the_setting_every_client_of_a_proxy_shares_its_address(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_IP="3 per 15 minutes")
    owner = ApiUser(app.test_client(), unique("owner"))
    for n in range(3):
        assert proxy_token_attempt(proxy_client(app, PROXY_ADDR, CLIENT_A), unique("nobody"),
                                   f"guess {n}").status_code == 401
    # The forwarded header is not believed: CLIENT_B is the proxy's address, capped too
    # (except for an account that signed in from there before, which the owner did not).
    refused = proxy_token_attempt(proxy_client(app, PROXY_ADDR, CLIENT_B), owner.username, "wrong one")
    assert refused.status_code == 429
    staff = make_staff(app, unique("gate"), "a staff password")
    assert proxy_seen_address(app, proxy_client(app, PROXY_ADDR, CLIENT_B, "https"), staff) == PROXY_ADDR
    assert proxy_reset_url(app, proxy_client(app, PROXY_ADDR, CLIENT_B, "https"), staff).startswith("http://")


def test_proxy_forwarded_headers_from_an_untrusted_address_are_ignored(proxied):
    for n in range(3):  # a client that forges a new X-Forwarded-For each time is still one address
        forged = proxy_client(proxied, OUTSIDER, f"198.51.100.{n + 1}")
        assert proxy_token_attempt(forged, unique("nobody"), "guess").status_code == 401
    again = proxy_client(proxied, OUTSIDER, "198.51.100.200")
    assert proxy_token_attempt(again, unique("nobody"), "guess").status_code == 429
    staff = proxied.staff_headers
    assert proxy_seen_address(proxied, proxy_client(proxied, OUTSIDER, CLIENT_B, "https"), staff) == OUTSIDER
    outside = proxy_client(proxied, OUTSIDER, CLIENT_B, "https")
    assert proxy_reset_url(proxied, outside, staff).startswith("http://localhost/")


def test_proxy_the_client_is_the_first_untrusted_hop_from_the_right(proxied):
    staff = proxied.staff_headers
    seen = lambda peer, chain: proxy_seen_address(proxied, proxy_client(proxied, peer, chain), staff)  # noqa: E731
    assert seen(PROXY_ADDR, CLIENT_B) == CLIENT_B
    assert seen(PROXY_ADDR, f"{CLIENT_B}, {OTHER_PROXY}") == CLIENT_B  # two proxies of ours
    # What a client wrote itself (the left of the header) is not believed past an untrusted hop.
    assert seen(PROXY_ADDR, f"1.2.3.4, {CLIENT_A}") == CLIENT_A
    assert seen(PROXY_ADDR, f"10.0.0.8, {OTHER_PROXY}") == "10.0.0.8"  # every hop ours: the leftmost
    # A client on a proxy's own machine: the proxy wrote its own address, and what the
    # client wrote to the left of it is not believed.
    assert seen(PROXY_ADDR, f"1.2.3.4, {PROXY_ADDR}") == PROXY_ADDR
    assert seen(PROXY_ADDR, f"1.2.3.4, {OTHER_PROXY}, {OTHER_PROXY}") == OTHER_PROXY
    assert seen(PROXY_ADDR, "not-an-address") == PROXY_ADDR
    assert seen(PROXY_ADDR, None) == PROXY_ADDR
    assert seen("::1", "2001:db8::5") == "2001:db8::5"


def test_proxy_forwarded_https_from_a_trusted_proxy_makes_external_urls_https(proxied):
    staff = proxied.staff_headers
    url = lambda proto: proxy_reset_url(proxied, proxy_client(proxied, PROXY_ADDR, CLIENT_B, proto), staff)  # noqa: E731
    assert url("https").startswith("https://localhost/reset/")
    assert url("http").startswith("http://localhost/")
    assert url("gopher").startswith("http://")  # not a scheme: ignored


def test_proxy_a_number_trusts_that_many_proxies(fresh):
    app = fresh(DAYDREAM_TRUSTED_PROXIES="1")
    staff = make_staff(app, unique("gate"), "a staff password")
    # One proxy: the rightmost value is the one it appended; the rest the client wrote.
    assert proxy_seen_address(app, proxy_client(app, PROXY_ADDR, f"6.6.6.6, {CLIENT_B}"), staff) == CLIENT_B
    assert proxy_seen_address(app, proxy_client(app, PROXY_ADDR), staff) == PROXY_ADDR
    assert proxy_reset_url(app, proxy_client(app, PROXY_ADDR, CLIENT_B, "https"), staff).startswith("https://")


def test_proxy_a_setting_that_is_neither_a_number_nor_addresses_stops_the_start(tmp_path, redis_url, models_path):
    with pytest.raises(ValueError, match="'nonsense' is neither a number of proxies nor an address"):
        make_app(instance_env(tmp_path / "bad", redis_url, models_path, DAYDREAM_TRUSTED_PROXIES="10.0.0.1, nonsense"))


# --- a real reverse proxy in front of the real web server --------------------------------

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}


class ProxyTestServer(ThreadingHTTPServer):
    """A tiny reverse proxy, as nginx is set up in the README: it appends the address the
    client connected from to X-Forwarded-For and sets X-Forwarded-Proto."""

    daemon_threads = True

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        super().__init__(("127.0.0.1", 0), ProxyTestHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class ProxyTestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        before = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{before}, {self.client_address[0]}" if before else self.client_address[0]
        headers["X-Forwarded-Proto"] = "http"
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=payload, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward


def proxy_request(port: int, source: str, method: str, path: str, body: dict | None = None,
                  headers: dict | None = None):
    """A request to the proxy from the loopback address `source`: (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, (json.loads(data) if data else None)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def proxy_stack(tmp_path_factory, redis_url, models_path):
    """The web server trusting a reverse proxy on 127.0.0.1; its tests use addresses of
    their own (sign-in caps are counted per address)."""
    tmp_path = tmp_path_factory.mktemp("proxied")
    env = instance_env(tmp_path / "site", redis_url, models_path, DAYDREAM_TRUSTED_PROXIES="127.0.0.1",
                       DAYDREAM_SIGNIN_LIMIT_IP="3 per 15 minutes")
    make_app(env)  # the tables
    server = WebServer(env, tmp_path / "web.log").start()
    proxy = ProxyTestServer(server.port)
    yield server, proxy
    proxy.close()
    server.stop()


def test_proxy_a_real_reverse_proxy_gives_each_client_its_own_sign_in_cap(proxy_stack):
    server, proxy = proxy_stack
    attacker, neighbour = "127.0.0.2", "127.0.0.3"
    owner = unique("owner")
    status, _ = proxy_request(proxy.port, neighbour, "POST", "/api/v1/auth/register", {
        "username": owner, "email": f"{owner}@example.com", "password": PROXY_PASSWORD})
    assert status == 201
    for n in range(3):
        status, _ = proxy_request(proxy.port, attacker, "POST", "/api/v1/auth/tokens", {
            "login": unique("nobody"), "password": f"guess {n}", "name": "x"})
        assert status == 401
    status, refused = proxy_request(proxy.port, attacker, "POST", "/api/v1/auth/tokens", {
        "login": owner, "password": "still guessing", "name": "x"})
    assert status == 429 and refused["error"]["code"] == "rate_limited"
    # The neighbour behind the same proxy is counted apart, and a forged header does not
    # make the attacker someone else (the proxy appends the address it really saw).
    status, token = proxy_request(proxy.port, neighbour, "POST", "/api/v1/auth/tokens", {
        "login": owner, "password": PROXY_PASSWORD, "name": "x"})
    assert status == 201 and token["token"]
    status, _ = proxy_request(proxy.port, attacker, "POST", "/api/v1/auth/tokens", {
        "login": unique("nobody"), "password": "guess", "name": "x"}, headers={"X-Forwarded-For": neighbour})
    assert status == 429
    # Straight to the web server (not through the proxy), 127.0.0.2 is not a trusted proxy:
    # its forged header is ignored, and it is the attacker's own, capped address.
    status, _ = proxy_request(server.port, attacker, "POST", "/api/v1/auth/tokens", {
        "login": unique("nobody"), "password": "guess", "name": "x"}, headers={"X-Forwarded-For": neighbour})
    assert status == 429


def test_proxy_a_client_on_the_proxys_own_machine_cannot_pick_a_new_address_per_guess(proxy_stack):
    """The proxy runs on 127.0.0.1, which is trusted; a client connecting to it from
    127.0.0.1 too, writing a new X-Forwarded-For each time, is still 127.0.0.1."""
    _server, proxy = proxy_stack
    for n in range(3):
        status, _ = proxy_request(proxy.port, "127.0.0.1", "POST", "/api/v1/auth/tokens", {
            "login": unique("nobody"), "password": f"guess {n}", "name": "x"},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"})
        assert status == 401
    status, refused = proxy_request(proxy.port, "127.0.0.1", "POST", "/api/v1/auth/tokens", {
        "login": unique("nobody"), "password": "guess", "name": "x"}, headers={"X-Forwarded-For": "198.51.100.99"})
    assert status == 429 and refused["error"]["code"] == "rate_limited"


def test_proxy_cookies_set_over_https_from_a_trusted_proxy_are_secure(proxied):
    """The session cookie of a sign-in through a trusted proxy that says HTTPS is Secure;
    over plain HTTP, or with the header from an untrusted address, it is not."""
    name = unique("cookie")
    ApiUser(proxied.test_client(), name, PROXY_PASSWORD)

    def session_cookie(client) -> str:
        token = csrf_from(client.get("/login").get_data())
        response = client.post("/login", data={"login": name, "password": PROXY_PASSWORD, "csrf_token": token},
                               headers={"Referer": "https://localhost/login"})  # (checked over HTTPS)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
        return cookie

    flags = lambda cookie: {part.strip().lower() for part in cookie.split(";")[1:]}  # noqa: E731
    assert "secure" in flags(session_cookie(proxy_client(proxied, PROXY_ADDR, CLIENT_A, "https")))
    assert "secure" not in flags(session_cookie(proxy_client(proxied, PROXY_ADDR, CLIENT_A, "http")))
    assert "secure" not in flags(session_cookie(proxy_client(proxied, OUTSIDER, CLIENT_A, "https")))
