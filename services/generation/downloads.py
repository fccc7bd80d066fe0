"""Fetching a model file over https for an install (services/generation/installs.py),
through the SSRF guard (fetch_guard.py): every hop of a redirect is checked again and the
connection goes to the address that was checked, never to a fresh DNS answer.

A download streams into a `.part` file. A transient failure (a cut connection, a timeout,
an answer of 500, 502, 503, 504 or 429) is tried again after a wait (the server's
Retry-After up to `max_wait`, else a backoff that doubles), taken up with an HTTP Range
request from the .part's size: at most `retries` more tries in a row, counted afresh
whenever bytes arrive; `on_retry` says so meanwhile. A permanent one (404, 401, 403, a
refused address) is not tried again. A server that ignores Range starts the file over.
The sha256 is computed as the bytes are written (the bytes already in a .part are read
once). An access token goes only to the host it is for, never to a host a redirect leads
to.

No Flask here: installs.py passes the settings in."""
from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin

from services.generation import fetch_guard

CHUNK = 1 << 20
MAX_REDIRECTS = 8
MAX_JSON = 32 * 1024 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
# Answers worth another try (the server is busy or restarting); others are final.
TRANSIENT = (429, 500, 502, 503, 504)


class DownloadError(Exception):
    """A download that cannot go on; str() is the reason staff read. keep_part: the .part
    is worth keeping for a later try (the network failed, not the file)."""

    def __init__(self, reason: str, *, keep_part: bool = False):
        super().__init__(reason)
        self.keep_part = keep_part


class Cancelled(Exception):
    """Staff cancelled the install while it ran."""


class Transient(Exception):
    """An answer worth another try: `status`, and the wait the server asked for (Retry-After)."""

    def __init__(self, status: int, reason: str, retry_after: float | None):
        super().__init__(f"{status} ({reason})" if reason else str(status))
        self.status, self.retry_after = status, retry_after


@dataclass
class Settings:
    allow: frozenset[str] = frozenset()
    ca_bundle: str | None = None
    retries: int = 3          # more tries after a transient failure, in a row without progress
    backoff: float = 2.0      # the first wait (seconds); it doubles with each failure in a row
    max_wait: float = 60.0    # no wait is longer (a Retry-After above it included)
    timeout: float = 30.0
    # pause(seconds) waits before another try (it may raise Cancelled); on_retry(wait, why)
    # says a try failed and another follows after `wait` seconds ("503", "a timeout"…).
    pause: Callable[[float], None] = time.sleep
    on_retry: Callable[[float, str], None] = lambda wait, why: None
    token: str | None = None
    token_host: str | None = None  # the one host the token is sent to
    resolve: Callable = fetch_guard._system_resolve
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
            if self.ca_bundle:
                self._context.load_verify_locations(self.ca_bundle)
        return self._context


class PinnedConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address, with the URL's host name for TLS and Host."""

    def __init__(self, target: fetch_guard.Target, context: ssl.SSLContext, timeout: float):
        super().__init__(target.host, target.port, context=context, timeout=timeout)
        self.address = target.address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_guarded(url: str, settings: Settings, headers: dict | None = None, method: str = "GET"):
    """(response, connection) of url after following redirects, each hop checked by the
    guard. The caller reads the response and closes the connection."""
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            target = fetch_guard.check_url(url, settings.allow, settings.resolve)
        except fetch_guard.Refused as exc:
            raise DownloadError(f"Refused {url}: {exc}.") from exc
        sent = dict(headers or {})
        if settings.token and target.host == settings.token_host:
            sent["Authorization"] = f"Bearer {settings.token}"
        sent.setdefault("User-Agent", "Daydream model install")
        conn = PinnedConnection(target, settings.context(), settings.timeout)
        try:
            conn.request(method, target.path, headers=sent)
            response = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise DownloadError(f"The certificate of {target.host} could not be verified ({exc.verify_message}).") from exc
        except BaseException:
            conn.close()
            raise
        if response.status in REDIRECTS:
            location = response.getheader("Location")
            response.read(65536)
            conn.close()
            if not location:
                raise DownloadError(f"{target.host} answered a redirect without a Location.")
            url = urljoin(url, location)
            continue
        return response, conn
    raise DownloadError(f"More than {MAX_REDIRECTS} redirects from {url}.")


def _refusal(response, url: str) -> DownloadError:
    status = response.status
    if status in (401, 403):
        why = "it needs an access token (or the one given has no access)"
    elif status == 404:
        why = "not found"
    else:
        why = response.reason or "error"
    return DownloadError(f"{url} answered {status} ({why}).", keep_part=status >= 500)


