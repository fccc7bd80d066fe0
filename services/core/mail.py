"""Outgoing mail: plain-text messages through the SMTP server of DAYDREAM_SMTP_URL,
with the standard library (smtplib, email.message).

    smtp://host:25                      plain (a local relay)
    smtp+starttls://user:pass@host:587  STARTTLS, then log in
    smtps://user:pass@host:465          TLS from the start

Mail goes out from a background thread (in_background; one, so jobs run in the order
they came), so that a slow or hung SMTP server neither holds a request nor shows in its
timing; every socket operation gives up after SMTP_TIMEOUT seconds. Messages carry one-time links, so
neither their text nor their recipients are logged."""
from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

from extensions import db

log = logging.getLogger(__name__)

PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def configured() -> bool:
    """Mail can be sent: an SMTP URL of a known kind, a From address, and the site's
    public address (DAYDREAM_PUBLIC_URL): links in mail never come from the request's
    Host header, which a client can forge to point a victim's reset link elsewhere."""
    config = current_app.config
    url = config.get("SMTP_URL") or ""
    return bool(url and config.get("MAIL_FROM") and config.get("PUBLIC_URL")
                and urlsplit(url).scheme in PORTS and urlsplit(url).hostname)


def message(to: str, subject: str, text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=(current_app.config["MAIL_FROM"].rpartition("@")[2] or None))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    return msg


def send(msg: EmailMessage) -> None:
    """Deliver one message now (raises smtplib/OSError errors)."""
    url = urlsplit(current_app.config["SMTP_URL"])
    host, port = url.hostname, url.port or PORTS[url.scheme]
    timeout = float(current_app.config.get("SMTP_TIMEOUT") or 10)
    context = ssl.create_default_context()
    if url.scheme == "smtps":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if url.scheme == "smtp+starttls":
            server.starttls(context=context)
        if url.username:
            server.login(unquote(url.username), unquote(url.password or ""))
        server.send_message(msg)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:  # made on first use: after a forking server forked
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="daydream-mail")
        return _pool


def in_background(job, *args) -> None:
    """Run job(*args) on a mail thread inside an app context of this app. Its errors
    are logged by kind only (their text may name a recipient)."""
    app: Flask = current_app._get_current_object()

    def run():
        with app.app_context():
            try:
                job(*args)
            except Exception as exc:  # noqa: BLE001 - a background job must not die silently
                log.warning("mail job %s failed: %s", getattr(job, "__name__", job), type(exc).__name__)
            finally:
                db.session.remove()

    _executor().submit(run)
