"""Rate limits on guessing: failed sign-ins and password checks, and failed voucher
redemptions (per user). Counted in Redis with the `limits` library (Flask-Limiter's
storage and moving window), so every web process agrees; only failures count.

Sign-in limits must not become a way to lock someone out, so none of them refuses the
owner on their own ground:

- Each (account, address) pair may fail SIGNIN_FREE_FAILURES times; after that every
  further try from that pair waits, 1 second doubling with each failure up to
  SIGNIN_MAX_DELAY. A success from the pair forgets its failures. Other addresses are
  not slowed down, so a brute force from one address leaves the owner's alone.
- An address that failed SIGNIN_LIMIT_IP times across accounts (spraying), or an
  account failed SIGNIN_LIMIT_ACCOUNT times across addresses (a distributed brute
  force), is refused for a while, except for pairs that signed in successfully in the
  last KNOWN_FOR: the people behind a shared address, and the owner, still get in.
- A browser that signed in to the account before carries a device cookie for it
  (services/accounts/signin.py): its tries are not capped by the address or the account
  (a school's shared address that someone sprays still lets its known devices in), and
  its failures count only against that device, with the same growing delays as a pair.
- Without the store (Redis down) sign-in fails closed: LimitsUnavailable (503), never
  unlimited guessing. Voucher limits fail open (a wrong code costs nothing).
"""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from datetime import timedelta

from flask import current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from services.core import keys
from services.core.errors import ServiceError

log = logging.getLogger(__name__)

# A pair's failures are forgotten this long after its first one (or at its success).
PAIR_MEMORY = int(timedelta(hours=24).total_seconds())
# A pair that signed in successfully is "known" this long: the caps let it through.
KNOWN_FOR = int(timedelta(days=30).total_seconds())


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


class LimitsUnavailable(ServiceError):
    status = 503
    code = "unavailable"


def _unavailable(exc: Exception, what: str = "Sign-in") -> LimitsUnavailable:
    log.warning("rate limit store unavailable, refusing %s: %s", what.lower(), exc)
    return LimitsUnavailable(f"{what} is unavailable for a moment: the server cannot reach its "
                             "rate-limit store. Try again in a minute.", headers={"Retry-After": "30"})


def _store():
    """(storage, moving-window strategy) of this app, made on first use. One per app:
    the process-wide Flask-Limiter object is rebound to whichever app called init_app
    last, so it cannot tell two apps (or two instances' settings) apart."""
    app = current_app._get_current_object()
    store = app.extensions.get("daydream.ratelimit")
    if store is None:
        storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"],
                                      **(app.config.get("RATELIMIT_STORAGE_OPTIONS") or {}))
        store = app.extensions["daydream.ratelimit"] = (storage, MovingWindowRateLimiter(storage))
    return store


def _prefix() -> str:
    # Part of every key, so that instances sharing a Redis keep separate counts.
    return current_app.config["RATELIMIT_KEY_PREFIX"]


def _enabled() -> bool:
    return current_app.config.get("RATELIMIT_ENABLED", True)


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _refuse(what: str, wait: float) -> RateLimited:
    wait = max(1, math.ceil(wait))
    return RateLimited(f"Too many {what}. Try again in {_wait_text(wait)}.",
                       headers={"Retry-After": str(wait)})


# --- moving windows: (limit such as "5 per 15 minutes", scope, key, what) -------------

def _used_up(rule) -> float:
    """0 when the rule has room, else the seconds until it has."""
    limit, scope, key, _label = rule
    storage, strategy = _store()
    item = parse(limit)
    if strategy.test(item, _prefix(), scope, key):
        return 0
    reset, _remaining = strategy.get_window_stats(item, _prefix(), scope, key)
    return max(1.0, reset - time.time())


def check(rules: list[tuple[str, str, str, str]], *, strict: bool = False) -> None:
    """Raise RateLimited saying when to try again if any rule is used up. Without the
    store: LimitsUnavailable when strict, else go on (logged)."""
    if not _enabled():
        return
    worst, what = 0.0, ""
    for rule in rules:
        try:
            wait = _used_up(rule)
        except Exception as exc:
            if strict:
                raise _unavailable(exc)
            log.warning("rate limit check failed: %s", exc)
            return
        if wait > worst:
            worst, what = wait, rule[3]
    if worst:
        raise _refuse(what, worst)


