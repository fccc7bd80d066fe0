"""Model jobs (models.ModelJob): the background model operations staff start on Admin →
Models, whatever their kind (install: installs.py; convert and merge: their own modules).
This module is what every kind shares: the row as the API shows it, the list, cancel,
queueing on the archive worker, progress (saved a few times a second and sent to staff as
a `model_job` event), and the one place a job ends (state, finished_at, event, audit).

A kind registers the dotted name of its RQ function in JOB_FUNCTIONS; the job is given
the row's id and nothing else. States only move forward (services/core/transitions.py):
queued → running → done | failed | cancelled."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from rq import Queue

from extensions import db
from models import ModelJob, User, iso, utcnow
from services.core import audit, events, keys, redis_client, transitions
from services.core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
UNFINISHED = (QUEUED, RUNNING)
ENDED = (DONE, FAILED, CANCELLED)
# The RQ function of each kind (run on the archive worker: no torch in install jobs).
JOB_FUNCTIONS = {"install": "worker.install_jobs.run_install",
                 # (a child process with torch: worker/model_ops.py)
                 "convert": "worker.archive_jobs.run_model_op", "merge": "worker.archive_jobs.run_model_op"}
# A job's progress is saved and sent at most this often.
PROGRESS_EVERY_S = 0.25


def _seconds_since(value: datetime | None) -> float | None:
    if value is None:
        return None
    return max(0.0, (utcnow() - value).total_seconds())


def job_to_dict(job: ModelJob) -> dict:
    """A job as the API and the `model_job` event show it (API.md). `rate` (bytes a second,
    the average since the job started) and `eta_s` while it runs and its size is known."""
    data = {"id": job.id, "kind": job.kind, "state": job.state, "source": job.source,
            "options": job.options or {}, "destination": job.destination,
            "done_bytes": job.done_bytes or 0, "total_bytes": job.total_bytes, "sha256": job.sha256,
            "error": job.error, "model_id": job.model_id, "created_at": iso(job.created_at),
            "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
            "rate": None, "eta_s": None}
    elapsed = _seconds_since(job.started_at) if job.state == RUNNING else None
    if elapsed and elapsed > 0.5 and job.done_bytes:
        data["rate"] = round(job.done_bytes / elapsed)
        if job.total_bytes and job.total_bytes >= job.done_bytes and data["rate"]:
            data["eta_s"] = round((job.total_bytes - job.done_bytes) / data["rate"], 1)
    user = db.session.get(User, job.created_by_id) if job.created_by_id else None
    data["created_by"] = user.username if user is not None else None
    return data


def list_jobs(*, offset: int = 0, limit: int = 50, kind: str | None = None) -> tuple[list[ModelJob], int]:
    """Newest first; unfinished ones first of all."""
    query = sa.select(ModelJob)
    if kind:
        query = query.where(ModelJob.kind == kind)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    unfinished_first = sa.case((ModelJob.state.in_(UNFINISHED), 0), else_=1)
    rows = db.session.scalars(query.order_by(unfinished_first, ModelJob.created_at.desc(), ModelJob.id)
                              .offset(offset).limit(limit)).all()
    return list(rows), total


def get_job(job_id: str) -> ModelJob:
    job = db.session.get(ModelJob, job_id)
    if job is None:
        raise NotFound("No such model job.")
    return job


def queue() -> Queue:
    return Queue(current_app.config["ARCHIVE_QUEUE_NAME"], connection=redis_client.connection())


def enqueue(job: ModelJob) -> None:
    queue().enqueue(JOB_FUNCTIONS[job.kind], job.id, job_id=keys.model_job(job.id),
                    job_timeout=current_app.config["INSTALL_JOB_TIMEOUT"], result_ttl=3600,
                    failure_ttl=7 * 24 * 3600, description=f"model {job.kind} {job.id}")


def staff_rooms() -> list[str]:
    return [user.room for user in db.session.scalars(sa.select(User).where(User.role == "staff", User.active))]


def announce(job_id: str) -> None:
    """Send the job's row to every staff member's room (a courtesy: the row is the truth)."""
    job = db.session.get(ModelJob, job_id)
    if job is None:
        return
    db.session.refresh(job)
    try:
        events.emit_model_job(staff_rooms(), job_to_dict(job))
    except Exception as exc:
        log.warning("model_job event not sent: %s", exc)


def start(job_id: str) -> bool:
    """queued → running (the job's first step); False: cancelled before it started, or gone."""
    moved = transitions.advance(ModelJob, job_id, (QUEUED,), state=RUNNING, started_at=utcnow())
    if moved:
        announce(job_id)
    return moved


def finish(job_id: str, state: str, *, details: dict | None = None, **values) -> bool:
    """The one place a job ends: running (or queued) → done | failed | cancelled, with its
    audit row (by the staff member who started it) in the same transaction."""
    job = db.session.get(ModelJob, job_id)
    if job is None:
        return False
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    kind, source = job.kind, job.source

    def then():
        audit.record(f"models.{kind}_end", target_type="model_job", target_id=job_id, target_name=source[:255],
                     actor=actor, details={"state": state, "error": values.get("error"),
                                           "model_id": values.get("model_id"), **(details or {})})

    moved = transitions.advance(ModelJob, job_id, UNFINISHED, state=state, finished_at=utcnow(),
                                then=then, **values)
    if moved:
        announce(job_id)
    return moved


def cancel(job_id: str, reason: str = "") -> ModelJob:
    """Staff cancel a queued or running job: its state moves at once; a running job sees it
    at its next progress step, stops, and removes what it had written."""
    job = get_job(job_id)
    if job.state not in UNFINISHED:
        raise Conflict(f"This job is {job.state} already.", code="job_finished")
    kind, source = job.kind, job.source

    def then():
        audit.record("models.job_cancel", target_type="model_job", target_id=job_id,
                     target_name=source[:255], reason=reason, details={"kind": kind})

    if not transitions.advance(ModelJob, job_id, UNFINISHED, state=CANCELLED, finished_at=utcnow(),
                               error="Cancelled by staff.", then=then):
        raise Conflict("This job has just ended.", code="job_finished")
    announce(job_id)
    return get_job(job_id)


class Progress:
    """Saves done/total to a running job's row at most every PROGRESS_EVERY_S and sends it;
    raises Cancelled (of the caller's choosing) once the row has left `running`.

    retrying(wait, why) puts "retrying in N s after 503" in the row's options (`stage`) and
    sends it; the next progress takes it off again. pause(seconds) waits, and raises
    Cancelled as soon as staff cancel the job."""

    def __init__(self, job_id: str, cancelled: type[Exception]):
        self.job_id, self.cancelled = job_id, cancelled
        self.last = 0.0
        self.noted = False  # a retry note is on the row

    def __call__(self, done: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not self.noted and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        values = {"done_bytes": done}
        if total is not None:
            values["total_bytes"] = total
        if self.noted:
            values["options"] = {k: v for k, v in self._options().items() if k != "stage"}
        if not transitions.advance(ModelJob, self.job_id, (RUNNING,), **values):
            raise self.cancelled()
        self.noted = False
        announce(self.job_id)

    def _options(self) -> dict:
        return dict(db.session.scalar(sa.select(ModelJob.options).where(ModelJob.id == self.job_id)) or {})

    def retrying(self, wait: float, why: str) -> None:
        stage = f"retrying in {round(wait, 1):g} s after {why}"
        if not transitions.advance(ModelJob, self.job_id, (RUNNING,), options={**self._options(), "stage": stage}):
            raise self.cancelled()
        self.noted = True
        log.info("model job %s: %s", self.job_id, stage)
        announce(self.job_id)

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, PROGRESS_EVERY_S))
            db.session.commit()  # (a fresh read: the row as it is now)
            if state_of(self.job_id) != RUNNING:
                raise self.cancelled()


