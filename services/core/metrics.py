"""The figures GET /metrics shows (views/metrics.py), in Prometheus' text format.

The web processes and the workers are separate processes, on separate machines, that
share nothing but Redis and the database. So nothing here lives in a process's memory:
- what only a worker knows (how long a task waited and ran, the images it made) is
  counted into Redis where it happens (record_*, called by worker/metrics.py), and
  what it is now (its loaded model, its GPU memory) rides on its heartbeat
  (services/core/liveness.py);
- what the database knows (tasks and archives by state, moderation) is counted there,
  in one narrow query each, at each scrape.
Each scrape builds a fresh registry with one collector that reads both (collect()), so
whichever web process answers says the same, and a web restart resets nothing.

Keys are per queue (QUEUE_NAME), as the step times are: deployments or test instances
sharing a Redis keep their own figures."""
from __future__ import annotations

import json
from bisect import bisect_left

import redis
import sqlalchemy as sa
from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from rq import Queue

from extensions import db
from models import (
    AiModel,
    Archive,
    ArchiveState,
    BlockedPrompt,
    Image,
    Report,
    Task,
    TaskState,
)
from services.core import keys, liveness
from services.core.redis_client import connection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds (seconds) of the histograms' buckets; +Inf comes after the last.
WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RUN_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
HISTOGRAMS = {
    "task_wait_seconds": (WAIT_BUCKETS, "Seconds a task waited in the queue (created to started), by model."),
    "task_run_seconds": (RUN_BUCKETS, "Seconds a task ran on a worker (started to finished), by model."),
}
COUNTERS = {
    "tasks_finished": (("model", "state"), "Tasks a worker finished, by model and end state."),
    "images": (("model",), "Images the workers made and kept, by model."),
    "signin_failures": ((), "Sign-ins refused for a wrong login or password."),
    "prompt_cache_hits": ((), "Prompt encodings the workers answered from their prompt-embedding cache "
                               "(the text encoders skipped)."),
    "prompt_cache_misses": ((), "Prompt encodings the workers ran the text encoders for (and cached)."),
}


def _queue() -> str:
    return current_app.config["QUEUE_NAME"]


# --- recording (the workers, and the sign-in hook) -----------------------------------

def observe(pipe, name: str, model: str, seconds: float) -> None:
    """One observation of a histogram: its bucket (the first upper bound it does not
    exceed), count and sum, in the pipeline (the caller executes it)."""
    buckets = HISTOGRAMS[name][0]
    seconds = max(float(seconds), 0.0)
    hist = keys.metric_histogram(_queue(), name, model)
    pipe.sadd(keys.metric_histogram(_queue(), name), model)
    pipe.hincrby(hist, str(bisect_left(buckets, seconds)), 1)
    pipe.hincrby(hist, "count", 1)
    pipe.hincrbyfloat(hist, "sum", seconds)


def count(pipe, name: str, labels: tuple = (), by: float = 1) -> None:
    """Add `by` to a counter (its label values in COUNTERS' order), in the pipeline."""
    assert len(labels) == len(COUNTERS[name][0]), name
    if by:
        pipe.hincrbyfloat(keys.metric_counter(_queue(), name), json.dumps([str(v) for v in labels]), by)


def count_signin_failure() -> None:
    """A sign-in refused for its credentials. Never in the way of the answer."""
    try:
        with connection().pipeline(transaction=False) as pipe:
            count(pipe, "signin_failures")
            pipe.execute()
    except redis.RedisError:
        pass


# --- reading (each scrape) ------------------------------------------------------------