def hit(rules: list[tuple[str, str, str, str]], *, strict: bool = False) -> None:
    if not _enabled():
        return
    for limit, scope, key, _label in rules:
        try:
            _store()[1].hit(parse(limit), _prefix(), scope, key)
        except Exception as exc:
            if strict:
                raise _unavailable(exc)
            log.warning("rate limit hit failed: %s", exc)


# --- growing delays per (account, address) pair ---------------------------------------

def _delay(failures: int) -> int:
    """The wait after the n-th failure: none before SIGNIN_FREE_FAILURES, then 1 s,
    doubling, up to SIGNIN_MAX_DELAY."""
    config = current_app.config
    free = max(1, int(config["SIGNIN_FREE_FAILURES"]))
    if failures < free:
        return 0
    return int(min(config["SIGNIN_MAX_DELAY"], 2 ** min(failures - free, 30)))


def _pair_allowed(pair: str, what: str) -> None:
    """Past the free failures, each try claims the pair's gate for as long as its
    current delay (so parallel tries wait too); a held gate says how long is left."""
    storage, _strategy = _store()
    delay = _delay(storage.get(keys.signin_failures(_prefix(), pair)))
    if not delay:
        return
    gate = keys.signin_gate(_prefix(), pair)
    if storage.incr(gate, delay) != 1:
        raise _refuse(what, storage.get_expiry(gate) - time.time())


def _pair_failed(pair: str) -> None:
    storage, _strategy = _store()
    delay = _delay(storage.incr(keys.signin_failures(_prefix(), pair), PAIR_MEMORY))
    if delay:
        gate = keys.signin_gate(_prefix(), pair)
        storage.clear(gate)
        storage.incr(gate, delay)


def _pair_succeeded(pair: str, *, remember: bool) -> None:
    storage, _strategy = _store()
    storage.clear(keys.signin_failures(_prefix(), pair))
    storage.clear(keys.signin_gate(_prefix(), pair))
    if remember:
        known = keys.signin_known(_prefix(), pair)
        storage.clear(known)
        storage.incr(known, KNOWN_FOR)


def _known(pair: str) -> bool:
    return _store()[0].get(keys.signin_known(_prefix(), pair)) > 0


# --- sign-in ------------------------------------------------------------------------

def _pair(account_key: str | None, address: str | None) -> str:
    return f"{account_key or 'nobody'}|{address or 'unknown'}"


def _caps(account_key: str | None, address: str | None) -> list[tuple[str, str, str, str]]:
    config = current_app.config
    rules = [(config["SIGNIN_LIMIT_IP"], keys.LIMIT_SIGNIN_IP, address or "unknown",
              "failed sign-ins from your address")]
    if account_key:
        rules.append((config["SIGNIN_LIMIT_ACCOUNT"], keys.LIMIT_SIGNIN_ACCOUNT, account_key,
                      "failed sign-ins for this account from new addresses; sign in from "
                      "an address you used before, or wait"))
    return rules


def _device_pair(account_key: str | None, device: str) -> str:
    return _pair(account_key, keys.device_pair_address(device))


def signin_allowed(account_key: str | None, address: str | None, device: str | None = None) -> None:
    """Before the password is checked: RateLimited (429) with when to try again, or
    LimitsUnavailable (503) when the store cannot be reached. `device`: the nonce of this
    account's device cookie, when the browser carries a valid one."""
    if not _enabled():
        return
    try:
        if device:
            _pair_allowed(_device_pair(account_key, device), "failed sign-ins for this account on this device")
            return
        pair = _pair(account_key, address)
        if not _known(pair):
            check(_caps(account_key, address), strict=True)
        _pair_allowed(pair, "failed sign-ins for this account from your address")
    except (RateLimited, LimitsUnavailable):
        raise
    except Exception as exc:
        raise _unavailable(exc)


def signin_failed(account_key: str | None, address: str | None, device: str | None = None) -> None:
    if not _enabled():
        return
    try:
        if device:  # a known device's failures are its own
            _pair_failed(_device_pair(account_key, device))
            return
        hit(_caps(account_key, address), strict=True)
        _pair_failed(_pair(account_key, address))
    except LimitsUnavailable:
        raise
    except Exception as exc:
        raise _unavailable(exc)