def state_of(job_id: str) -> str | None:
    return db.session.scalar(sa.select(ModelJob.state).where(ModelJob.id == job_id))


LOST_AGAIN = ("The job's place in the queue was lost again after it was queued again (did Redis restart?); "
              "start it again.")
WORKER_STOPPED = ("The worker running this job stopped before it ended; start it again (an install takes up "
                  "its download where it stopped).")


def reconcile_lost(*, grace_s: float = 30.0) -> dict:
    """The unfinished jobs whose RQ job is gone or has ended without ending its row. A
    queued one (its queue entry was lost: Redis restarted without its data) is queued
    again, once; lost a second time, or running (an archive worker that died mid-job:
    RQ's registries mark its job failed), it fails with the reason. The archive workers'
    reconciler runs it (qarchiver.py). An install's .part is kept: installing the same
    thing again resumes it. Returns {"failed": n, "requeued": n}."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    cutoff = utcnow().timestamp() - grace_s
    rows = db.session.scalars(sa.select(ModelJob).where(ModelJob.state.in_(UNFINISHED))).all()
    conn = redis_client.connection()
    settled = {"failed": 0, "requeued": 0}
    for job in rows:
        if job.created_at.replace(tzinfo=None).timestamp() > cutoff:
            continue
        try:
            entry = Job.fetch(keys.model_job(job.id), connection=conn)
            status = entry.get_status(refresh=True)
        except NoSuchJobError:
            entry, status = None, None
        if status not in (None, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED):
            continue
        if job.state == QUEUED and not (job.options or {}).get("requeued"):
            if requeue(job, entry):
                settled["requeued"] += 1
                continue
        if finish(job.id, FAILED, error=LOST_AGAIN if job.state == QUEUED else WORKER_STOPPED):
            settled["failed"] += 1
    return settled


def requeue(job: ModelJob, entry=None) -> bool:
    """Queue a queued job again whose queue entry was lost (marked `requeued` in its
    options, so that it happens once). False: it is no longer queued, or Redis refused."""
    job_id = job.id
    if not transitions.advance(ModelJob, job_id, (QUEUED,), options={**(job.options or {}), "requeued": 1}):
        return False
    try:
        if entry is not None:
            entry.delete()
        enqueue(get_job(job_id))
    except Exception as exc:
        log.warning("model job %s could not be queued again: %s", job_id, exc)
        return False
    log.info("model job %s queued again (its queue entry was lost)", job_id)
    announce(job_id)
    return True


def prune_finished(keep_days: float | None = None) -> int:
    """Delete the rows of the jobs that ended more than keep_days ago (default
    DAYDREAM_MODEL_JOBS_KEEP_DAYS; 0 keeps them). Their audit rows stay. The archive
    workers' reconciler runs it. Returns how many went."""
    days = current_app.config["MODEL_JOBS_KEEP_DAYS"] if keep_days is None else keep_days
    if not days or days <= 0:
        return 0
    before = utcnow() - timedelta(days=days)
    ended = sa.func.coalesce(ModelJob.finished_at, ModelJob.created_at)
    gone = db.session.execute(sa.delete(ModelJob).where(ModelJob.state.in_(ENDED), ended < before)
                              .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if gone:
        log.info("pruned %d model jobs that ended before %s", gone, before.isoformat())
    return gone


def reconcile() -> dict:
    """The model jobs' part of the archive workers' reconciler round (qarchiver.py)."""
    lost = reconcile_lost()
    return {"model_jobs_failed": lost["failed"], "model_jobs_requeued": lost["requeued"],
            "model_jobs_pruned": prune_finished()}
