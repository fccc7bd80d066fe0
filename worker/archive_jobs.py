"""The archive job. RQ calls build_archive(archive_id) on the archive worker
(qarchiver.py), from a queue of its own, so archives never wait behind the GPU.
No torch here: the archive worker runs anywhere the images folder is mounted.
The same worker runs the model convert and merge jobs (run_model_op), each in a
child process that has torch (worker/model_ops.py).

The app lives as long as the worker process; each job pushes a fresh app context."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from extensions import db
from models import ModelJob
from services.generation import model_ops
from services.library import archives
from worker import get_app

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


def build_archive(archive_id: str) -> str:
    """Build one archive, then delete the archives that have expired."""
    with get_app().app_context():
        try:
            return archives.build(archive_id)
        finally:
            try:
                archives.expire_archives()
            except Exception:
                log.exception("expiring archives failed")
            db.session.remove()


def maintenance() -> None:
    """Queue again the archives whose job was lost; delete the expired ones."""
    with get_app().app_context():
        try:
            requeued = archives.reconcile_archives()
            result = archives.expire_archives()
            if requeued or any(result.values()):
                log.info("archives: %d queued again, %s", requeued, result)
        finally:
            db.session.remove()


def run_model_op(job_id: str) -> str:
    """A convert or merge job (services/generation/model_ops.py): run in a child process,
    `python -m worker.model_ops <job id>`, which brings torch (this worker never imports
    it). A child that ends without finishing its job (killed, out of memory) leaves the
    job failed with the reason, and nothing half-written."""
    proc = subprocess.Popen([sys.executable, "-m", "worker.model_ops", job_id], cwd=ROOT)
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # the job's time ran out (RQ) or the worker is stopping
            proc.kill()
            proc.wait()
    with get_app().app_context():
        try:
            job = db.session.get(ModelJob, job_id)
            if job is not None and job.state in model_ops.ACTIVE:
                model_ops.fail(job, f"the {job.kind} stopped before it finished (exit status {proc.returncode})")
            return f"model job {job_id}: {job.state if job else 'gone'} (exit status {code})"
        finally:
            db.session.remove()
