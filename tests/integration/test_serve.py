"""`make run` (serve.py) as a person runs it, with faults: it supervises its children
(a worker or the embedded Redis that dies is started again while the site stays up),
the embedded Redis keeps its data, and Ctrl-C still stops everything cleanly.

The tests in this module share one running service and run in order."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from config import web_processes
from tests.helpers import ROOT, child_pids, free_port, wait_for

PASSWORD = "correct horse battery"


class Service:
    """serve.py in its own process group, with the embedded Redis (no REDIS_URL)."""

    def __init__(self, instance, models_path, log_path):
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = f"serve-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        self.env.update({"DAYDREAM_INSTANCE_PATH": str(instance), "PORT": str(self.port),
                         "DAYDREAM_MODELS_PATH": str(models_path), "DAYDREAM_QUEUE": self.queue,
                         "DAYDREAM_SECRET_KEY": "serve-" + uuid.uuid4().hex,
                         "DAYDREAM_PROGRESS_HZ": "50", "HF_HUB_OFFLINE": "1",
                         "PYTHONUNBUFFERED": "1"})
        self.log_path = log_path
        self.proc = None

    def start(self) -> "Service":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "serve.py"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: self.health().get("workers") == 1, 180, interval=0.2,
                 message=f"the service to start:\n{self.output()[-3000:]}")
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve.py exited:\n{self.output()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=3).json()
        except (requests.RequestException, ValueError):
            return {}

    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.instance / "redis.sock"), socket_timeout=2)

    def worker_pids(self) -> set[int]:
        conn = self.redis()
        names = [n.decode() for n in conn.smembers(f"daydream:alive:{self.queue}")]
        values = conn.mget([f"daydream:alive:{self.queue}:{n}" for n in names]) if names else []
        return {json.loads(v)["pid"] for v in values if v}

    def interrupt(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def descendants(self) -> set[int]:
        """Every process below serve.py (its children run in sessions of their own, so
        a process-group kill would miss them)."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, frontier = set(), {self.proc.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    def close(self) -> None:
        """Stop as Ctrl-C does; whatever is still there after that is killed."""
        if self.proc and self.proc.poll() is None:
            children = self.descendants()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.log.close()


class Client:
    def __init__(self, url: str, name: str):
        self.url = url
        response = requests.post(url + "/api/v1/auth/register", timeout=30, json={
            "username": name, "email": f"{name}@example.com", "password": PASSWORD})
        assert response.status_code == 201, response.text
        token = requests.post(url + "/api/v1/auth/tokens", timeout=30, json={
            "login": name, "password": PASSWORD, "name": "serve"}).json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=10)

    def submit(self, **params) -> dict:
        params = {"prompt": "a harbour", "width": 64, "height": 64, "steps": 2, **params}
        response = requests.post(self.url + "/api/v1/tasks", json=params, headers=self.headers,
                                 timeout=10)
        assert response.status_code == 202, response.text
        return response.json()

    def task(self, task_id: str) -> dict:
        response = self.get(f"/api/v1/tasks/{task_id}")
        return response.json() if response.status_code == 200 else {}

    def wait(self, task_id: str, timeout: float = 90) -> dict:
        return wait_for(lambda: (t := self.task(task_id)).get("state") in ("done", "failed", "canceled") and t,
                        timeout, interval=0.2, message=f"task {task_id} to end")

    def rendering(self, task_id: str) -> None:
        wait_for(lambda: self.task(task_id).get("progress", {}).get("step", 0) > 0, 60,
                 interval=0.05, message="the task to render a step")

    def tokens(self) -> int:
        return self.get("/api/v1/me").json()["tokens"]


@pytest.fixture(scope="module")
def service(tmp_path_factory, models_path):
    instance = tmp_path_factory.mktemp("served")
    running = Service(instance, models_path, instance / "serve.log").start()
    yield running
    running.close()


def test_the_terminal_ends_with_the_address_and_the_setup_link(service):
    """Requests and RQ's chatter go to <instance>/logs/, not to the terminal, so the
    one-time setup link stays among the last lines printed."""
    user = Client(service.url, "quiet")
    assert user.wait(user.submit()["id"])["state"] == "done"
    for _ in range(5):
        requests.get(service.url + "/docs", timeout=10)
    requests.get(service.url + "/reset/a-secret-link-token", timeout=10)
    access = service.instance / "logs" / "access.log"
    wait_for(lambda: access.exists() and b"GET /docs" in access.read_bytes(), 10,
             message="the request log in the logs folder")
    wait_for(lambda: b"GET /reset/" in access.read_bytes(), 10, message="the reset request logged")
    assert b"a-secret-link-token" not in access.read_bytes()  # one-time links' secrets stay out
    assert (service.instance / "logs" / "worker.log").stat().st_size > 0
    lines = [line for line in service.output().splitlines() if line.strip()]
    assert not [line for line in lines if "GET /" in line or "POST /" in line]
    last = "\n".join(lines[-8:])
    assert "Daydream is running at" in last
    assert "/setup/" in last and "No staff account yet" in "\n".join(lines[-10:])


