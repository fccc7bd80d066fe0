"""Running behind a reverse proxy (DAYDREAM_TRUSTED_PROXIES): which forwarded headers
to believe, so that request.remote_addr is the client's address (rate limits, sign-in
limits, audit rows) and request.scheme its scheme (external URLs; cookies set over HTTPS
are marked Secure: SecureCookies).

- unset or empty: no forwarded header is believed; the address is the direct peer's.
- a number N: N proxies stand in front, each appending to X-Forwarded-For and setting
  X-Forwarded-Proto: Werkzeug's ProxyFix takes the N-th value from the right.
- addresses and networks, comma-separated ("10.0.0.5, 172.16.0.0/12, ::1"): the forwarded
  headers are believed only when the direct peer is one of them; X-Forwarded-For is walked
  from the right while the hop is a trusted proxy, and the first hop that is not is the
  client. A hop that is the address of the proxy that wrote it (a program on the proxy's
  own machine connected to it) is the client too: whatever it wrote to the left of that
  is its own choice, and believing it would let it pick a new address for each request.

A program that reaches the web server directly from a trusted proxy's address (another
program on the proxy's machine) can still choose its address: let only the proxy reach
the web server (bind it to an address or port nobody else can connect to).

X-Forwarded-Host and -Port are not read: a proxy that passes the client's Host header on
(nginx: proxy_set_header Host $host; Caddy does it by default) needs neither, and a
client could set them itself through a proxy that leaves them alone."""
from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse(setting: str) -> int | list[Network]:
    """The setting as a number of proxies, or as the networks of the trusted proxies
    (ValueError names an entry that is neither)."""
    text = (setting or "").strip()
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    networks = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"DAYDREAM_TRUSTED_PROXIES: {part!r} is neither a number of proxies nor "
                             "an address or network (like 10.0.0.5 or 172.16.0.0/12)") from None
    return networks


def _address(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [::1]:port, as some proxies write it
        text = text[1:text.index("]")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


class TrustedProxies:
    """WSGI middleware: believe X-Forwarded-For and X-Forwarded-Proto only from the given
    proxies (see the module's docstring). The original values stay in the environ under
    daydream.proxy.peer and daydream.proxy.scheme."""

    def __init__(self, app, networks: list[Network]):
        self.app = app
        self.networks = list(networks)

    def trusted(self, address) -> bool:
        return address is not None and any(address.version == n.version and address in n for n in self.networks)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        environ["daydream.proxy.peer"] = peer
        environ["daydream.proxy.scheme"] = environ.get("wsgi.url_scheme", "http")
        if self.trusted(_address(peer)):
            hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            client, writer, trusted_hops = peer, _address(peer), 1
            for hop in reversed(hops):
                address = _address(hop)
                if address is None:  # not an address: stop at the last proxy we trust
                    break
                if address == writer:  # a client on the proxy's own machine: the hop is it
                    break
                client = str(address)
                if not self.trusted(address):
                    break
                writer = address
                trusted_hops += 1
            environ["REMOTE_ADDR"] = client
            protos = [p.strip().lower() for p in environ.get("HTTP_X_FORWARDED_PROTO", "").split(",") if p.strip()]
            if protos:
                # The value the outermost proxy we trust set (each proxy appends or overwrites).
                proto = protos[-min(trusted_hops, len(protos))]
                if proto in ("http", "https"):
                    environ["wsgi.url_scheme"] = proto
                    if proto == "https" and environ.get("SERVER_PORT") == "80":
                        environ["SERVER_PORT"] = "443"
        return self.app(environ, start_response)


def _has_secure(cookie: str) -> bool:
    return any(part.strip().lower() == "secure" for part in cookie.split(";")[1:])


class SecureCookies:
    """WSGI middleware: a response to a request that came over HTTPS (directly, or through
    a trusted proxy that says so, which the middleware outside this one has put in the
    environ) has every cookie marked Secure, as DAYDREAM_SECURE_COOKIES would, so that a
    cookie set over HTTPS never travels over plain HTTP."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def start(status, headers, exc_info=None):
            headers = [(name, value + "; Secure") if name.lower() == "set-cookie" and not _has_secure(value)
                       else (name, value) for name, value in headers]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def wrap(wsgi_app, setting: str):
    """The app's WSGI callable behind the proxies the setting trusts (unchanged if none)."""
    trusted = parse(setting)
    if isinstance(trusted, int):
        if trusted <= 0:
            return wsgi_app
        return ProxyFix(wsgi_app, x_for=trusted, x_proto=trusted, x_host=0, x_port=0, x_prefix=0)
    return TrustedProxies(wsgi_app, trusted) if trusted else wsgi_app
