"""The archive job. RQ calls build_archive(archive_id) on the archive worker
(qarchiver.py), from a queue of its own, so archives never wait behind the GPU.
No torch here: the archive worker runs anywhere the images folder is mounted.

The app lives as long as the worker process; each job pushes a fresh app context."""
from __future__ import annotations

import logging

from extensions import db
from services.library import archives
from worker import get_app

log = logging.getLogger(__name__)


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