def test_a_second_make_run_on_the_same_instance_folder_refuses_to_start(service, tmp_path):
    """Two serve.py on one instance folder would run two Redis servers on the same files:
    the second one stops at once, says why, and leaves the first one alone."""
    redis_pid = service.redis().info("server")["process_id"]
    env = {**service.env, "PORT": str(free_port())}
    second = subprocess.run([sys.executable, "serve.py"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert second.returncode != 0
    said = second.stdout + second.stderr
    assert "already using the instance folder" in said and str(service.instance) in said, said
    assert f"pid {service.proc.pid}" in said
    assert "embedded Redis at" not in said  # it started nothing
    assert service.redis().info("server")["process_id"] == redis_pid
    assert service.health().get("redis") == "ok"


def test_the_embedded_redis_is_configured_to_keep_its_data(service):
    conn = service.redis()
    assert conn.config_get("save") == {"save": "60 1"}
    assert conn.config_get("appendonly") == {"appendonly": "yes"}
    assert conn.config_get("appendfsync") == {"appendfsync": "everysec"}


def test_the_web_server_runs_one_process_per_core(service):
    """DAYDREAM_WEB_PROCESSES web processes (by default one per core), each a gunicorn
    worker under one master, and the terminal says how many."""
    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    [master] = [pid for pid in child_pids(service.proc.pid) if b"gunicorn" in cmdline(pid)]
    expected = web_processes()
    if not os.environ.get("DAYDREAM_WEB_PROCESSES"):
        assert expected == len(os.sched_getaffinity(0))
    workers = wait_for(lambda: (found := child_pids(master)) and len(found) == expected and found, 60,
                       message=f"{expected} web processes")
    assert all(b"gunicorn" in cmdline(pid) for pid in workers)
    assert f"web server: {expected} process" in service.output()
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200


def test_a_worker_killed_mid_task_is_restarted_and_its_task_refunded(service):
    user = Client(service.url, "killworker")
    before = user.tokens()
    [old_pid] = service.worker_pids()
    task = user.submit(width=256, height=256, steps=50)
    user.rendering(task["id"])
    os.kill(old_pid, signal.SIGKILL)
    killed = time.monotonic()

    statuses = set()

    def settled():
        statuses.add(requests.get(service.url + "/docs", timeout=5).status_code)
        return user.task(task["id"]).get("state") == "failed"

    wait_for(settled, 60, interval=0.2, message="the killed worker's task to be settled")
    assert time.monotonic() - killed < 60
    assert statuses == {200}  # the site stayed up throughout
    failed = user.task(task["id"])
    assert failed["refunded"] and "worker" in failed["error"]
    assert user.tokens() == before
    new_pids = wait_for(lambda: service.worker_pids() - {old_pid}, 60, message="a new worker")
    assert old_pid not in new_pids
    assert user.wait(user.submit()["id"])["state"] == "done"
    assert "worker exited with status" in service.output()


def test_a_killed_redis_is_restarted_and_every_task_runs_or_is_refunded(service):
    user = Client(service.url, "killredis")
    before = user.tokens()
    running = user.submit(width=128, height=128, steps=30)
    queued = [user.submit() for _ in range(2)]
    user.rendering(running["id"])
    aof = service.instance / "appendonly.aof"
    wait_for(lambda: aof.exists() and all(t["id"].encode() in aof.read_bytes() for t in queued), 10,
             message="the queued jobs to reach the append-only file")
    redis_pid = service.redis().info("server")["process_id"]
    os.kill(redis_pid, signal.SIGKILL)
    wait_for(lambda: service.health().get("redis") != "ok", 10, message="Redis to be seen down")
    wait_for(lambda: service.health().get("redis") == "ok", 60, message="Redis to come back")
    assert service.redis().info("server")["process_id"] != redis_pid

    ended = [user.wait(t["id"], timeout=120) for t in [running, *queued]]
    for task in ended:
        assert task["state"] in ("done", "failed"), task
        assert task["refunded"] == (task["state"] == "failed")
    spent = sum(t["cost"] for t in ended if t["state"] == "done")
    assert user.tokens() == before - spent  # nothing lost, nothing charged twice
    assert [t["state"] for t in ended[1:]] == ["done", "done"]  # the queued ones ran
    assert user.wait(user.submit()["id"])["state"] == "done"


def test_ctrl_c_stops_everything_and_the_redis_data_survives_a_restart(service):
    conn = service.redis()
    conn.set("daydream:test:marker", "kept")
    pids = service.worker_pids() | {conn.info("server")["process_id"]}
    assert service.interrupt() == 0
    assert "stopped" in service.output()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (service.instance / "redis.rdb").stat().st_size > 0
    service.start()
    assert service.redis().get("daydream:test:marker") == b"kept"


def test_kill_9_of_serve_py_takes_its_children_with_it(service):
    """serve.py killed outright (no chance to stop its children): the web server, the
    workers and the embedded Redis end too (they are told to when their parent dies),
    and the instance folder is free for the next `make run`."""
    import fcntl

    children = service.descendants()
    assert len(children) >= 4  # Redis, the web server (and its processes), the workers
    os.kill(service.proc.pid, signal.SIGKILL)
    service.proc.wait(10)

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"  # a zombie has ended; only its parent's wait is missing

    def command(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
        except OSError:
            return "?"

    try:
        # (gunicorn is told to quit at once; a worker's warm shutdown has 10 s before
        # its own watch ends it: worker/heartbeat.follow_supervisor)
        wait_for(lambda: not [pid for pid in children if alive(pid)], 25, interval=0.2,
                 message="serve.py's children (web, workers, Redis) to end with it")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still running: {[command(p) for p in children if alive(p)]}") from None
    finally:  # whatever the outcome, no process of this test outlives it
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with open(service.instance / "serve.lock") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it now
