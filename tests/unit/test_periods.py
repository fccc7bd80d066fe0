"""The local clock of image caps and class budgets (services/accounts/periods.py): the
current hour, day, week and month begin and end on DAYDREAM_TIMEZONE's clock, across a
change of summer time; an unknown zone is UTC. Times go in and out as naive UTC."""
from __future__ import annotations

from datetime import datetime

import pytest
from flask import Flask

from services.accounts import periods


def on_the_clock_of(zone: str):
    app = Flask(__name__)
    app.config["TIMEZONE"] = zone
    return app.app_context()


@pytest.mark.parametrize("zone, now, period, start, end", [
    ("UTC", datetime(2025, 3, 12, 14, 35), "hour", datetime(2025, 3, 12, 14), datetime(2025, 3, 12, 15)),
    ("UTC", datetime(2025, 3, 12, 14, 35), "day", datetime(2025, 3, 12), datetime(2025, 3, 13)),
    ("UTC", datetime(2025, 3, 12, 14, 35), "week", datetime(2025, 3, 10), datetime(2025, 3, 17)),  # Mondays
    ("UTC", datetime(2025, 12, 31, 23, 59), "month", datetime(2025, 12, 1), datetime(2026, 1, 1)),
    # Tokyo is 9 hours ahead: its day began at 15:00 UTC the day before.
    ("Asia/Tokyo", datetime(2025, 3, 12, 14, 35), "day", datetime(2025, 3, 11, 15), datetime(2025, 3, 12, 15)),
    # London's clocks go forward on 30 March 2025: that day is 23 hours long.
    ("Europe/London", datetime(2025, 3, 30, 12), "day", datetime(2025, 3, 30), datetime(2025, 3, 30, 23)),
    ("Europe/London", datetime(2025, 4, 15, 12), "month", datetime(2025, 3, 31, 23), datetime(2025, 4, 30, 23)),
    ("Not/AZone", datetime(2025, 3, 12, 14, 35), "day", datetime(2025, 3, 12), datetime(2025, 3, 13)),
])
def test_a_period_begins_and_ends_on_the_local_clock(zone, now, period, start, end):
    with on_the_clock_of(zone):
        assert periods.start_of(period, now) == start
        assert periods.next_start(period, now) == end


def test_a_time_is_said_on_the_local_clock():
    with on_the_clock_of("Asia/Tokyo"):
        assert periods.clock(datetime(2025, 3, 12, 15)) == "00:00"
