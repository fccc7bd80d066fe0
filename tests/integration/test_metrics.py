"""GET /metrics: Prometheus' text format, read back with prometheus_client's own parser.
A task run by the real worker moves the task, image and histogram figures by what it
did; the worker's own figures (alive, its model, busy, its prompt cache's hits and
misses) come through Redis; a failed
sign-in and the moderation tables are counted; and only the metrics token or a staff
session gets in."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import make_app, unique, wait_for
from tests.integration.helpers import ApiUser, add_image, make_staff, sign_in, user_row

METRICS_TOKEN = "metrics-" + "s3cret-token-for-tests"
STAFF_PASSWORD = "a staff password"


@pytest.fixture(scope="module")
def metrics_app(stack):
    """A second app on the stack's instance (its database, Redis and queue, so its
    worker), with a metrics token set."""
    app = make_app({**stack.env, "DAYDREAM_METRICS_TOKEN": METRICS_TOKEN})
    app.staff_name = unique("mstaff")
    make_staff(app, app.staff_name, STAFF_PASSWORD)
    return app


def metrics_scrape(app, headers=None) -> dict:
    """{(sample name, ((label, value), ...)): value} of one scrape with the token."""
    response = app.test_client().get("/metrics", headers=headers or {
        "Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.data[:300]
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metrics_value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def metrics_bucket(samples: dict, name: str, model: str, bound: str) -> float:
    return metrics_value(samples, f"{name}_bucket", model=model, le=bound)


def metrics_worker_name(app) -> str:
    from services.core import queue

    with app.app_context():
        names = list(queue.workers())
    assert len(names) == 1, names
    return names[0]


def test_metrics_a_task_moves_the_task_image_and_histogram_figures(metrics_app, make_user):
    user = make_user("metrics")
    before = metrics_scrape(metrics_app)
    task = user.submit(samples=2).get_json()
    done = user.wait_task(task["id"])
    assert done["state"] == "done", done
    model = done["model"]
    # The worker counts the job's tasks after the job, a moment after the task is done.
    after = wait_for(lambda: (s := metrics_scrape(metrics_app)) and
                     metrics_value(s, "daydream_task_run_seconds_count", model=model) >
                     metrics_value(before, "daydream_task_run_seconds_count", model=model) and s,
                     message="the worker's figures of the task")

    def moved(name, **labels):
        return metrics_value(after, name, **labels) - metrics_value(before, name, **labels)

    assert moved("daydream_tasks", state="done") == 1
    assert moved("daydream_images_total", model=model) == 2
    assert moved("daydream_tasks_finished_total", model=model, state="done") == 1
    assert moved("daydream_task_wait_seconds_count", model=model) == 1
    assert moved("daydream_task_run_seconds_count", model=model) == 1
    assert moved("daydream_task_run_seconds_sum", model=model) == pytest.approx(done["duration_s"], abs=0.01)
    # The one run landed in the first bucket its duration fits, and in every one above.
    for bound in ("0.5", "1.0", "2.0", "5.0", "10.0", "20.0", "30.0", "60.0", "+Inf"):
        fits = bound == "+Inf" or done["duration_s"] <= float(bound)
        assert metrics_bucket(after, "daydream_task_run_seconds", model, bound) - \
            metrics_bucket(before, "daydream_task_run_seconds", model, bound) == int(fits), bound
    # The step time the estimates use, for that model and size.
    assert metrics_value(after, "daydream_step_seconds", model=model, size="64x64") > 0


def test_metrics_the_second_of_two_identical_tasks_is_a_prompt_cache_hit(metrics_app, make_user):
    user = make_user("metricsprompt")
    prompt = unique("a prompt no task has used ")

    def prompt_cache_figures():
        samples = metrics_scrape(metrics_app)
        return (metrics_value(samples, "daydream_prompt_cache_hits_total"),
                metrics_value(samples, "daydream_prompt_cache_misses_total"))

    hits, misses = prompt_cache_figures()
    first = user.submit(prompt=prompt, steps=2).get_json()
    assert user.wait_task(first["id"])["state"] == "done"
    hits_1, misses_1 = wait_for(lambda: (f := prompt_cache_figures())[1] > misses and f,
                                message="the first task's prompt encoding counted as a miss")
    assert hits_1 == hits
    second = user.submit(prompt=prompt, steps=2).get_json()
    assert user.wait_task(second["id"])["state"] == "done"
    hits_2, misses_2 = wait_for(lambda: (f := prompt_cache_figures())[0] > hits_1 and f,
                                message="the second task's prompt encoding counted as a hit")
    assert misses_2 == misses_1  # the text encoders did not run for the second task


def test_metrics_the_workers_figures_come_through_redis(metrics_app, stack):
    import torch

    name = metrics_worker_name(stack)
    samples = wait_for(lambda: (s := metrics_scrape(metrics_app)) and
                       metrics_value(s, "daydream_worker_model_info", worker=name, model="demo") == 1 and
                       metrics_value(s, "daydream_workers_busy") == 0 and s,
                       message="the idle worker with the demo model in the metrics")
    assert metrics_value(samples, "daydream_workers_alive", pool="generation") == 1
    assert metrics_value(samples, "daydream_workers_alive", pool="archives") == 1
    assert metrics_value(samples, "daydream_worker_busy", worker=name) == 0
    assert metrics_value(samples, "daydream_metrics_redis_up") == 1
    gpu = {labels: v for (sample, labels), v in samples.items() if sample == "daydream_worker_gpu_memory_bytes"}
    if torch.cuda.is_available():
        assert metrics_value(samples, "daydream_worker_gpu_memory_bytes", worker=name, kind="allocated") > 0
    else:
        assert gpu == {}  # a CPU worker says nothing of a GPU


def test_metrics_a_failed_sign_in_is_counted(metrics_app, make_user):
    user = make_user("metricsin")
    before = metrics_value(metrics_scrape(metrics_app), "daydream_signin_failures_total")
    refused = metrics_app.test_client().post("/api/v1/auth/tokens", json={
        "login": user.username, "password": "not the password", "name": "x"})
    assert refused.status_code == 401
    after = metrics_value(metrics_scrape(metrics_app), "daydream_signin_failures_total")
    assert after - before == 1


def test_metrics_moderation_and_states_come_from_the_tables(metrics_app, make_user):
    from extensions import db
    from models import BlockedPrompt, Image, Report

    user = make_user("metricsmod")
    user_id = user_row(metrics_app, user.username).id
    before = metrics_scrape(metrics_app)
    add_image(metrics_app, user_id)
    with metrics_app.app_context():
        image = db.session.scalars(sa.select(Image).where(Image.user_id == user_id)).one()
        image.review = "held"
        db.session.add(Report(item_id=image.id, reason="metrics test", state="open"))
        db.session.add(Report(item_id=image.id, reason="settled", state="dismissed"))
        db.session.add(BlockedPrompt(user_id=user_id, rule="badword", prompt="a badword"))
        db.session.commit()
    after = metrics_scrape(metrics_app)
    for name in ("daydream_moderation_images_held", "daydream_moderation_reports_open",
                 "daydream_moderation_blocked_prompts"):
        assert metrics_value(after, name) - metrics_value(before, name) == 1, name
    for state in ("queued", "running", "done", "failed", "canceled"):
        assert ("daydream_tasks", (("state", state),)) in after
    for state in ("queued", "building", "ready", "failed", "expired"):
        assert ("daydream_archives", (("state", state),)) in after


def test_metrics_only_the_token_or_staff_get_in(metrics_app, stack):
    def status(app, headers=None, session=None):
        client = app.test_client()
        if session:
            sign_in(client, *session)
        response = client.get("/metrics", headers=headers or {})
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if response.status_code >= 400:
            assert "error" in response.get_json()
        return response.status_code

    member = ApiUser(metrics_app.test_client(), unique("mmember"))
    assert status(metrics_app) == 401
    assert status(metrics_app, {"Authorization": "Bearer not-the-token"}) == 401
    assert status(metrics_app, {"Authorization": f"Bearer {METRICS_TOKEN}x"}) == 401
    assert status(metrics_app, member.headers) == 401  # an API token is not the metrics token
    assert status(metrics_app, session=(member.username, member.password)) == 403
    assert status(metrics_app, session=(metrics_app.staff_name, STAFF_PASSWORD)) == 200
    assert status(metrics_app, {"Authorization": f"Bearer {METRICS_TOKEN}"}) == 200
    # Without a token set, a bearer token gets nobody in; staff still do.
    assert status(stack, {"Authorization": f"Bearer {METRICS_TOKEN}"}) == 401
    assert status(stack, {"Authorization": "Bearer "}) == 401
    assert status(stack, session=(metrics_app.staff_name, STAFF_PASSWORD)) == 200


def test_metrics_without_redis_still_answer_from_the_database(tmp_path, models_path):
    from tests.helpers import free_port, instance_env

    gone = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = make_app(instance_env(tmp_path / "noredis", gone, models_path, DAYDREAM_METRICS_TOKEN=METRICS_TOKEN))
    samples = metrics_scrape(app)
    assert metrics_value(samples, "daydream_metrics_redis_up") == 0
    assert ("daydream_tasks", (("state", "done"),)) in samples
    assert not any(name.startswith("daydream_worker") for name, _ in samples)


def test_metrics_a_gpu_workers_heartbeat_shows_its_memory(metrics_app):
    """What a CUDA worker's heartbeat carries (worker/metrics.py heartbeat_info), read
    back per worker: a heartbeat of this process stands in for it."""
    from services.core import liveness

    name = unique("gpuworker")
    figures = {"gpu_allocated_bytes": 3 * 2**30, "gpu_reserved_bytes": 4 * 2**30, "gpu_total_bytes": 80 * 2**30}
    with metrics_app.app_context():
        pool = liveness.generation_pool()
        liveness.beat(pool, name, 30, model="demo-sdxl", **figures)
    try:
        samples = metrics_scrape(metrics_app)
    finally:
        with metrics_app.app_context():
            liveness.forget(pool, name)
    for kind in ("allocated", "reserved", "total"):
        assert metrics_value(samples, "daydream_worker_gpu_memory_bytes", worker=name, kind=kind) == \
            figures[f"gpu_{kind}_bytes"]
    assert metrics_value(samples, "daydream_worker_model_info", worker=name, model="demo-sdxl") == 1
    assert metrics_value(samples, "daydream_worker_busy", worker=name) == 0
    assert metrics_value(samples, "daydream_workers_alive", pool="generation") == 2  # the stack's and this one


def test_metrics_a_worker_running_a_task_is_busy(metrics_app, stack, make_user):
    name = metrics_worker_name(stack)
    user = make_user("metricsbusy")
    task = user.submit(steps=150, width=512, height=512).get_json()
    try:
        samples = wait_for(lambda: (s := metrics_scrape(metrics_app)) and
                           metrics_value(s, "daydream_worker_busy", worker=name) == 1 and s,
                           interval=0.02, message="the worker busy in the metrics")
        assert metrics_value(samples, "daydream_workers_busy") == 1
    finally:
        user.post(f"/api/v1/tasks/{task['id']}/cancel")
    user.wait_task(task["id"])
    wait_for(lambda: metrics_value(metrics_scrape(metrics_app), "daydream_worker_busy", worker=name) == 0,
             message="the worker idle again")
