"""Redis names come from one module, services/core/keys.py, and keep the strings that
deployments already hold in Redis (progress, estimates, metrics and limits written
under the old names would be lost if one changed)."""
from __future__ import annotations

import re
from pathlib import Path

from services.core import keys

ROOT = Path(__file__).resolve().parents[2]


def test_key_names_keep_their_format():
    assert keys.progress("t1") == "daydream:progress:t1"
    assert keys.stop("t1") == "daydream:stop:t1"
    assert keys.preview("t1") == "daydream:preview:t1"
    assert keys.worker_info("w1") == "daydream:workers:w1"
    assert keys.worker_batches("w1") == "daydream:batches:w1"
    assert keys.alive("daydream", "w1") == "daydream:alive:daydream:w1"
    assert keys.alive_members("daydream") == "daydream:alive:daydream"
    assert keys.turn(keys.reconcile_lock("daydream")) == "daydream:turn:reconcile:daydream"
    assert keys.sockets("u1") == "daydream:sockets:u1"


def test_estimate_and_metric_keys_are_per_queue():
    assert keys.steptime_size("q", "demo", "512x512") == "daydream:steptime:q:demo:512x512"
    assert keys.steptime_batches("q", "demo", "512x512") == "daydream:steptime:q:demo:batches:512x512"
    assert keys.steptime_sizes("q", "demo") == "daydream:steptime:q:demo:sizes"
    assert keys.steptime_per_mpx("q", "demo") == "daydream:steptime:q:demo:per_mpx"
    assert keys.metric_histogram("q", "task_seconds") == "daydream:metrics:q:hist:task_seconds"
    assert keys.metric_histogram("q", "task_seconds", "demo") == "daydream:metrics:q:hist:task_seconds:demo"
    assert keys.metric_counter("q", "images") == "daydream:metrics:q:counter:images"


def test_limit_queue_and_job_names_keep_their_format():
    prefix = keys.ratelimit_prefix("daydream")
    assert prefix == "daydream-limits:daydream"
    pair = f"login:ann|{keys.device_pair_address('n1')}"
    assert keys.signin_failures(prefix, pair) == "daydream-limits:daydream/failures/login:ann|device:n1"
    assert keys.signin_gate(prefix, "a|b") == "daydream-limits:daydream/gate/a|b"
    assert keys.signin_known(prefix, "a|b") == "daydream-limits:daydream/known/a|b"
    assert (keys.LIMIT_SIGNIN_IP, keys.LIMIT_REGISTER_NETWORK, keys.limit_mail_account("reset")) == (
        "signin-ip", "register-network", "reset-mail-account")
    assert keys.archive_queue("daydream") == "daydream-archives"
    assert keys.archive_job("a1") == "archive-a1"
    assert keys.generation_job("t1", 1700000000000) == "t1_1700000000000"
    assert keys.SOCKETIO_CHANNEL == "flask-socketio"


def test_the_config_names_its_queues_and_limits_through_the_keys_module(monkeypatch):
    import config

    monkeypatch.setenv("DAYDREAM_SECRET_KEY", "unit")  # (else it keeps one in the instance folder)
    monkeypatch.setenv("DAYDREAM_QUEUE", "q7")
    monkeypatch.delenv("DAYDREAM_ARCHIVE_QUEUE", raising=False)
    settings = config.Config()
    assert settings.ARCHIVE_QUEUE_NAME == keys.archive_queue("q7") == "q7-archives"
    assert settings.RATELIMIT_KEY_PREFIX == keys.ratelimit_prefix("q7") == "daydream-limits:q7"


# A key spelled outside keys.py: key("progress", ...), redis_client.key(...), or a
# "daydream:..." / "daydream-limits..." string. (DISCONNECT_EVENT, "daydream:disconnect",
# is a Socket.IO event name, not a key.)
SPELLED = re.compile(r"""(?<![\w.])(?:redis_client\.|queue_service\.)?key\(\s*f?["']"""
                     r"""|["']daydream:(?!disconnect["'])|["']daydream-limits""")
SOURCES = ("app.py", "config.py", "qworker.py", "qarchiver.py", "serve.py", "services", "views", "worker", "bench")


def test_no_module_but_keys_spells_a_redis_key():
    found = []
    for root in SOURCES:
        path = ROOT / root
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if file == ROOT / "services" / "core" / "keys.py" or "__pycache__" in file.parts:
                continue
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if SPELLED.search(line):
                    found.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "Redis keys named outside services/core/keys.py:\n" + "\n".join(found)