def fetch_json(url: str, settings: Settings) -> dict:
    failures = 0
    while True:
        try:
            response, conn = open_guarded(url, settings, {"Accept": "application/json"})
            try:
                _check_transient(response)
                if response.status != 200:
                    raise _refusal(response, url)
                raw = response.read(MAX_JSON + 1)
            finally:
                conn.close()
            break
        except (OSError, http.client.HTTPException, Transient) as exc:
            failures += 1
            _wait_to_retry(url, exc, failures, settings)
    if len(raw) > MAX_JSON:
        raise DownloadError(f"{url} answered more than {MAX_JSON // (1 << 20)} MB of JSON.")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DownloadError(f"{url} did not answer JSON.") from exc
    if not isinstance(data, dict):
        raise DownloadError(f"{url} did not answer a JSON object.")
    return data


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (a number, or an HTTP date); None without one."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _check_transient(response) -> None:
    if response.status in TRANSIENT:
        raise Transient(response.status, response.reason or "", retry_after(response.getheader("Retry-After")))


def _what_failed(exc: Exception) -> str:
    if isinstance(exc, Transient):
        return str(exc.status)
    if isinstance(exc, TimeoutError):
        return "a timeout"
    return f"a connection failure ({exc.__class__.__name__})"


def wait_before(failures: int, exc: Exception, settings: Settings) -> float:
    """The wait before the next try: the server's Retry-After, else the backoff (doubling
    with each failure in a row), never more than max_wait."""
    asked = exc.retry_after if isinstance(exc, Transient) else None
    wait = asked if asked is not None else settings.backoff * 2 ** max(failures - 1, 0)
    return max(0.0, min(wait, settings.max_wait))


def _wait_to_retry(url: str, exc: Exception, failures: int, settings: Settings, kept: int = 0) -> None:
    """Wait before another try, or raise DownloadError once the tries in a row are used up."""
    if failures > settings.retries:
        tail = f"; {kept} bytes are kept for a later try" if kept else ""
        if isinstance(exc, Transient):
            raise DownloadError(f"{url} answered {exc} {failures} times in a row{tail}.", keep_part=True) from exc
        raise DownloadError(f"The download of {url} failed {failures} times in a row "
                            f"({exc.__class__.__name__}: {exc}){tail}.", keep_part=True) from exc
    wait = wait_before(failures, exc, settings)
    settings.on_retry(wait, _what_failed(exc))
    settings.pause(wait)


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _hash_existing(part: Path, hasher) -> int:
    done = 0
    with open(part, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            done += len(chunk)
    return done


def download(url: str, part: Path, settings: Settings, *,
             on_size: Callable[[int | None, int], None] = lambda total, done: None,
             on_progress: Callable[[int, int | None], None] = lambda done, total: None) -> tuple[int, str]:
    """Stream url into part (resuming it when it holds bytes already); (size, sha256).
    on_size(total or None, bytes already there) runs before the body is read (the free
    space check); on_progress(done, total) after every chunk (it may raise Cancelled)."""
    hasher = hashlib.sha256()
    done = _hash_existing(part, hasher) if part.exists() else 0
    failures = 0
    while True:
        headers = {"Range": f"bytes={done}-"} if done else {}
        progressed = False
        try:
            response, conn = open_guarded(url, settings, headers)
            try:
                total = None
                _check_transient(response)
                if response.status == 206 and done:
                    match = _RANGE.match(response.getheader("Content-Range") or "")
                    if not match or int(match.group(1)) != done:
                        raise DownloadError(f"{url} answered a range that does not continue the file.")
                    total = int(match.group(3)) if match.group(3) != "*" else None
                elif response.status == 416 and done:
                    # Asked past the end: the .part holds the whole file already.
                    return done, hasher.hexdigest()
                elif response.status == 200:
                    if done:  # the server ignored Range: start the file over
                        part.unlink(missing_ok=True)
                        hasher, done = hashlib.sha256(), 0
                    length = response.getheader("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                else:
                    raise _refusal(response, url)
                on_size(total, done)
                on_progress(done, total)
                with open(part, "ab") as handle:
                    # read1: what has arrived (up to CHUNK), so progress and cancel keep up on a slow link
                    while chunk := response.read1(CHUNK):
                        handle.write(chunk)
                        hasher.update(chunk)
                        done += len(chunk)
                        progressed = True
                        on_progress(done, total)
                if total is not None and done < total:
                    raise http.client.IncompleteRead(b"", total - done)
                return done, hasher.hexdigest()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, Transient) as exc:
            failures = 1 if progressed else failures + 1
            _wait_to_retry(url, exc, failures, settings, kept=done)
