"""Image caps (issue 27): how many images a user may make per hour and per day. A cap is
the smallest of their tier's (images_per_hour / images_per_day in DAYDREAM_TIERS) and
those of every class they are a pupil of (None: no cap); staff have none.

The images made are the samples of the user's tasks created in the current clock hour
or calendar day (on the local clock, DAYDREAM_TIMEZONE) that did not fail and were not
canceled (those are refunded in full). A submit that would go over is a 429 image_cap
with Retry-After, saying when the cap resets, in every API's shape."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from extensions import db
from models import Task, TaskState, User, iso, utcnow
from services.accounts import classes, credits, periods, tiers
from services.core.errors import ServiceError

WORDS = {"hour": "this hour", "day": "today"}


@dataclass
class Cap:
    period: str  # "hour" or "day"
    limit: int
    by: str  # who sets it, as the message says: "your plan", "your class"


class ImageCapReached(ServiceError):
    """429 image_cap: the user made as many images as a cap allows this hour or day."""

    status = 429
    code = "image_cap"

    def __init__(self, message: str, *, cap: Cap, made: int, resets_at: datetime, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.cap, self.made, self.resets_at = cap, made, resets_at

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["cap"] = {"period": self.cap.period, "limit": self.cap.limit, "made": self.made,
                                "resets_at": iso(self.resets_at)}
        return body


def caps_for(user: User) -> list[Cap]:
    """The user's hourly and daily caps (the smallest of their tier's and their classes';
    a class's wins a tie), those that are set."""
    if user.is_staff:
        return []
    tier = tiers.tier_for(user)
    pupil_of = classes.pupil_classes(user)
    found = []
    for period in ("hour", "day"):
        name = f"images_per_{period}"
        options = [(getattr(c, name), "your class") for c in pupil_of if getattr(c, name)]
        if tier.get(name):
            options.append((tier[name], "your plan"))
        if options:
            limit, by = min(options, key=lambda option: (option[0], option[1] != "your class"))
            found.append(Cap(period, limit, by))
    return found


def made_since(user_id: int, since: datetime) -> int:
    """The images of the user's tasks created since then, but for failed or canceled ones."""
    return int(db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Task.samples), 0)).where(
            Task.user_id == user_id, Task.created_at >= since,
            Task.state.not_in((TaskState.FAILED.value, TaskState.CANCELED.value)))))


def check(user: User, samples: int, now: datetime | None = None) -> None:
    """Call after the new task (of `samples` images) is flushed, so that it is counted:
    ImageCapReached when the user's tasks this hour or today, this one included, make
    more images than a cap allows. The user's row is held first, so parallel submits are
    counted one after another. When both caps are over, the one that resets later is
    said."""
    found = caps_for(user)
    if not found:
        return
    credits.hold_user(user.id)
    now = now or utcnow()
    over = []
    for cap in found:
        made = made_since(user.id, periods.start_of(cap.period, now))
        if made > cap.limit:
            over.append((periods.next_start(cap.period, now), cap, made - samples))
    if not over:
        return
    resets_at, cap, before = max(over, key=lambda item: item[0])
    raise ImageCapReached(message(cap, before, samples, resets_at), cap=cap, made=before, resets_at=resets_at,
                          retry_after=max(1, int((resets_at - now).total_seconds() + 0.999)))


def message(cap: Cap, before: int, samples: int, resets_at: datetime) -> str:
    """"You have made 20 images today; your class allows 20; more from 00:00" (with "and
    this task makes 4" when the task is what goes over)."""
    made = f"{before} image" if before == 1 else f"{before} images"
    this = f" and this task makes {samples}" if before < cap.limit else ""
    return (f"You have made {made} {WORDS[cap.period]}{this}; {cap.by} allows {cap.limit}; "
            f"more from {periods.clock(resets_at)}")
