"""The worker tier: generation on the GPU (jobs.py, RQ's entry; render.py runs a batch of
any task kind of kinds/; pipelines/ loads and keeps the pipeline; progress.py, previews.py,
safety.py, heartbeat.py) and archives (archive_jobs.py)."""
from __future__ import annotations

from flask import Flask

_app: Flask | None = None


def get_app() -> Flask:
    """The app of this worker process, made once: each job pushes a fresh context of it.
    No torch here, so the archive worker can import it too."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app(web=False)
    return _app
