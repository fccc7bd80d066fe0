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
    """Preloads the default model before taking jobs. Beside the jobs it runs a
    heartbeat and the reconciler in threads (worker/heartbeat.py); at start-up it
    settles what a predecessor left (a task whose worker died is failed and refunded
    at once), before it takes any job."""

    threads = None

    def work(self, *args, **kwargs):
        self.preload()
        try:
            return super().work(*args, **kwargs)
        finally:
            if self.threads:
                self.threads.stop()

    def preload(self) -> None:
        # Imported here, not at the top: `rq worker -c qworker` reads this module for
        # its settings, and worker.jobs brings torch and diffusers with it.
        from services.generation import catalog
        from services.generation.tasks import reconcile
        from worker import jobs
        from worker.heartbeat import WorkerThreads

        jobs.WORKER_NAME = self.name
        app = jobs.get_app()
        self.threads = WorkerThreads(app, app.config["QUEUE_NAME"], self.name, reconcile,
                                     info=lambda: {"model": jobs.loaded_model_id or ""})
        self.threads.start()
        with app.app_context():
            jobs.record_worker_state(jobs=0, loads=0, model="", heartbeat=0)
            try:
                settled = reconcile()
                if any(settled.values()):
                    log.info("at start-up the reconciler settled %s", settled)
            except Exception:
                log.exception("reconciler failed")
            try:
                jobs.load_model(catalog.default_model())
            except Exception as exc:  # the job reports it to the user; stay up
                log.error("could not preload the default model: %s", exc)


def main() -> None:
    import redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    connection = redis.Redis.from_url(REDIS_URL)
    worker = DaydreamWorker([Queue(name, connection=connection) for name in QUEUES],
                            connection=connection)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
