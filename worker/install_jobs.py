"""Model jobs on the archive worker (qarchiver.py): RQ calls run_install(job_id) for a
model install (services/generation/installs.py). No torch here: downloading and checking
headers needs none, so installs never wait behind a generation.

The app lives as long as the worker process; each job pushes a fresh app context."""
from __future__ import annotations

from extensions import db
from services.generation import installs
from worker import get_app


def run_install(job_id: str) -> str:
    with get_app().app_context():
        try:
            return installs.run_install(job_id)
        finally:
            db.session.remove()
