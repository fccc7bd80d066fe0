"""The local clock of caps and class budgets: the current hour, day, week (from Monday)
and month in DAYDREAM_TIMEZONE (UTC when unset or unknown). Times go in and out as the
database keeps them, naive UTC; the local time is for the messages people read."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

PERIODS = ("hour", "day", "week", "month")


def zone() -> tzinfo:
    try:
        return ZoneInfo(current_app.config.get("TIMEZONE") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local(moment: datetime | None = None) -> datetime:
    """A naive UTC time (now when None) on the local clock."""
    moment = moment or datetime.now(timezone.utc).replace(tzinfo=None)
    return moment.replace(tzinfo=timezone.utc).astimezone(zone())


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _local_start(period: str, here: datetime) -> datetime:
    midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hour":
        return here.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":
        return midnight - timedelta(days=here.weekday())
    if period == "month":
        return midnight.replace(day=1)
    raise ValueError(f"not a period: {period!r}")


def _rebuild(naive_local: datetime) -> datetime:
    """A wall-clock time in the zone (the offset of that time, across a DST change)."""
    return naive_local.replace(tzinfo=zone())


def start_of(period: str, now: datetime | None = None) -> datetime:
    """When the current hour, day, week or month began (naive UTC)."""
    start = _local_start(period, local(now))
    return _utc(_rebuild(start.replace(tzinfo=None)))


def next_start(period: str, now: datetime | None = None) -> datetime:
    """When the next hour, day, week or month begins (naive UTC)."""
    start = _local_start(period, local(now)).replace(tzinfo=None)
    if period == "hour":
        after = _utc(_rebuild(start)) + timedelta(hours=1)  # (an hour is an hour, DST or not)
        return after
    if period == "day":
        start += timedelta(days=1)
    elif period == "week":
        start += timedelta(days=7)
    else:
        start = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _utc(_rebuild(start))


def clock(moment: datetime) -> str:
    """"14:00": a naive UTC time on the local clock, as a message says it."""
    return local(moment).strftime("%H:%M")
