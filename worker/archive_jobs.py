"""The archive job. RQ calls build_archive(archive_id) on the archive worker
(qarchiver.py), from a queue of its own, so archives never wait behind the GPU.
No torch here: the archive worker runs anywhere the images folder is mounted.
The same worker runs the model convert and merge jobs (run_model_op), each in a
child process that has torch (worker/model_ops.py).

The app lives as long as the worker process; each job pushes a fresh app context."""
from __future__ import annotations

import logging
import socket
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
    it) and then runs the convert and merge jobs queued meanwhile. The jobs a child leaves
    unfinished (it was killed, ran out of memory or of time) fail with the reason, and
    nothing half-written stays. A job a child took already is not started again."""
    with get_app().app_context():
        try:
            job = db.session.get(ModelJob, job_id)
            if job is None or job.state != "queued":
                return f"model job {job_id}: {job.state if job else 'gone'} already"
        finally:
            db.session.remove()
    proc = subprocess.Popen([sys.executable, "-m", "worker.model_ops", job_id], cwd=ROOT)
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # the job's time ran out (RQ) or the worker is stopping
            proc.kill()
            proc.wait()
    with get_app().app_context():
        try:
            left = model_ops.abandon(f"{socket.gethostname()}:{proc.pid}",
                                     f"the {{kind}} stopped before it finished (exit status {proc.returncode})")
            job = db.session.get(ModelJob, job_id)
            if job is not None and job.state == "queued":  # the child ended before taking it
                model_ops.fail(job, f"the {job.kind} could not start (exit status {proc.returncode})")
            return f"model job {job_id}: exit status {code}" + (f", left unfinished: {left}" if left else "")
        finally:
            db.session.remove()
