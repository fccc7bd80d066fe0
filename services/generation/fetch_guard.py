"""The SSRF guard of model installs: Daydream fetches only https URLs whose host resolves
to public addresses, and connects to the very address it checked (a DNS answer that
changes between the check and the connection cannot move it onto the local network).
Every redirect is a new URL and is checked again (see installs.open_guarded).

A host named in DAYDREAM_INSTALL_ALLOW_HOSTS (exactly as written in the URL, e.g. a
local mirror) is let through whatever it resolves to; nothing else is. Hosts spelled as
numbers in unusual ways (2130706433, 0x7f.1, 0177.0.0.1) are refused outright: they are
how a guard that compares text is fooled.

No Flask, no network of its own: `resolve` is passed in where tests need another."""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


class Refused(ValueError):
    """A URL or an address the guard will not fetch; str() says why in plain words."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str        # as written (lower case, no brackets): the TLS name and Host header
    port: int
    path: str        # path and query, as sent on the request line
    address: str     # the checked address to connect to


_DOTTED_QUAD = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_NUMERIC_LOOKING = re.compile(r"^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+)){0,3}$", re.IGNORECASE)


def allow_list(value: str | Iterable[str] | None) -> frozenset[str]:
    """DAYDREAM_INSTALL_ALLOW_HOSTS as a set of host names (comma list, case-insensitive)."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(h.strip().lower().strip("[]").rstrip(".") for h in items if h and h.strip())


def why_not_public(address: str) -> str | None:
    """None when the address is a public unicast one; otherwise what kind it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or (ip.sixtofour if ip.sixtofour else None)
        if mapped is not None:  # ::ffff:10.0.0.1 reaches 10.0.0.1
            why = why_not_public(str(mapped))
            return f"{why} (inside an IPv6 address)" if why else None
        if ip.teredo:
            return "a Teredo tunnel address"
    for test, name in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address "
                       "(169.254.x.x and fe80::, where cloud metadata services answer)"),
                       ("is_unspecified", "an unspecified address"), ("is_multicast", "a multicast address"),
                       ("is_reserved", "a reserved address"), ("is_private", "a private network address")):
        if getattr(ip, test):
            return name
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "not a public address"
    return None


def _system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def check_url(url: str, allow: frozenset[str] = frozenset(),
              resolve: Callable[[str, int], list[str]] | None = _system_resolve) -> Target:
    """The Target to connect to for url, or Refused with the reason. resolve=None checks
    the URL's form and an address written in it, and leaves a name unresolved (address
    ""): what the web tier does before it queues an install; the job checks again."""
    if not isinstance(url, str) or not url.strip():
        raise Refused("the URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 443
    except ValueError as exc:
        raise Refused(f"the URL cannot be read ({exc})") from exc
    if parts.scheme.lower() != "https":
        raise Refused(f"only https:// URLs are fetched, not {parts.scheme or 'this'}://")
    if parts.username or parts.password:
        raise Refused("a URL with a user name or password in it is not fetched")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise Refused("the URL has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    literal = _literal(host)
    if literal is None and _NUMERIC_LOOKING.match(host):
        raise Refused(f"the host {host!r} is a number written in an unusual way; write the address as a.b.c.d")
    if resolve is None and not literal:
        return Target(url.strip(), host, port, path, "")
    if host in allow:
        addresses = [literal] if literal else _resolved(host, port, resolve)
        return Target(url.strip(), host, port, path, addresses[0])
    addresses = [literal] if literal else _resolved(host, port, resolve)
    for address in addresses:
        why = why_not_public(address)
        if why:
            shown = host if literal else f"{host} ({address})"
            raise Refused(f"{shown} is {why}; models are fetched only from public addresses "
                          "(DAYDREAM_INSTALL_ALLOW_HOSTS names hosts to let through)")
    return Target(url.strip(), host, port, path, addresses[0])


def _literal(host: str) -> str | None:
    """The host if it is an IP address written the ordinary way."""
    if _DOTTED_QUAD.match(host):
        return host
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host.split("%", 1)[0]))
        except ValueError:
            return None
    return None


def _resolved(host: str, port: int, resolve) -> list[str]:
    try:
        addresses = list(dict.fromkeys(resolve(host, port)))
    except (OSError, UnicodeError) as exc:
        raise Refused(f"the host {host} could not be resolved ({exc})") from exc
    if not addresses:
        raise Refused(f"the host {host} has no address")
    return addresses
