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
from datetime import datetime

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
    raises Cancelled (of the caller's choosing) once the row has left `running`."""

    def __init__(self, job_id: str, cancelled: type[Exception]):
        self.job_id, self.cancelled = job_id, cancelled
        self.last = 0.0

    def __call__(self, done: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        values = {"done_bytes": done}
        if total is not None:
            values["total_bytes"] = total
        if not transitions.advance(ModelJob, self.job_id, (RUNNING,), **values):
            raise self.cancelled()
        announce(self.job_id)


def state_of(job_id: str) -> str | None:
    return db.session.scalar(sa.select(ModelJob.state).where(ModelJob.id == job_id))


def reconcile_lost(*, grace_s: float = 30.0) -> int:
    """Fail the unfinished jobs whose RQ job is gone or has ended without ending its row (an
    archive worker that died mid-job: RQ's registries mark its job failed). The archive
    workers' reconciler runs it (qarchiver.py). An install's .part is kept: installing the
    same thing again resumes it. Returns how many were failed."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    cutoff = utcnow().timestamp() - grace_s
    rows = db.session.scalars(sa.select(ModelJob).where(ModelJob.state.in_(UNFINISHED))).all()
    conn = redis_client.connection()
    failed = 0
    for job in rows:
        if job.created_at.replace(tzinfo=None).timestamp() > cutoff:
            continue
        try:
            status = Job.fetch(keys.model_job(job.id), connection=conn).get_status(refresh=True)
        except NoSuchJobError:
            status = None
        if status in (None, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED):
            if finish(job.id, FAILED, error="The worker running this job stopped before it ended; start it "
                                            "again (an install takes up its download where it stopped)."):
                failed += 1
    return failed