def signin_succeeded(account_key: str | None, address: str | None, device: str | None = None) -> None:
    """The pair's (and the device's) failures are forgotten and the pair becomes known
    (the caps let it in). The account's and the address's counts stay: others' failures
    are not undone."""
    if not _enabled():
        return
    try:
        if device:
            _pair_succeeded(_device_pair(account_key, device), remember=False)
        _pair_succeeded(_pair(account_key, address), remember=True)
    except Exception as exc:  # the password was right: do not refuse the owner for this
        log.warning("rate limit update after sign-in failed: %s", exc)


# --- the password asked again (re-authentication, password change, deletion) ---------

def password_check_allowed(user_uuid: str) -> None:
    if not _enabled():
        return
    try:
        _pair_allowed(_pair(user_uuid, keys.PASSWORD_CHECK_ADDRESS), "wrong passwords")
    except RateLimited:
        raise
    except Exception as exc:
        raise _unavailable(exc, "Checking your password")


def password_check_failed(user_uuid: str) -> None:
    if not _enabled():
        return
    try:
        _pair_failed(_pair(user_uuid, keys.PASSWORD_CHECK_ADDRESS))
    except Exception as exc:
        raise _unavailable(exc, "Checking your password")


def password_check_succeeded(user_uuid: str) -> None:
    if not _enabled():
        return
    try:
        _pair_succeeded(_pair(user_uuid, keys.PASSWORD_CHECK_ADDRESS), remember=False)
    except Exception as exc:
        log.warning("rate limit update after a password check failed: %s", exc)


# --- vouchers -----------------------------------------------------------------------

def redeem_rules(user_uuid: str) -> list[tuple[str, str, str, str]]:
    return [(current_app.config["REDEEM_LIMIT"], keys.LIMIT_REDEEM, user_uuid,
             "wrong or used voucher codes")]


# --- one-time links by mail (services/accounts/links.py) -------------------------------
# Every request counts, not only failures: each one may send a mail. The per-address
# rule answers 429; the per-account rules are kept quietly (no mail, the same answer),
# so that they do not tell whether an account exists.

def reset_ip_rules(address: str | None) -> list[tuple[str, str, str, str]]:
    return [(current_app.config["RESET_LIMIT_IP"], keys.LIMIT_RESET_IP, address or "unknown",
             "password reset requests from your address")]


def reset_account_rules(user_uuid: str, purpose: str = "reset") -> list[tuple[str, str, str, str]]:
    what = "password reset mails" if purpose == "reset" else "confirmation mails"
    return [(current_app.config["RESET_LIMIT_ACCOUNT"], keys.limit_mail_account(purpose), user_uuid,
             f"{what} for this account")]


def unavailable(what: str) -> LimitsUnavailable:
    """The 503 for `what` ("Password reset") when the limit store cannot be reached."""
    return LimitsUnavailable(f"{what} is unavailable for a moment: the server cannot reach its "
                             "rate-limit store. Try again in a minute.", headers={"Retry-After": "30"})


# --- registration -----------------------------------------------------------------------
# Each registration that passed the form's checks counts against its address and its
# network (a /24 of IPv4, a /64 of IPv6: one household, office or cloud subnet, which
# hands out addresses cheaply). Claimed before the account is made, so a burst of
# parallel requests gets at most the limit. Without the store: refused (503), never
# unlimited accounts.

def network_of(address: str | None) -> str:
    """The /24 (IPv4) or /64 (IPv6) an address belongs to; an IPv4 address written as
    IPv6 (::ffff:a.b.c.d) counts as IPv4; anything else is its own network."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def register_rules(address: str | None) -> list[tuple[str, str, str, str]]:
    config = current_app.config
    return [(config["REGISTER_LIMIT_IP"], keys.LIMIT_REGISTER_IP, address or "unknown",
             "new accounts from your address"),
            (config["REGISTER_LIMIT_NETWORK"], keys.LIMIT_REGISTER_NETWORK, network_of(address),
             "new accounts from your network")]


def take(rules: list[tuple[str, str, str, str]], what: str) -> None:
    """Claim one use of each rule (Redis's moving window takes it atomically): RateLimited
    saying when to try again once any rule is used up, LimitsUnavailable (503, `what`
    is unavailable) without the store."""
    if not _enabled():
        return
    try:
        check(rules, strict=True)
        strategy = _store()[1]
        for rule in rules:
            if not strategy.hit(parse(rule[0]), _prefix(), rule[1], rule[2]):
                raise _refuse(rule[3], _used_up(rule))
    except RateLimited:
        raise
    except LimitsUnavailable as exc:
        raise unavailable(what) from exc
    except Exception as exc:
        raise _unavailable(exc, what)
