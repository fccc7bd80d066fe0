"""What does the whole service cost on top of a bare diffusers loop, end to end?

N users submit M tasks each at once (4 × 3 by default: the demo model at 256², 8 steps,
one image a task) through the HTTP API of a real instance (Flask's test client, users
registered with bearer tokens, as bench/bench_worker.py does) to a real worker process
(`python qworker.py`); the time runs from the first submit (the first task's created_at)
to the last finish (the last finished_at: the service's own clock, so the bench's polling
does not count). Against it, in the same run, a bare diffusers loop in this process makes
the same images one after another (`pipe(prompt=..., num_inference_steps=...,
guidance_scale=..., width=..., height=..., generator=...)`) with the pipeline the worker
loads from the same folder (worker/pipelines/load.load_pipeline), the same scheduler,
guidance, prompts and seeds.

Rounds alternate (W B, B W, ...) after one warm-up of each, and the ratio is of the
medians. Every task of every round has a prompt of its own: the worker keeps a
prompt-embedding cache (worker/pipelines/prompt_cache.py) that the bare loop does not
have, and distinct prompts leave it nothing to reuse, so both encode every prompt.

The per-task fixed cost is measured inside the worker: each job records its wall time
(from the claim to its end, the metrics included) and the part of it spent in pipeline
calls (worker/jobs.record_job, daydream:jobs:<worker>). Σ(job − call) over a round's
jobs (the ones that found nothing to run too) ÷ its tasks is the worker's own time per
task: claim, database writes, PNG and thumbnail, events. What RQ does between jobs
(taking the next job, its bookkeeping) is outside a job; it shows in the ratio and is
printed as the gap.

Targets: ratio ≤ 1.10 and per-task fixed cost ≤ 50 ms. This machine may be shared:
compare only figures from one run, and repeat a run before believing a change.

    python -m bench.bench_e2e [--model demo] [--models DIR] [--users 4] [--tasks-per-user 3]
                              [--size 256] [--steps 8] [--rounds 3] [--device auto]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_worker import describe, load_bare_pipeline, stack, worker

TARGET_RATIO = 1.10
TARGET_FIXED_MS = 50.0
SEED = 4321
PROMPTS = ("a lighthouse on a cliff at sunset", "a bowl of lemons on a blue table", "a fox in fresh snow",
           "a city street in the rain at night", "a sailing boat on a calm lake", "an old library with a ladder")


def prompt_for(round_no: int, user: int, task: int) -> str:
    """A prompt no other task of the run has (the prompt cache gets no hit)."""
    return f"{PROMPTS[(user * 7 + task) % len(PROMPTS)]}, study {round_no}-{user}-{task}"


@dataclass
class Round:
    """One measured round of each side."""

    worker_s: float = 0.0  # first submit → last finish
    bare_s: float = 0.0  # the bare loop, the same images
    tasks: int = 0
    job_s: float = 0.0  # Σ the worker's job wall times
    call_s: float = 0.0  # Σ of which in pipeline calls
    jobs: int = 0
    empty_jobs: int = 0

    @property
    def fixed_ms(self) -> float:
        return (self.job_s - self.call_s) / max(self.tasks, 1) * 1000

    @property
    def gap_ms(self) -> float:
        """Time per task outside the jobs: RQ, the queue between submits, idle waits."""
        return (self.worker_s - self.job_s) / max(self.tasks, 1) * 1000


@dataclass
class Result:
    label: str
    rounds: list[Round] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(r.worker_s for r in self.rounds) / statistics.median(r.bare_s for r in self.rounds)

    @property
    def fixed_ms(self) -> float:
        return statistics.median(r.fixed_ms for r in self.rounds)

    def passed(self) -> bool:
        return self.ratio <= TARGET_RATIO and self.fixed_ms <= TARGET_FIXED_MS


def job_records(st, worker_name: str) -> list[dict]:
    import redis

    from services.core import keys

    conn = redis.Redis.from_url(st.env["REDIS_URL"])
    return [json.loads(raw) for raw in conn.lrange(keys.worker_jobs(worker_name), 0, -1)]


def wait_idle(st, timeout: float = 120) -> None:
    """Until the worker's queue is empty and it runs nothing (the jobs of tasks that
    joined a batch, or found their task taken, have ended too)."""
    import redis
    from rq import Queue, Worker

    conn = redis.Redis.from_url(st.env["REDIS_URL"])
    queue = Queue(st.env["DAYDREAM_QUEUE"], connection=conn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue.count == 0 and all(w.get_state() != "busy" for w in Worker.all(queue=queue)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker's queue did not empty in {timeout:.0f} s")


def through_worker(st, worker_name: str, params: list[list[dict]], timeout: float) -> Round:
    """Each user (a thread) submits its list at once; the round's times from the rows and
    the worker's job records."""
    wait_idle(st)
    before = {json.dumps(r, sort_keys=True) for r in job_records(st, worker_name)}
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(params))
    lock = threading.Lock()

    def submit_all(n: int) -> None:
        try:
            user = st.users[n]
            barrier.wait(30)
            for p in params[n]:
                task_id = user.submit(**p)
                with lock:
                    ids.append(task_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit_all, args=(n,)) for n in range(len(params))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    rows = st.wait(ids, timeout)
    wait_idle(st)
    created = min(r[2] for r in rows.values())
    finished = max(r[4] for r in rows.values())
    mine = [r for r in job_records(st, worker_name) if json.dumps(r, sort_keys=True) not in before]
    return Round(worker_s=(finished - created).total_seconds(), tasks=len(ids),
                 job_s=sum(r["seconds"] for r in mine), call_s=sum(r["call_seconds"] for r in mine),
                 jobs=len(mine), empty_jobs=sum(1 for r in mine if not r["tasks"]))


