"""RQ worker settings and the worker class for Daydream's GPU worker.

    python qworker.py                                   # what `make run` starts
    rq worker -c qworker -w qworker.DaydreamWorker      # the same with RQ's own CLI

One worker per GPU; start more (on more machines, against the same Redis and
database) to scale out. The worker loads the pipeline once and keeps it: it runs
jobs in its own process (no fork per job: CUDA does not survive a fork)."""
from __future__ import annotations

import logging
import time

from rq import Queue

from config import Config
from worker.rq_worker import PromptlyStoppingWorker

_config = Config()

# Read by `rq worker -c qworker`.
REDIS_URL = _config.REDIS_URL
QUEUES = [_config.QUEUE_NAME]

log = logging.getLogger("daydream.worker")


class DaydreamWorker(PromptlyStoppingWorker):
    """Preloads the default model before taking jobs. Beside the jobs it runs a
    heartbeat and the reconciler in threads (worker/heartbeat.py); at start-up it
    settles what a predecessor left (a task whose worker died is failed and refunded
    at once), before it takes any job."""

    threads = None

    def work(self, *args, **kwargs):
        self.preload()
        try:
            self.wait_for_safety()
            return super().work(*args, **kwargs)
        finally:
            if self.threads:
                self.threads.stop()

    def preload(self) -> None:
        # Imported here, not at the top: `rq worker -c qworker` reads this module for
        # its settings, and worker.jobs brings torch and diffusers with it.
        from services.generation import catalog
        from services.generation.tasks import reconcile
        from worker import disk, get_app, jobs, safety
        from worker import metrics as worker_metrics
        from worker.heartbeat import WorkerThreads
        from worker.pipelines.memory import device_info

        jobs.WORKER_NAME = self.name
        app = get_app()

        # A worker without its image classifier (DAYDREAM_SAFETY on), or whose images
        # folder's disk is almost full (DAYDREAM_MIN_FREE_MB), takes no task: its
        # heartbeat says why, and names no model (the fair queue sends it nothing).
        # Its device and GPU memory, for the memory plans of the web tier (planner.py).
        device = device_info(app.config["DEVICE"])

        def info() -> dict:
            room = disk.status()
            serving = safety.ready() and room == "ok"
            return {"model": (jobs.loaded_model_id or "") if serving else "",
                    "safety": safety.status(), "disk": room, **device, **worker_metrics.heartbeat_info()}

        self.threads = WorkerThreads(app, app.config["QUEUE_NAME"], self.name, reconcile, info=info)
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
            safety.load()

    def execute_job(self, job, queue):
        """Before each job: no task is taken while the images folder's disk is almost
        full (worker/disk.py). The job waits in this worker meanwhile; its task stays
        queued for any worker with room (the reconciler gives it another job)."""
        from rq.exceptions import StopRequested

        from worker import disk

        disk.wait_for_space(lambda: self._stop_requested)
        if self._stop_requested:  # stopped while waiting: the job is not run (nor lost: see above)
            raise StopRequested()
        return super().execute_job(job, queue)

    def wait_for_safety(self) -> None:
        """DAYDREAM_SAFETY on and no classifier loaded: take no job (the queued tasks wait)
        and try again every SAFETY_RETRY seconds, so a classifier dropped into the folder
        is picked up without a restart (worker/safety.py)."""
        from worker import get_app, safety

        app = get_app()
        said = None
        while not safety.ready():
            if safety.status() != said:
                said = safety.status()
                log.error("the image check is on (DAYDREAM_SAFETY=%s) but cannot run: %s; taking no "
                          "tasks until it can", app.config["SAFETY"], said)
            time.sleep(max(app.config["SAFETY_RETRY"], 0.2))
            with app.app_context():
                safety.load()
        if said is not None:
            log.info("the image check is ready: taking tasks")


def main() -> None:
    import redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    connection = redis.Redis.from_url(REDIS_URL)
    worker = DaydreamWorker([Queue(name, connection=connection) for name in QUEUES],
                            connection=connection)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
