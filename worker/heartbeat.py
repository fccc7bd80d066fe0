"""The threads a worker process runs beside its jobs: the heartbeat (services/core/liveness.py)
and the periodic reconciler. Threads, not RQ's maintenance hook: RQ runs that only
between blocking waits, and a heartbeat must go on while a model loads or a step runs.

The two are separate threads so that a slow database (the reconciler) can never delay
the heartbeat and make a working worker look dead. No torch here: the archive worker
uses them too."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import redis

from extensions import db
from services.core import keys, liveness

log = logging.getLogger("daydream.worker")

# serve.py names itself here for the processes it starts (a worker run by hand or by a
# service manager has no such parent to follow).
SUPERVISOR_ENV = "DAYDREAM_SUPERVISOR_PID"
# How long RQ's warm shutdown may take once serve.py is gone, before the process ends.
SUPERVISOR_GRACE = 10.0


def follow_supervisor(grace: float = SUPERVISOR_GRACE, every: float = 0.5) -> threading.Thread | None:
    """A worker started by serve.py ends when serve.py does, even when serve.py was
    killed outright: it is sent SIGTERM then (serve.py's PR_SET_PDEATHSIG), and this
    watch ends it `grace` seconds later if a warm shutdown has not (one stuck on a
    Redis that went down with serve.py, say). None when not started by serve.py."""
    try:
        supervisor = int(os.environ.get(SUPERVISOR_ENV, ""))
    except ValueError:
        return None

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(every)
        time.sleep(grace)
        log.warning("serve.py is gone and this worker did not stop by itself: ending it")
        os._exit(1)

    thread = threading.Thread(target=watch, name="supervisor watch", daemon=True)
    thread.start()
    return thread


class Periodic(threading.Thread):
    """Calls fn() inside an app context every `every` seconds until stopped. Errors are
    logged (a Redis outage once, not every tick) and never end the thread."""

    def __init__(self, app, every: float, fn: Callable[[], None], name: str):
        super().__init__(name=name, daemon=True)
        self.app = app
        self.every = every
        self.fn = fn
        self._stopping = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stopping.is_set():
            self.tick()
            self._stopping.wait(self.every)

    def tick(self) -> None:
        try:
            with self.app.app_context():
                try:
                    self.fn()
                finally:
                    db.session.remove()
            if self._failing:
                log.info("%s: working again", self.name)
            self._failing = False
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("%s: Redis unavailable (%s); retrying", self.name, exc)
            self._failing = True
        except Exception:
            log.exception("%s failed", self.name)

    def stop(self) -> None:
        self._stopping.set()


class WorkerThreads:
    """Heartbeat + reconciler for one worker process of a pool (a queue name)."""

    def __init__(self, app, pool: str, name: str, reconcile: Callable[[], dict] | None,
                 info: Callable[[], dict] | None = None):
        config = app.config
        self.app, self.pool, self.name = app, pool, name
        self.ttl = config["HEARTBEAT_TTL"]
        self.info = info or dict
        self.heartbeat = Periodic(app, config["HEARTBEAT_INTERVAL"], self.beat, f"heartbeat {name}")
        self.period = config["RECONCILE_INTERVAL"]
        self.reconcile = reconcile
        self.reconciler = (Periodic(app, max(self.period / 3, 0.2), self.maybe_reconcile,
                                    f"reconciler {name}") if reconcile else None)

    def beat(self) -> None:
        liveness.beat(self.pool, self.name, self.ttl, **self.info())

    def maybe_reconcile(self) -> None:
        """Whichever worker of the pool takes the turn runs it, once a period."""
        if liveness.take_turn(keys.reconcile_lock(self.pool), self.name, self.period):
            settled = self.reconcile()
            if any(settled.values()):
                log.info("reconciler settled %s", settled)

    def start(self) -> None:
        follow_supervisor()
        self.heartbeat.tick()  # alive before the first job is taken
        self.heartbeat.start()
        if self.reconciler:
            self.reconciler.start()

    def stop(self) -> None:
        self.heartbeat.stop()
        if self.reconciler:
            self.reconciler.stop()
        try:
            with self.app.app_context():
                liveness.forget(self.pool, self.name)
        except redis.RedisError:
            pass