def bare_loop(pipe, params: list[list[dict]], scheduler: str) -> float:
    """The same images, one call each, one after another."""
    import torch

    from worker.schedulers import apply_scheduler

    started = time.perf_counter()
    for p in (p for user in params for p in user):
        apply_scheduler(pipe, scheduler)
        pipe(prompt=p["prompt"], num_inference_steps=p["steps"], guidance_scale=p["guidance"], width=p["width"],
             height=p["height"], generator=torch.Generator("cpu").manual_seed(p["seed"]))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def warm_up(st, model: str, size: int, steps: int, timeout: float) -> dict:
    """One task at the model's defaults but size and steps (the worker's first call at
    this size, unmeasured); its scheduler and guidance, as the API gives them back."""
    user = st.user(0)
    task_id = user.submit(model=model, prompt=prompt_for(0, 0, 0), width=size, height=size, steps=steps,
                          seed=SEED, samples=1)
    st.wait([task_id], timeout)
    response = user.client.get(f"/api/v1/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.get_json()
    task = response.get_json()
    return {"scheduler": task["scheduler"], "guidance": task["guidance"]}


def run(*, model: str, models_path: Path, device: str, users: int, per_user: int, size: int, steps: int,
        rounds: int, timeout: float = 1800) -> Result:
    with stack(model, models_path, device) as st:
        for n in range(users):
            st.user(n)  # registered before any clock starts
        d: dict = {}

        def round_params(round_no: int) -> list[list[dict]]:
            return [[{"model": model, "prompt": prompt_for(round_no, u, t), "width": size, "height": size,
                      "steps": steps, "guidance": d["guidance"], "scheduler": d["scheduler"],
                      "seed": SEED + 100 * u + t, "samples": 1} for t in range(per_user)] for u in range(users)]

        pipe = load_bare_pipeline(model, models_path, device)  # builds the demo model once
        with worker(st, max_batch="") as (_proc, name):  # (DAYDREAM_MAX_BATCH unset: the default)
            d.update(warm_up(st, model, size, steps, timeout))
            result = Result(label=f"{describe(model, device)}, {users} users × {per_user} tasks, "
                                  f"{size}×{size}, {steps} steps, {d['scheduler']}, guidance {d['guidance']}")
            bare_loop(pipe, [[round_params(0)[0][0]]], d["scheduler"])  # its first call at this size
            for n in range(1, rounds + 1):
                params = round_params(n)
                measured = Round()
                for side in ("WB" if n % 2 else "BW"):
                    if side == "W":
                        got = through_worker(st, name, params, timeout)
                        got.bare_s = measured.bare_s
                        measured = got
                    else:
                        measured.bare_s = bare_loop(pipe, params, d["scheduler"])
                    result.order.append(side)
                result.rounds.append(measured)
                print(f"  round {n}: worker {measured.worker_s:.2f} s, bare {measured.bare_s:.2f} s, ratio "
                      f"{measured.worker_s / measured.bare_s:.3f}; worker's own time per task "
                      f"{measured.fixed_ms:.1f} ms ({measured.jobs} jobs, {measured.empty_jobs} found nothing)",
                      flush=True)
    return result


def report(r: Result) -> str:
    s = lambda values: ", ".join(f"{v:.2f}" for v in values)  # noqa: E731
    tasks = r.rounds[0].tasks
    lines = [
        f"end to end: {r.label}; rounds in order {' '.join(r.order)}",
        f"  through the service, first submit → last finish: {s(x.worker_s for x in r.rounds)} s",
        f"  bare diffusers loop, the same {tasks} images:     {s(x.bare_s for x in r.rounds)} s",
        f"  ratio service / bare (medians): {r.ratio:.3f}  (target ≤ {TARGET_RATIO})  "
        f"{'PASS' if r.ratio <= TARGET_RATIO else 'FAIL'}",
        f"  per-task fixed cost, the worker's time beyond the pipeline call: "
        f"{', '.join(f'{x.fixed_ms:.1f}' for x in r.rounds)} ms; median {r.fixed_ms:.1f} ms  "
        f"(target ≤ {TARGET_FIXED_MS:.0f} ms)  {'PASS' if r.fixed_ms <= TARGET_FIXED_MS else 'FAIL'}",
        f"  time per task outside the jobs (RQ, idle): "
        f"{', '.join(f'{x.gap_ms:.1f}' for x in r.rounds)} ms  (no target)",
        "  (a shared machine is noisy: compare figures of one run, and repeat it)",
    ]
    return "\n".join(lines)


def parser(prog: str = "python -m bench.bench_e2e") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--model", default="demo", help="a demo model id or a folder under --models")
    p.add_argument("--models", type=Path, default=None, help="the models folder (default: a temporary one, kept)")
    p.add_argument("--device", default="auto")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--tasks-per-user", type=int, default=3)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in ("users", "tasks_per_user", "size", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser().error(f"--{name.replace('_', '-')} must be at least 1")
    models_path = Path(args.models or Path(tempfile.gettempdir()) / "daydream-bench-models")
    models_path.mkdir(parents=True, exist_ok=True)
    result = run(model=args.model, models_path=models_path, device=args.device, users=args.users,
                 per_user=args.tasks_per_user, size=args.size, steps=args.steps, rounds=args.rounds)
    print(report(result), flush=True)
    return 0 if result.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
