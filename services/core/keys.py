"""Every Redis name Daydream writes or reads, in one place (as rq keeps its own in
rq/keys.py): keys, the rate-limit store's keys it builds itself, the Socket.IO pub/sub
channel, and the RQ job ids. Other modules call these functions and never spell a key.

Nothing here reads the config or talks to Redis: callers pass the queue name
(QUEUE_NAME, which keeps deployments and test instances sharing one Redis apart) where
a key is per queue. Changing a name here changes data already in Redis: a deployment
would lose progress, estimates and metrics written under the old one."""
from __future__ import annotations

PREFIX = "daydream"

# Socket.IO over Redis pub/sub (services/core/events.py): every web process and worker
# publishes and listens on this channel.
SOCKETIO_CHANNEL = "flask-socketio"


def key(*parts: str) -> str:
    """daydream:<part>:<part>... (the shape of every key below)."""
    return ":".join((PREFIX,) + tuple(str(p) for p in parts))


# --- a running task (services/core/queue.py, worker/jobs.py) --------------------------

def progress(task_id: str) -> str:
    """JSON {step, total, eta_s, at} of a running task."""
    return key("progress", task_id)


def stop(task_id: str) -> str:
    """Set when someone asks the worker running this task to stop at its next step."""
    return key("stop", task_id)


def preview(task_id: str) -> str:
    """The latest preview image (a data URL) of a running task."""
    return key("preview", task_id)


# --- workers ------------------------------------------------------------------------

def worker_info(worker_name: str) -> str:
    """Hash of what a generation worker reports about itself (model, memory, jobs)."""
    return key("workers", worker_name)


def worker_batches(worker_name: str) -> str:
    """List of a worker's recent batched calls (worker/jobs.record_batch, the bench)."""
    return key("batches", worker_name)


def worker_jobs(worker_name: str) -> str:
    """List of a worker's recent jobs: wall time against pipeline-call time (worker/jobs.py,
    bench/bench_e2e.py's per-task fixed cost)."""
    return key("jobs", worker_name)


def alive(pool: str, worker_name: str) -> str:
    """A worker's heartbeat (services/core/liveness.py), expiring with its TTL."""
    return key("alive", pool, worker_name)


def alive_members(pool: str) -> str:
    """Set of the worker names of a pool that have beaten."""
    return key("alive", pool)


def turn(lock: str) -> str:
    """Held by one process for a period (liveness.take_turn)."""
    return key("turn", lock)


def reconcile_lock(pool: str) -> str:
    """The lock name (for turn()) of a pool's reconciler."""
    return f"reconcile:{pool}"


# --- step-time estimates (services/generation/estimates.py) ---------------------------

def steptime(queue_name: str, model: str, name: str) -> str:
    return key("steptime", queue_name, model, name)


def steptime_size(queue_name: str, model: str, size: str) -> str:
    """Seconds per step at one size ("512x512")."""
    return steptime(queue_name, model, size)


def steptime_batches(queue_name: str, model: str, size: str) -> str:
    """Hash: images a call -> seconds per image-step, at one size."""
    return steptime(queue_name, model, f"batches:{size}")


def steptime_sizes(queue_name: str, model: str) -> str:
    """Hash: size -> "seconds per step|when", for the fit."""
    return steptime(queue_name, model, "sizes")


def steptime_per_mpx(queue_name: str, model: str) -> str:
    """Seconds per megapixel-step, as recorded by earlier versions (read only)."""
    return steptime(queue_name, model, "per_mpx")


# --- metrics (services/core/metrics.py) ---------------------------------------------

def metric(queue_name: str, *parts: str) -> str:
    return key("metrics", queue_name, *parts)


def metric_histogram(queue_name: str, name: str, model: str | None = None) -> str:
    """A histogram's buckets for one model; without a model, the set of its models."""
    return metric(queue_name, "hist", name, *((model,) if model is not None else ()))


def metric_counter(queue_name: str, name: str) -> str:
    """Hash: JSON list of label values -> count."""
    return metric(queue_name, "counter", name)


# --- Socket.IO (views/sockets.py) ------------------------------------------------------

def sockets(user_uuid: str) -> str:
    """How many Socket.IO connections a user has open, across web processes."""
    return key("sockets", user_uuid)


# --- rate limits (services/core/ratelimit.py) -----------------------------------------

def ratelimit_prefix(queue_name: str) -> str:
    """The `limits` library's key prefix (config RATELIMIT_KEY_PREFIX)."""
    return f"daydream-limits:{queue_name}"


# The scopes of the moving-window limits (the `limits` library keys them under the prefix).
LIMIT_SIGNIN_IP = "signin-ip"
LIMIT_SIGNIN_ACCOUNT = "signin-account"
LIMIT_REDEEM = "redeem"
LIMIT_RESET_IP = "reset-ip"
LIMIT_REGISTER_IP = "register-ip"
LIMIT_REGISTER_NETWORK = "register-network"


def limit_mail_account(purpose: str) -> str:
    """Mails of one purpose ("reset", "confirm") sent for one account."""
    return f"{purpose}-mail-account"


# The "address" of the pair that counts a user's wrong passwords when asked again.
PASSWORD_CHECK_ADDRESS = "password-check"

# A sign-in pair is (account, address) or (account, device); `prefix` is the store's.

def signin_failures(prefix: str, pair: str) -> str:
    """A pair's failed sign-ins, forgotten PAIR_MEMORY after the first."""
    return f"{prefix}/failures/{pair}"


def signin_gate(prefix: str, pair: str) -> str:
    """Held while a pair waits out its current delay."""
    return f"{prefix}/gate/{pair}"


def signin_known(prefix: str, pair: str) -> str:
    """Set while a pair that signed in successfully is "known" (KNOWN_FOR)."""
    return f"{prefix}/known/{pair}"


def device_pair_address(device: str) -> str:
    """The "address" part of a device's pair: a device cookie's nonce."""
    return f"device:{device}"


# --- RQ queues and job ids --------------------------------------------------------------

def archive_queue(queue_name: str) -> str:
    """The archive workers' queue beside a generation queue (config ARCHIVE_QUEUE_NAME)."""
    return f"{queue_name}-archives"


def generation_job(task_id: str, millis: int) -> str:
    """The RQ job id of one submit (services/core/queue.enqueue_slot)."""
    return f"{task_id}_{millis}"


def archive_job(archive_id: str) -> str:
    return f"archive-{archive_id}"


# --- model installs (services/generation/installs.py, worker/install_jobs.py) -----------

def model_job(job_id: str) -> str:
    """The RQ job id of a model job (install, convert, merge) on the archive queue."""
    return f"model-job-{job_id}"


def install_token(job_id: str) -> str:
    """An install's access token, kept only until its job has read it (never in the database)."""
    return key("install-token", job_id)
