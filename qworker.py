"""RQ worker settings and the worker class for Daydream's GPU worker.

    python qworker.py                                   # what `make run` starts
    rq worker -c qworker -w qworker.DaydreamWorker      # the same with RQ's own CLI

One worker per GPU; start more (on more machines, against the same Redis and
database) to scale out. The worker loads the pipeline once and keeps it: it runs
jobs in its own process (no fork per job: CUDA does not survive a fork)."""
from __future__ import annotations

import logging

from rq import Queue, SimpleWorker

from config import Config

_config = Config()

# Read by `rq worker -c qworker`.
REDIS_URL = _config.REDIS_URL
QUEUES = [_config.QUEUE_NAME]

log = logging.getLogger("daydream.worker")


class DaydreamWorker(SimpleWorker):
    """Preloads the default model before taking jobs and settles lost tasks at
    start-up and at each maintenance round."""

    def work(self, *args, **kwargs):
        self.preload()
        return super().work(*args, **kwargs)

    def preload(self) -> None:
        from worker import jobs

        jobs.WORKER_NAME = self.name
        app = jobs.get_app()
        with app.app_context():
            from services import catalog

            jobs.record_worker_state(jobs=0, loads=0, model="", heartbeat=0)
            try:
                jobs.load_model(catalog.default_model())
            except Exception as exc:  # the job reports it to the user; stay up
                log.error("could not preload the default model: %s", exc)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        from services.tasks import reconcile
        from worker import jobs

        with jobs.get_app().app_context():
            try:
                settled = reconcile()
                if any(settled.values()):
                    log.info("reconciler settled %s", settled)
            except Exception:
                log.exception("reconciler failed")


def main() -> None:
    import redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    connection = redis.Redis.from_url(REDIS_URL)
    worker = DaydreamWorker([Queue(name, connection=connection) for name in QUEUES],
                            connection=connection)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
