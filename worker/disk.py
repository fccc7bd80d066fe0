"""Free space under the images folder. While the images folder's disk has less free space
than DAYDREAM_MIN_FREE_MB, a generation worker takes no task (qworker.DaydreamWorker
waits before each job, checking every RETRY_S seconds) and its heartbeat says why
(`disk`), which /healthz and Admin → Queue show: a task it took would only fail to store
its images. A task that runs into a full disk anyway keeps the images it stored and is
refunded the others' share (services/generation/tasks.py fail_task). No torch here."""
from __future__ import annotations

import logging
import time
from typing import Callable

from services.library import storage
from worker import get_app

log = logging.getLogger("daydream.worker")

RETRY_S = 2.0


def status() -> str:
    """"ok", or why this worker takes no task ("low: 120 MB free under …")."""
    app = get_app()
    with app.app_context():
        return storage.space_status(app.config["MIN_FREE_MB"])


def ready() -> bool:
    return status() == "ok"


def wait_for_space(stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Return once there is room (at once when there is): the caller then takes its job.
    Says so in the log when it starts waiting and when it goes on."""
    said = None
    while not stop_requested():
        now = status()
        if now == "ok":
            break
        if said is None:
            log.error("the images folder's disk is almost full (%s); taking no tasks until there "
                      "is room", now)
        said = now
        time.sleep(RETRY_S)
    if said is not None:
        log.info("the images folder has room again: taking tasks")