def render() -> bytes:
    """The text a scrape gets: a fresh registry, one collector (collect() runs once)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaydreamCollector())
    return generate_latest(registry)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _counts(column, *where) -> dict[str, int]:
    """Rows per value of a column: one GROUP BY."""
    query = sa.select(column, sa.func.count()).group_by(column)
    if where:
        query = query.where(*where)
    return {str(value): int(n) for value, n in db.session.execute(query).all()}


def _count(model, *where) -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


class DaydreamCollector:
    """Reads the database and Redis at each scrape. A Redis outage leaves out what only
    Redis holds (daydream_metrics_redis_up says so); the database figures still come."""

    def collect(self):
        yield from self.database()
        up = GaugeMetricFamily("daydream_metrics_redis_up",
                               "1 when Redis answered this scrape (the worker figures come from it).")
        try:
            families = list(self.from_redis())
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    # the database --------------------------------------------------------------------

    def database(self):
        tasks = _counts(Task.state)
        family = GaugeMetricFamily("daydream_tasks", "Tasks in the database, by state.", labels=["state"])
        for state in TaskState:
            family.add_metric([state.value], tasks.get(state.value, 0))
        yield family
        yield GaugeMetricFamily("daydream_queue_depth", "Tasks waiting for a worker (queued).",
                                value=tasks.get(TaskState.QUEUED.value, 0))
        archives = _counts(Archive.state)
        family = GaugeMetricFamily("daydream_archives", "ZIP archive jobs, by state.", labels=["state"])
        for state in ArchiveState:
            family.add_metric([state.value], archives.get(state.value, 0))
        yield family
        yield GaugeMetricFamily("daydream_moderation_blocked_prompts",
                                "Submits refused by a prompt rule (all time).", value=_count(BlockedPrompt))
        yield GaugeMetricFamily("daydream_moderation_images_held",
                                "Images held for staff review.", value=_count(Image, Image.review == "held"))
        yield GaugeMetricFamily("daydream_moderation_reports_open", "Showcase reports staff have not settled.",
                                value=_count(Report, Report.state == "open"))
        self.busy = set(db.session.scalars(sa.select(Task.worker).where(
            Task.state == TaskState.RUNNING.value).distinct()))
        self.models = list(db.session.scalars(sa.select(AiModel.id).where(
            AiModel.lora.is_(False), AiModel.upscaler.is_(False))))  # (step times: models only)

    # Redis -----------------------------------------------------------------------------

    def from_redis(self):
        conn = connection()
        yield GaugeMetricFamily("daydream_queue_jobs", "Generation jobs waiting in the Redis queue.",
                                value=Queue(current_app.config["QUEUE_NAME"], connection=conn).count)
        yield from self.workers(conn)
        yield from self.histograms(conn)
        yield from self.counters(conn)
        yield from self.step_times(conn)

    def workers(self, conn):
        generation = liveness.alive(liveness.generation_pool(), conn)
        archivers = liveness.alive(liveness.archive_pool(), conn)
        alive = GaugeMetricFamily("daydream_workers_alive", "Workers whose heartbeat is live, by pool.",
                                  labels=["pool"])
        alive.add_metric(["generation"], len(generation))
        alive.add_metric(["archives"], len(archivers))
        yield alive
        busy = [name in self.busy for name in generation]
        yield GaugeMetricFamily("daydream_workers_busy", "Generation workers running a task.", value=sum(busy))
        per_busy = GaugeMetricFamily("daydream_worker_busy", "1 while this worker runs a task.",
                                     labels=["worker"])
        model = GaugeMetricFamily("daydream_worker_model_info",
                                  "The model this worker has loaded (1; model \"\" when none).",
                                  labels=["worker", "model"])
        memory = GaugeMetricFamily("daydream_worker_gpu_memory_bytes",
                                   "GPU memory of this worker's process (absent without CUDA).",
                                   labels=["worker", "kind"])
        for (name, info), running in zip(generation.items(), busy):
            per_busy.add_metric([name], int(running))
            model.add_metric([name, str(info.get("model") or "")], 1)
            for kind in ("allocated", "reserved", "total"):
                value = info.get(f"gpu_{kind}_bytes")
                if value is not None:
                    memory.add_metric([name, kind], float(value))
        yield per_busy
        yield model
        yield memory

    def histograms(self, conn):
        for name, (buckets, text) in HISTOGRAMS.items():
            family = HistogramMetricFamily(f"daydream_{name}", text, labels=["model"])
            models = sorted(_text(m) for m in conn.smembers(keys.metric_histogram(_queue(), name)))
            with conn.pipeline(transaction=False) as pipe:
                for model in models:
                    pipe.hgetall(keys.metric_histogram(_queue(), name, model))
                values = pipe.execute()
            for model, fields in zip(models, values):
                fields = {_text(k): _text(v) for k, v in fields.items()}
                running, cumulative = 0, []
                for index, bound in enumerate(list(buckets) + [float("inf")]):
                    running += int(fields.get(str(index), 0))
                    cumulative.append(("+Inf" if bound == float("inf") else str(float(bound)), running))
                family.add_metric([model], cumulative, sum_value=float(fields.get("sum", 0)))
            yield family

    def counters(self, conn):
        for name, (labels, text) in COUNTERS.items():
            family = CounterMetricFamily(f"daydream_{name}", text, labels=list(labels))
            values = {tuple(json.loads(_text(k))): float(v)
                      for k, v in conn.hgetall(keys.metric_counter(_queue(), name)).items()}
            if not labels:
                values.setdefault((), 0.0)  # a counter with no labels is always there
            for label_values, value in sorted(values.items()):
                family.add_metric(list(label_values), value)
            yield family

    def step_times(self, conn):
        """The step times the estimates use (services/generation/estimates.py keeps them,
        per model and size, under steptime:<queue>:<model>:sizes as "seconds|when")."""
        family = GaugeMetricFamily("daydream_step_seconds",
                                   "Seconds one denoising step of one image takes (moving average), "
                                   "by model and size.", labels=["model", "size"])
        queue_name = current_app.config["QUEUE_NAME"]
        with conn.pipeline(transaction=False) as pipe:
            for model in self.models:
                pipe.hgetall(keys.steptime_sizes(queue_name, model))
            values = pipe.execute()
        for model, sizes in zip(self.models, values):
            for size, value in sorted(sizes.items()):
                family.add_metric([model, _text(size)], float(_text(value).split("|")[0]))
        yield family
