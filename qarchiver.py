"""The archive worker: builds ZIP archives of selections, boards and whole accounts
from a queue of their own (`<DAYDREAM_QUEUE>-archives`), so they never wait behind a
generation. It needs no GPU and never imports torch; it reads the images folder and
writes the archives folder (both must be the same volumes the web processes see).

    python qarchiver.py                                            # what `make run` starts
    rq worker -c qarchiver -w qarchiver.ArchiveWorker              # the same with RQ's CLI

Start more of them (on any machine with the shared folders, database and Redis) to
build more archives at once."""
from __future__ import annotations

import logging

from rq import Queue

from config import Config
from worker.rq_worker import PromptlyStoppingWorker

_config = Config()

# Read by `rq worker -c qarchiver`.
REDIS_URL = _config.REDIS_URL
QUEUES = [_config.ARCHIVE_QUEUE_NAME]
# Expired archives are deleted at least this often (and after every job).
MAINTENANCE_INTERVAL = 60

log = logging.getLogger("daydream.archiver")


def reconcile_archives() -> dict:
    """The reconciler thread's round (worker/heartbeat.py gives it an app context)."""
    from services.generation import model_jobs
    from services.library import archives

    return {"requeued": archives.reconcile_archives(), **model_jobs.reconcile()}


class ArchiveWorker(PromptlyStoppingWorker):
    """Runs jobs in its own process (nothing heavy to fork for), and at start-up and
    each maintenance round queues lost archives again and deletes expired ones. A
    heartbeat thread (worker/heartbeat.py) tells the others it is alive."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        # Wake up for maintenance even when no archive is asked for.
        return MAINTENANCE_INTERVAL

    threads = None

    def work(self, *args, **kwargs):
        from worker import get_app
        from worker.heartbeat import WorkerThreads

        app = get_app()
        # The heartbeat, and a reconciler that queues again the archives of an archive
        # worker that died (one worker at a time, every RECONCILE_INTERVAL seconds).
        self.threads = WorkerThreads(app, app.config["ARCHIVE_QUEUE_NAME"], self.name, reconcile_archives)
        self.threads.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            self.threads.stop()

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        from worker import archive_jobs

        try:
            archive_jobs.maintenance()
        except Exception:
            log.exception("archive maintenance failed")


def main() -> None:
    import redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    connection = redis.Redis.from_url(REDIS_URL)
    worker = ArchiveWorker([Queue(name, connection=connection) for name in QUEUES],
                           connection=connection)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
