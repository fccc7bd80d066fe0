"""Do a submit, a cancel and a claim cost the same whatever the queue's depth?

Two instances of the app, each with its own SQLite database and RQ queue on the same
Redis: one with nothing queued, one with 1,000 tasks queued (50 users, twenty rounds),
measured in one run and interleaved so that drift on a noisy machine hits both alike:

  submit  POST /api/v1/tasks through the real Flask app (the test client: routing, the
          bearer token, validation, debit, the round, the job, the events, the estimate,
          which adds up the run estimates of the work ahead: a live worker and a measured
          step time are registered so that it does);
  claim   tasks.claim_next (what a worker's job runs first: the head, which is that task
          when nothing else is queued), after which the claimed task is put back in the
          queue, outside the timing;
  cancel  POST /api/v1/tasks/<id>/cancel of that task (so the depth stays where it is).

Target: the submit's p99 with 1,000 queued within 2× of its p99 with none. The cancel's
and the claim's ratios are printed too.

    python -m bench.bench_queue [--depth 1000] [--rounds 300]

Exit status 1 when the target is missed. Needs a Redis (DAYDREAM_TEST_REDIS_URL, else
redis://127.0.0.1:6379/13).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
FILL_USERS = 50


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


class Instance:
    """An app with `depth` tasks queued by other users, and one user who submits."""

    def __init__(self, folder: Path, depth: int):
        import sqlalchemy as sa

        from extensions import db
        from models import Task, User, utcnow
        from tests.helpers import REDIS_URL, instance_env, make_app

        (folder / "models").mkdir(parents=True, exist_ok=True)
        self.app = make_app(instance_env(folder / "instance", REDIS_URL, folder / "models",
                                         DAYDREAM_QUEUE_LIMIT=depth + 1000))
        self.client = self.app.test_client()
        self.depth = depth
        with self.app.app_context():
            if depth:
                owners = [User(email=f"filler{n}@example.com", username=f"filler{n}", password_hash="x")
                          for n in range(min(FILL_USERS, depth))]
                db.session.add_all(owners)
                db.session.flush()
                start = utcnow() - timedelta(hours=1)
                db.session.execute(sa.insert(Task), [
                    dict(id=f"fill{n:018d}", user_id=owners[n % len(owners)].id, session_id="bench",
                         state="queued", prompt="a boat", negative_prompt="", width=64, height=64, steps=2,
                         guidance=7.5, samples=1, seed=n, scheduler="euler", model="demo", cost=0,
                         refunded=False, created_at=start + timedelta(milliseconds=n),
                         fair_round=n // len(owners))
                    for n in range(depth)])
                db.session.commit()
        answer = self.client.post("/api/v1/auth/register", json={
            "username": "bencher", "email": "bencher@example.com", "password": "correct horse battery"})
        assert answer.status_code == 201, answer.get_json()
        token = self.client.post("/api/v1/auth/tokens", json={
            "login": "bencher", "password": "correct horse battery", "name": "bench"}).get_json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.times: dict[str, list[float]] = {"submit": [], "cancel": [], "claim": []}
        # A live worker and a measured step time, so that the submit's estimate counts the
        # work ahead as it does on a server with a GPU (without them it answers "unknown").
        from services.core import liveness
        from services.generation import estimates

        with self.app.app_context():
            liveness.beat(liveness.generation_pool(), "bench-idle", 3600, model="demo")
            estimates.record_step_time("demo", 64, 64, 0.05)

    def once(self, record: bool = True) -> None:
        import sqlalchemy as sa

        from extensions import db
        from models import Task
        from services.generation import tasks

        started = time.perf_counter()
        answer = self.client.post("/api/v1/tasks", headers=self.headers, json={
            "prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 4})
        submitted = time.perf_counter()
        assert answer.status_code == 202, answer.get_json()
        task_id = answer.get_json()["id"]
        with self.app.app_context():
            claim_started = time.perf_counter()
            claimed = tasks.claim_next("bench-worker", "demo")  # with none queued before: ours
            claim_time = time.perf_counter() - claim_started
            db.session.execute(sa.update(Task).where(Task.id == claimed.id).values(
                state="queued", started_at=None, worker=None))  # back in the queue, as it was
            db.session.commit()
        cancel_started = time.perf_counter()
        canceled = self.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=self.headers)
        cancel_time = time.perf_counter() - cancel_started
        assert canceled.status_code == 200, canceled.get_json()
        if record:
            self.times["submit"].append(submitted - started)
            self.times["claim"].append(claim_time)
            self.times["cancel"].append(cancel_time)

    def close(self) -> None:
        from services.core import liveness, queue

        with self.app.app_context():
            queue.generation_queue().empty()  # the spare jobs of the canceled tasks
            liveness.forget(liveness.generation_pool(), "bench-idle")


def measure(depth: int, rounds: int, warmup: int = 10) -> dict:
    with tempfile.TemporaryDirectory(prefix="daydream-bench-queue-") as folder:
        empty, deep = Instance(Path(folder) / "empty", 0), Instance(Path(folder) / "deep", depth)
        try:
            for _ in range(warmup):
                empty.once(record=False)
                deep.once(record=False)
            for n in range(rounds):
                for instance in ((empty, deep) if n % 2 == 0 else (deep, empty)):
                    instance.once()
        finally:
            empty.close()
            deep.close()
    return {"empty": empty.times, "deep": deep.times, "depth": depth}


def report(m: dict) -> tuple[str, bool]:
    lines = [f"queue depth {m['depth']} vs 0, {len(m['deep']['submit'])} of each (ms: p50 / p99)"]
    passed = True
    for name in ("submit", "cancel", "claim"):
        empty, deep = m["empty"][name], m["deep"][name]
        if not empty or not deep:
            lines.append(f"  {name:7s} not measured")
            continue
        ratio = p99(deep) / p99(empty)
        if name == "submit":  # the target
            ok = ratio <= TARGET_RATIO
            passed = passed and ok
            verdict = f"target <= {TARGET_RATIO:.1f}: {'ok' if ok else 'MISSED'}"
        else:
            verdict = f"p50 ratio {statistics.median(deep) / statistics.median(empty):.2f}"
        lines.append(
            f"  {name:7s} empty {statistics.median(empty) * 1e3:6.1f} / {p99(empty) * 1e3:6.1f}   "
            f"deep {statistics.median(deep) * 1e3:6.1f} / {p99(deep) * 1e3:6.1f}   "
            f"p99 ratio {ratio:.2f} ({verdict})")
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_queue", description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    if args.depth < 1 or args.rounds < 1:
        parser.error("--depth and --rounds must be at least 1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import logging

    logging.disable(logging.WARNING)  # the embedded app's warnings are not the report
    started = time.perf_counter()
    m = measure(args.depth, args.rounds)
    text, passed = report(m)
    print(text, flush=True)
    print(f"measured in {time.perf_counter() - started:.1f} s", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
