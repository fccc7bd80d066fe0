"""Rate limits on guessing: failed sign-ins (per address and per account) and failed
voucher redemptions (per user). Counted in Redis with Flask-Limiter's moving window,
so every web process agrees; only failures count, and a successful sign-in clears the
account's count."""
from __future__ import annotations

import logging
import math
import time

from flask import current_app
from limits import parse

from extensions import limiter
from services.errors import ServiceError

log = logging.getLogger(__name__)


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


def _strategy():
    return limiter.limiter


def _prefix() -> str:
    # Part of every key, so that instances sharing a Redis keep separate counts.
    return current_app.config["RATELIMIT_KEY_PREFIX"]


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def check(rules: list[tuple[str, str, str, str]]) -> None:
    """rules: (limit such as "5 per 15 minutes", scope, key, what) ... Raise RateLimited
    saying when to try again if any of them is used up."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    worst = 0
    what = ""
    for limit, scope, key, label in rules:
        item = parse(limit)
        try:
            if _strategy().test(item, _prefix(), scope, key):
                continue
            reset, _remaining = _strategy().get_window_stats(item, _prefix(), scope, key)
        except Exception as exc:  # Redis down: do not lock everybody out
            log.warning("rate limit check failed: %s", exc)
            return
        wait = max(1, math.ceil(reset - time.time()))
        if wait > worst:
            worst, what = wait, label
    if worst:
        raise RateLimited(f"Too many {what}. Try again in {_wait_text(worst)}.",
                          headers={"Retry-After": str(worst)})


def hit(rules: list[tuple[str, str, str, str]]) -> None:
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    for limit, scope, key, _label in rules:
        try:
            _strategy().hit(parse(limit), _prefix(), scope, key)
        except Exception as exc:
            log.warning("rate limit hit failed: %s", exc)


def clear(rules: list[tuple[str, str, str, str]]) -> None:
    for limit, scope, key, _label in rules:
        try:
            _strategy().clear(parse(limit), _prefix(), scope, key)
        except Exception as exc:
            log.warning("rate limit clear failed: %s", exc)


# --- what is limited ----------------------------------------------------------------

def signin_rules(address: str | None, account_key: str | None) -> list[tuple[str, str, str, str]]:
    config = current_app.config
    rules = [(config["SIGNIN_LIMIT_IP"], "signin-ip", address or "unknown",
              "failed sign-ins from your address")]
    if account_key:
        rules.append((config["SIGNIN_LIMIT_ACCOUNT"], "signin-account", account_key,
                      "failed sign-ins for this account"))
    return rules


def account_rules(account_key: str | None) -> list[tuple[str, str, str, str]]:
    return [r for r in signin_rules(None, account_key) if r[1] == "signin-account"]


def redeem_rules(user_uuid: str) -> list[tuple[str, str, str, str]]:
    return [(current_app.config["REDEEM_LIMIT"], "redeem", user_uuid,
             "wrong or used voucher codes")]
