"""Plain helpers shared by more than one test folder (unit, integration, e2e): an app
bound to a fresh instance folder, the real processes (worker, archive worker, web server)
started as `make run` starts them, polling, small pictures and a local mailbox.

Fixtures live in the conftest.py of the folder that needs them; test modules import
plain helpers from here or from their folder's helpers.py, never from another test
module or a conftest (tests/unit/test_test_layout.py checks)."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
import uuid
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("DAYDREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# Settings every test instance overrides; restored after.
ENV_KEYS = ("DAYDREAM_INSTANCE_PATH", "REDIS_URL", "DAYDREAM_QUEUE", "DAYDREAM_MODELS_PATH",
            "DATABASE_URL", "DAYDREAM_MODEL", "DAYDREAM_STARTING_TOKENS", "DAYDREAM_SECRET_KEY",
            "DAYDREAM_PROGRESS_HZ", "DAYDREAM_CANCEL_ON_LEAVE_GRACE", "DAYDREAM_REGISTER_LIMIT_IP",
            "DAYDREAM_REGISTER_LIMIT_NETWORK")


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A name no other test uses: tests share one Redis and some share an app."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def image_bytes(size=(64, 64), colour=(200, 30, 30), fmt="PNG") -> bytes:
    """A picture of one colour, encoded in memory (PNG, JPEG, GIF, ...)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def instance_env(instance: Path, redis_url: str, models_path: Path, **overrides) -> dict:
    env = {
        "DAYDREAM_INSTANCE_PATH": str(instance),
        "REDIS_URL": redis_url,
        "DAYDREAM_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "DAYDREAM_MODELS_PATH": str(models_path),
        "DAYDREAM_MODEL": "demo",
        "DAYDREAM_SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "DAYDREAM_PROGRESS_HZ": "50",
        "DAYDREAM_CANCEL_ON_LEAVE_GRACE": "1",
        # Test modules register many users from 127.0.0.1 into one instance; the
        # registration limits have a module of their own (test_registration.py).
        "DAYDREAM_REGISTER_LIMIT_IP": "100000 per hour",
        "DAYDREAM_REGISTER_LIMIT_NETWORK": "100000 per hour",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@contextmanager
def environment(values: dict):
    saved = {k: os.environ.get(k) for k in ENV_KEYS + tuple(values)}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_app(env: dict):
    """An app bound to env's instance, its tables created from the models (that the
    migrations make the same tables is tests/integration/test_migrations.py's job)."""
    from app import create_app
    from config import Config
    from extensions import db

    with environment(env):
        app = create_app(Config())
    app.config["TESTING"] = True
    with app.app_context():
        db.create_all()
    return app


class ManagedProcess:
    """A child process of the tests, stopped as a supervisor would: SIGTERM, then kill."""

    proc: subprocess.Popen | None = None

    def stop(self, grace: float = 20) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


class WorkerProcess(ManagedProcess):
    """A real worker: `python qworker.py` in its own process."""

    SCRIPT = "qworker.py"

    def queue_name(self) -> str:
        return self.env["DAYDREAM_QUEUE"]

    def __init__(self, env: dict, log_path: Path):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "WorkerProcess":
        return self.launch().wait_ready(timeout)

    def launch(self) -> "WorkerProcess":
        """Start the process without waiting (start several, then wait_ready each)."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / self.SCRIPT)], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 120) -> "WorkerProcess":
        conn = redis.Redis.from_url(self.env["REDIS_URL"])
        from rq import Queue, Worker

        q = Queue(self.queue_name(), connection=conn)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            return any(w.pid == self.proc.pid for w in Worker.all(queue=q))

        wait_for(ready, timeout, message="the worker to register")
        return self


    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class ArchiveWorkerProcess(WorkerProcess):
    """A real archive worker: `python qarchiver.py` (ZIP archives, a queue of their own)."""

    SCRIPT = "qarchiver.py"

    def queue_name(self) -> str:
        return self.env.get("DAYDREAM_ARCHIVE_QUEUE") or f"{self.env['DAYDREAM_QUEUE']}-archives"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer(ManagedProcess):
    """The real web server (gunicorn, threaded, WebSockets) as `make run` starts it
    (serve.web_command), with `processes` web processes: 1 unless a test asks for more
    (tests that measure one process's memory or its upload slots count on one)."""

    def __init__(self, env: dict, log_path: Path, processes: int = 1, threads: int = 32):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.processes, self.threads = processes, threads
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "WebServer":
        import requests

        from serve import web_command

        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            web_command("127.0.0.1", self.port, None, processes=self.processes, threads=self.threads),
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"web server exited:\n{self.log_path.read_text()[-3000:]}")
            if len(self.worker_pids()) < self.processes:
                return False
            try:
                return requests.get(self.url + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout, interval=0.1, message="the web server")
        return self

    def worker_pids(self) -> set[int]:
        """The web processes: gunicorn's workers, the children of its master."""
        return child_pids(self.proc.pid) if self.proc else set()


def child_pids(parent: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found



# --- stacks -------------------------------------------------------------------------------

class Stack:
    """A server-and-worker stack on an instance folder of its own: the app (tables
    created; its test client talks to the same database and Redis queue as the
    processes) and the processes asked for, each started once on first request: a
    worker, an archive worker, and web servers (one per number of web processes)."""

    def __init__(self, instance: Path, env: dict):
        self.instance, self.env = instance, env
        self.app = make_app(env)
        self.worker: WorkerProcess | None = None
        self.archiver: ArchiveWorkerProcess | None = None
        self.servers: dict[int, WebServer] = {}

    def start_worker(self) -> WorkerProcess:
        if self.worker is None:
            self.worker = WorkerProcess(self.env, self.instance / "worker.log").start()
        return self.worker

    def start_archiver(self) -> ArchiveWorkerProcess:
        if self.archiver is None:
            self.archiver = ArchiveWorkerProcess(self.env, self.instance / "archiver.log").start()
        return self.archiver

    def web(self, processes: int = 1) -> WebServer:
        """The stack's web server with that many web processes (modules asking for the
        same number share one)."""
        if processes not in self.servers:
            name = "web.log" if processes == 1 else f"web{processes}.log"
            server = WebServer(self.env, self.instance / name, processes=processes).start()
            server.env, server.instance = self.env, self.instance
            self.servers[processes] = server
        return self.servers[processes]

    def stop(self, grace: float = 20) -> None:
        for server in self.servers.values():
            server.stop()
        for process in (self.archiver, self.worker):
            if process is not None:
                process.stop(grace)
        self.servers, self.archiver, self.worker = {}, None, None


class StackFactory:
    """Stacks by their settings (the env overrides of instance_env, and whether a worker
    serves the queue): modules asking for the same settings share one stack; a module
    with settings of its own gets its own. A stack asked for with `keep=True` (by a
    session-scoped fixture) lives until the session ends; of the others, the `spare`
    most recently asked for are kept for a later module and older ones stopped, so a
    run holds a bounded number of workers whatever order the modules run in. Stopping
    runs in the background (a worker can take its whole SIGTERM grace to exit): the
    next module does not wait for it, and the session's end waits for them all."""

    # Three spares: the modules (in file-name order) take turns between a handful of
    # settings, and a stack started again costs a worker's start and its models' loads;
    # an idle stack costs only memory (about 1.5 GB).
    def __init__(self, base: Path, redis_url: str, models_path: Path, spare: int = 3):
        self.base, self.redis_url, self.models_path, self.spare = base, redis_url, models_path, spare
        self.stacks: dict[tuple, Stack] = {}  # oldest request first
        self.kept: set[tuple] = set()
        self.stopping: list[threading.Thread] = []

    def __call__(self, *, worker: bool = True, archiver: bool = False, web: int = 0,
                 keep: bool = False, **settings) -> Stack:
        key = (frozenset((name, str(value)) for name, value in settings.items()), worker)
        stack = self.stacks.pop(key, None)
        if stack is None:
            instance = self.base / unique("stack")
            instance.mkdir(parents=True)
            stack = Stack(instance, instance_env(instance, self.redis_url, self.models_path, **settings))
        self.stacks[key] = stack
        if keep:
            self.kept.add(key)
        self._stop_the_oldest(key)
        if worker:
            stack.start_worker()
        if archiver:
            stack.start_archiver()
        if web:
            stack.web(web)
        return stack

    def _stop_the_oldest(self, current: tuple) -> None:
        spares = [key for key in self.stacks if key not in self.kept and key != current]
        for key in spares[:max(0, len(spares) - self.spare)]:
            self._stop_in_background(self.stacks.pop(key))

    def _stop_in_background(self, stack: Stack, grace: float = 20) -> None:
        thread = threading.Thread(target=stack.stop, args=(grace,), name=f"stop {stack.instance.name}")
        thread.start()
        self.stopping.append(thread)

    def stop(self) -> None:
        # The session's end: nothing reads these stacks again, so a worker still busy
        # with a task some test left running is not waited for (SIGTERM, then kill).
        for stack in reversed(list(self.stacks.values())):
            self._stop_in_background(stack, grace=3)
        self.stacks.clear()
        for thread in self.stopping:
            thread.join()


# --- mail ---------------------------------------------------------------------------------

# The address the apps that send mail are told they are served at (their links point there).
PUBLIC_URL = "http://daydream.example"


class Mailbox:
    """A real SMTP server on a free loopback port that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for rcpt, m in self.messages if address.lower() in (r.lower() for r in rcpt)]

    def wait_for_message(self, address: str, count: int = 1):
        wait_for(lambda: len(self.to(address)) >= count, 20, message=f"mail number {count} to {address}")
        return self.to(address)[count - 1]


def link_in(message, kind: str = "reset") -> str:
    """The path of the one-time link in a received message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(rf"{re.escape(PUBLIC_URL)}(/{kind}/[A-Za-z0-9_\-]+)", text)
    assert match, f"no {kind} link in the message:\n{text}"
    return match.group(1)


# --- single sign-on -----------------------------------------------------------------------

OIDC_CLIENT_ID = "daydream-tests"
OIDC_CLIENT_SECRET = "the tests' client secret"


def provider_account(login: str, password: str, *, verified: bool = True, groups=None,
                     email: str | None = None) -> dict:
    """A person at the test provider (OidcProvider's accounts): email <login>@school.example.org
    unless given, email_verified as `verified`, and a groups claim when `groups` is given."""
    claims = {"email": email or f"{login}@school.example.org", "email_verified": verified,
              "preferred_username": login, "given_name": login.capitalize()}
    if groups is not None:
        claims["groups"] = groups
    return {"login": login, "password": password, "claims": claims}


class OidcProvider(ManagedProcess):
    """A real OpenID Connect provider (node's oidc-provider: tests/oidc/server.js, installed
    by `make test-deps`) on a free loopback port: issuer .url, one client (OIDC_CLIENT_ID)
    whose redirect URIs start() is given, and the test accounts [{login, password, claims}].
    The port is chosen first, so a server's settings can name the provider (settings())
    before the provider knows the server's redirect URI. Its other discovery documents:
    discovery("mixup") names another issuer with this one's endpoints and keys,
    discovery("liar") an issuer that is not its address (tests/oidc/server.js)."""

    FOLDER = ROOT / "tests" / "oidc"

    def __init__(self, log_path: Path, accounts: list[dict]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path, self.accounts = log_path, accounts
        self.proc: subprocess.Popen | None = None

    def discovery(self, variant: str = "") -> str:
        return f"{self.url}{'/' + variant if variant else ''}/.well-known/openid-configuration"

    def settings(self, **more) -> dict:
        """The server's settings for signing in with this provider."""
        return {"DAYDREAM_OIDC_DISCOVERY_URL": self.discovery(), "DAYDREAM_OIDC_CLIENT_ID": OIDC_CLIENT_ID,
                "DAYDREAM_OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET, "DAYDREAM_OIDC_NAME": "Test School", **more}

    def start(self, redirect_uris: str | list[str], post_logout_uri: str, timeout: float = 30) -> "OidcProvider":
        """Start it for the client's redirect URI (or several: one per server that signs in
        with it)."""
        import shutil

        import requests

        node = shutil.which("node")
        if node is None or not (self.FOLDER / "node_modules" / "oidc-provider").is_dir():
            raise AssertionError("the OpenID Connect provider of the tests is not installed: run `make test-deps`")
        config = self.log_path.with_suffix(".json")
        config.write_text(json.dumps({
            "port": self.port, "accounts": self.accounts,
            "client": {"client_id": OIDC_CLIENT_ID, "client_secret": OIDC_CLIENT_SECRET,
                       "redirect_uris": [redirect_uris] if isinstance(redirect_uris, str) else list(redirect_uris),
                       "post_logout_redirect_uris": [post_logout_uri]}}))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([node, "server.js", str(config)], cwd=self.FOLDER,
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the OpenID Connect provider exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                return requests.get(self.discovery(), timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout, interval=0.1, message="the OpenID Connect provider")
        return self

    def sign_in(self, authorization_url: str, login: str, password: str, http=None) -> str:
        """Follow an authorization request through the provider's login form as a browser
        would (`http`: a requests.Session, the browser's cookies at the provider); returns
        the address it sends the browser back to (the client's redirect URI with the
        answer's code and state)."""
        import requests

        http = http or requests.Session()
        url = authorization_url
        for _hop in range(10):
            response = http.get(url, allow_redirects=False, timeout=10)
            if response.status_code == 200 and 'id="login"' in response.text:
                action = re.search(r'action="([^"]+)"', response.text).group(1)
                response = http.post(self.url + action, data={"login": login, "password": password},
                                     allow_redirects=False, timeout=10)
            assert response.status_code in (302, 303), f"{response.status_code}: {response.text[:500]}"
            url = requests.compat.urljoin(url, response.headers["Location"])
            if not url.startswith(self.url):
                return url
        raise AssertionError("the provider kept redirecting")


# A1111's own infotext reader (modules/infotext_utils.py): its field pattern and the unquoting
# it applies to the last line of a PNG's "parameters", to read them as A1111 pastes them back.
A1111_INFOTEXT_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_infotext_fields(text: str) -> dict:
    """{name: value} of an A1111-style infotext's settings line, as A1111's parser reads it."""
    fields = {}
    for key, value in A1111_INFOTEXT_FIELD.findall(text.splitlines()[-1] if text else ""):
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        fields[key] = value
    return fields


def safetensors_stub(path: Path, shapes: dict, cut: int = 0) -> Path:
    """A .safetensors file whose header names `shapes` ({tensor: [dims]}, float16), with a
    sparse body of zeros as long as they need (`cut` bytes short: a download cut short)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2
        for n in shape:
            size *= n
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        handle.truncate(8 + len(raw) + offset - cut)
    return path


def write_json_file(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# Guide files of each kind the scan tells apart (issue 25): header stubs, no weights.
SD1_CONTROLNET = {"control_model.input_hint_block.0.weight": [16, 3, 3, 3],
                  "control_model.zero_convs.0.0.weight": [320, 320, 1, 1],
                  "control_model.time_embed.0.weight": [1280, 320],
                  "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768]}
SDXL_UNION_CONTROLNET = {"controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3],
                         "controlnet_down_blocks.0.weight": [320, 320, 1, 1],
                         "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": [640, 2048],
                         "task_embedding": [8, 320], "control_add_embedding.linear_1.weight": [1280, 2048]}
FLUX_CONTROLNET = {"controlnet_x_embedder.weight": [3072, 64], "controlnet_blocks.0.weight": [3072, 3072],
                   "transformer_blocks.0.attn.to_k.weight": [3072, 3072],
                   "single_transformer_blocks.0.attn.to_k.weight": [3072, 3072]}
SD1_IPADAPTER = {"image_proj.proj.weight": [3072, 1024], "image_proj.norm.weight": [768],
                 "ip_adapter.1.to_k_ip.weight": [320, 768], "ip_adapter.1.to_v_ip.weight": [320, 768]}
SD1_IPADAPTER_PLUS = {"image_proj.latents": [1, 16, 768], "image_proj.proj_in.weight": [768, 1280],
                      "image_proj.proj_out.weight": [768, 768], "ip_adapter.1.to_k_ip.weight": [320, 768]}
SDXL_IPADAPTER = {"image_proj.proj.weight": [8192, 1280], "image_proj.norm.weight": [2048],
                  "ip_adapter.1.to_k_ip.weight": [640, 2048]}
VIT_H_ENCODER = {"architectures": ["CLIPVisionModelWithProjection"], "hidden_size": 1280, "projection_dim": 1024}


def write_guide_layout(models: Path) -> Path:
    """A models folder with a guide of each kind (and a Kontext model) as the scan finds
    them: see tests/integration/test_guide_models.py for what each is."""
    cn, ip = models / "controlnet", models / "ipadapter"
    safetensors_stub(cn / "control_v11p_sd15_canny.safetensors", SD1_CONTROLNET)
    write_json_file(cn / "sdxl-canny" / "config.json", {"_class_name": "ControlNetModel", "cross_attention_dim": 2048})
    safetensors_stub(cn / "sdxl-canny" / "diffusion_pytorch_model.safetensors", {"conv_in.weight": [320, 4, 3, 3]})
    safetensors_stub(cn / "union" / "controlnet-union-sdxl.safetensors", SDXL_UNION_CONTROLNET)
    write_json_file(cn / "flux-union" / "config.json", {"_class_name": "FluxControlNetModel", "num_mode": 10})
    safetensors_stub(cn / "flux-union" / "diffusion_pytorch_model.safetensors", {"x_embedder.weight": [3072, 64]})
    safetensors_stub(cn / "flux-canny.safetensors", FLUX_CONTROLNET)
    write_json_file(cn / "sd3-canny" / "config.json", {"_class_name": "SD3ControlNetModel"})
    safetensors_stub(cn / "cut-short.safetensors", SD1_CONTROLNET, cut=100)
    (cn / "old-canny.pth").write_bytes(b"not read")
    safetensors_stub(ip / "models" / "ip-adapter_sd15.safetensors", SD1_IPADAPTER)
    safetensors_stub(ip / "models" / "ip-adapter-plus_sd15.safetensors", SD1_IPADAPTER_PLUS)
    write_json_file(ip / "models" / "image_encoder" / "config.json", VIT_H_ENCODER)
    safetensors_stub(ip / "models" / "image_encoder" / "model.safetensors", {"visual_projection.weight": [1024, 1280]})
    # SDXL's own adapter takes ViT-bigG's 1280-wide embeddings: the ViT-H encoder does not fit.
    safetensors_stub(ip / "sdxl_models" / "ip-adapter_sdxl.safetensors", SDXL_IPADAPTER)
    write_json_file(ip / "flux-redux" / "model_index.json", {"_class_name": "FluxPriorReduxPipeline"})
    write_json_file(models / "flux1-kontext-dev" / "model_index.json", {"_class_name": "FluxKontextPipeline"})
    write_json_file(models / "flux1-kontext-dev" / "transformer" / "config.json",
                    {"guidance_embeds": True, "in_channels": 64})
    return models


# --- an annotator's weights (ControlNet preprocessors that are models) ---------------------

def random_pidinet(models_path: Path) -> Path:
    """<models_path>/annotators/table5_pidinet.pth (lllyasviel/Annotators' name) holding
    random PiDiNet weights: the network controlnet_aux builds (softedge_pidinet and the
    other PiDiNet preprocessors), saved as that file holds it ({"state_dict": …}). The same
    bytes every time (seed 0). Torch is imported here, not with this module."""
    import torch

    from services.generation import annotators

    torch.manual_seed(0)
    network = annotators.detector_module("pidi").pidinet()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0, 0.2)
    path = annotators.folder_of(models_path) / "table5_pidinet.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": network.state_dict()}, path)
    return path


# --- an HTTPS server of model files (model installs) --------------------------------------

def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files of a self-signed certificate for an IP address."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class ModelFileServer:
    """HTTPS on 127.0.0.1 with a self-signed certificate (`ca` is its PEM, for
    DAYDREAM_INSTALL_CA_BUNDLE), serving what a model install fetches: `files` (path →
    bytes), `redirects` (path → Location), `cut_once` (path → drop the connection after
    that many bytes, once), `fail_next` (path → the answers to give first, one a request:
    a status such as 503, or (status, headers) such as (429, {"Retry-After": "1"})),
    `claimed_size` (path → a Content-Length it does not send),
    `slow` (paths, or prefixes ending in /, sent a little at a time), and a mirror of the Hugging Face hub's layout
    for the folders in `repos` (repo id → folder): GET /api/models/<id>/revision/<rev>
    lists the files with their sizes and LFS sha256, /<id>/resolve/<rev>/<file> redirects
    to the file. `requests` records (path, Range header) of every request."""

    def __init__(self, folder: Path):
        import hashlib
        import ssl
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlsplit

        self.ca, key = self_signed_cert(folder)
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.cut_once: dict[str, int] = {}
        self.fail_next: dict[str, list] = {}
        self.claimed_size: dict[str, int] = {}
        self.slow: set[str] = set()  # paths, or prefixes ending in "/", sent slow_chunk bytes per 50 ms
        self.slow_chunk = 4096
        self.repos: dict[str, Path] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        def repo_listing(repo: str) -> dict:
            root = server.repos[repo]
            siblings = []
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                data = path.read_bytes()
                entry = {"rfilename": path.relative_to(root).as_posix(), "size": len(data)}
                if path.suffix == ".safetensors":
                    entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                siblings.append(entry)
            return {"id": repo, "sha": "0" * 40, "siblings": siblings}

        def content(path: str) -> bytes | None:
            if path in server.files:
                return server.files[path]
            if path.startswith("/cdn/"):
                repo, _, rel = path[5:].partition("/")
                owner, _, rest = rel.partition("/")
                repo = f"{repo}/{owner}"
                if repo in server.repos and ".." not in rest.split("/"):
                    target = server.repos[repo] / rest
                    return target.read_bytes() if target.is_file() else None
            return None

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                return body

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                server.requests.append((path, self.headers.get("Range")))
                if server.fail_next.get(path):
                    answer = server.fail_next[path].pop(0)
                    status, headers = answer if isinstance(answer, tuple) else (answer, {})
                    self.wfile.write(self.send(status, b"busy", headers))
                    return
                if path in server.redirects:
                    self.wfile.write(self.send(302, headers={"Location": server.redirects[path]}))
                    return
                parts = path.strip("/").split("/")
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
                    repo = "/".join(parts[2:4])
                    if repo not in server.repos:
                        self.wfile.write(self.send(404, b"{}"))
                        return
                    body = json.dumps(repo_listing(repo)).encode()
                    self.wfile.write(self.send(200, body, {"Content-Type": "application/json"}))
                    return
                if len(parts) >= 5 and parts[2] == "resolve":
                    location = "/cdn/" + "/".join(parts[:2] + parts[4:])
                    self.wfile.write(self.send(302, headers={"Location": location}))
                    return
                if path in server.claimed_size:
                    self.send(200, length=server.claimed_size[path])
                    self.close_connection = True
                    return
                data = content(path)
                if data is None:
                    self.wfile.write(self.send(404, b"not here"))
                    return
                start = 0
                match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if match and int(match.group(1)) < len(data):
                    start = int(match.group(1))
                    self.send(206, headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
                              length=len(data) - start)
                else:
                    self.send(200, length=len(data))
                body = data[start:]
                cut = server.cut_once.pop(path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                slow = any(path == p or (p.endswith("/") and path.startswith(p)) for p in server.slow)
                step = server.slow_chunk if slow else 1 << 20
                for offset in range(0, len(body), step):
                    self.wfile.write(body[offset:offset + step])
                    if slow:
                        time.sleep(0.05)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="model files").start()

    def url(self, path: str = "") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def settings(self, models: Path) -> dict:
        """The stack settings that make installs fetch from this server into `models`."""
        return {"DAYDREAM_INSTALL_ALLOW_HOSTS": "127.0.0.1", "DAYDREAM_INSTALL_CA_BUNDLE": str(self.ca),
                "DAYDREAM_HF_ENDPOINT": self.url(), "DAYDREAM_MODELS_PATH": str(models),
                "DAYDREAM_INSTALL_RETRIES": "3", "DAYDREAM_INSTALL_BACKOFF": "0.05", "DAYDREAM_INSTALL_MAX_WAIT": "2"}


_model_file_server: ModelFileServer | None = None


def model_file_server(folder: Path) -> ModelFileServer:
    """One ModelFileServer for the whole run (its address is part of the stack's settings,
    so the modules that install models share one stack); folder is used the first time."""
    global _model_file_server
    if _model_file_server is None:
        folder.mkdir(parents=True, exist_ok=True)
        _model_file_server = ModelFileServer(folder)
    return _model_file_server


# --- GGUF files (the quantized denoisers of issue 26) ---------------------------------
def write_gguf(path: Path, tensors: dict, quant: str = "Q8_0",
               architecture: str = "flux") -> Counter:
    """Write `tensors` (name: numpy array) to a tiny GGUF file with the `gguf` package, as
    the GGUF denoisers people share are made: weight matrices quantized (Q8_0 where a row
    is a multiple of its block, else F16), the rest F32, names as given (diffusers' GGUF
    loader takes diffusers' names as they are). Returns the count of each type written."""
    import gguf
    import numpy as np

    kind = gguf.GGMLQuantizationType[quant]
    block, _ = gguf.GGML_QUANT_SIZES[kind]
    writer = gguf.GGUFWriter(str(path), architecture)
    types: Counter = Counter()
    for name, value in tensors.items():
        array = np.asarray(value, dtype=np.float32)
        if array.ndim >= 2 and array.shape[-1] % block == 0 and name.endswith(".weight"):
            data = gguf.quants.quantize(array, kind)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
            types[quant] += 1
        elif array.ndim >= 2:
            writer.add_tensor(name, array.astype(np.float16))
            types["F16"] += 1
        else:
            writer.add_tensor(name, array)
            types["F32"] += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


# The names GGUF files people share give a diffusers transformer's tensors (the original
# checkpoints' names: Z-Image's and FLUX.2's, whose q, k and v are one fused matrix), for
# the families whose diffusers converter turns them back: (diffusers name part, original).
ZIMAGE_ORIGINAL_NAMES = (("all_final_layer.2-1.", "final_layer."), ("all_x_embedder.2-1.", "x_embedder."),
                         (".attention.to_out.0.", ".attention.out."), (".attention.norm_k.", ".attention.k_norm."),
                         (".attention.norm_q.", ".attention.q_norm."))
FLUX2_ORIGINAL_NAMES = (
    ("x_embedder.", "img_in."), ("context_embedder.", "txt_in."), ("proj_out.", "final_layer.linear."),
    ("time_guidance_embed.timestep_embedder.linear_1.", "time_in.in_layer."),
    ("time_guidance_embed.timestep_embedder.linear_2.", "time_in.out_layer."),
    ("time_guidance_embed.guidance_embedder.linear_1.", "guidance_in.in_layer."),
    ("time_guidance_embed.guidance_embedder.linear_2.", "guidance_in.out_layer."),
    ("_modulation_img.linear.", "_modulation_img.lin."), ("_modulation_txt.linear.", "_modulation_txt.lin."),
    ("single_stream_modulation.linear.", "single_stream_modulation.lin."),
    ("single_transformer_blocks.", "single_blocks."), (".attn.to_qkv_mlp_proj.", ".linear1."),
    (".attn.to_out.weight", ".linear2.weight"), ("transformer_blocks.", "double_blocks."),
    (".attn.to_out.0.", ".img_attn.proj."), (".attn.to_add_out.", ".txt_attn.proj."),
    (".ff.linear_in.", ".img_mlp.0."), (".ff.linear_out.", ".img_mlp.2."),
    (".ff_context.linear_in.", ".txt_mlp.0."), (".ff_context.linear_out.", ".txt_mlp.2."),
    (".attn.norm_added_q.weight", ".txt_attn.norm.query_norm.scale"),
    (".attn.norm_added_k.weight", ".txt_attn.norm.key_norm.scale"))
FLUX2_SINGLE_NORMS = ((".attn.norm_q.weight", ".norm.query_norm.scale"), (".attn.norm_k.weight", ".norm.key_norm.scale"))
FLUX2_DOUBLE_NORMS = ((".attn.norm_q.weight", ".img_attn.norm.query_norm.scale"),
                      (".attn.norm_k.weight", ".img_attn.norm.key_norm.scale"))


def _fuse_qkv(tensors: dict, parts: tuple[str, str, str], fused: str) -> dict:
    """Each q, k, v triple of `tensors` (names ending in parts) as one matrix named `fused`."""
    import numpy as np

    out = {}
    for name, value in tensors.items():
        if name.endswith(parts[0]):
            stem = name[: -len(parts[0])]
            out[stem + fused] = np.concatenate([tensors[stem + part] for part in parts])
        elif not name.endswith(parts[1:]):
            out[name] = value
    return out


def _renamed(name: str, table) -> str:
    for diffusers, original in table:
        name = name.replace(diffusers, original)
    return name


def original_names(family: str, tensors: dict) -> dict:
    """A diffusers transformer's tensors under the names of the GGUF files people share, as
    far as diffusers' single-file converter turns them back: Z-Image's (fused attention.qkv,
    final_layer., …) and FLUX.2's (BFL's double_blocks., img_in., …). Qwen-Image's original
    names are diffusers' own. FLUX.1's and Chroma's stay diffusers' (their converter splits
    the single blocks' fused projection at the full model's width, 3072, so a tiny model
    cannot be written in BFL's names; diffusers takes its own names as they are)."""
    import numpy as np

    if family == "zimage":
        fused = _fuse_qkv(tensors, (".attention.to_q.weight", ".attention.to_k.weight", ".attention.to_v.weight"),
                          ".attention.qkv.weight")
        return {_renamed(k, ZIMAGE_ORIGINAL_NAMES): v for k, v in fused.items()}
    if family == "flux2":
        fused = _fuse_qkv(tensors, (".attn.to_q.weight", ".attn.to_k.weight", ".attn.to_v.weight"),
                          ".img_attn.qkv.weight")
        fused = _fuse_qkv(fused, (".attn.add_q_proj.weight", ".attn.add_k_proj.weight", ".attn.add_v_proj.weight"),
                          ".txt_attn.qkv.weight")
        out = {}
        for name, value in fused.items():
            norms = FLUX2_SINGLE_NORMS if name.startswith("single_") else FLUX2_DOUBLE_NORMS
            if name == "norm_out.linear.weight":  # BFL's final modulation is (shift, scale)
                scale, shift = np.split(value, 2)
                out["final_layer.adaLN_modulation.1.weight"] = np.concatenate([shift, scale])
            else:
                out[_renamed(_renamed(name, norms), FLUX2_ORIGINAL_NAMES)] = value
        return out
    return tensors


def gguf_from_safetensors(source: Path, path: Path, quant: str = "Q8_0", architecture: str = "flux",
                          family: str = "") -> Counter:
    """A GGUF file of a .safetensors denoiser's weights (a diffusers folder's transformer),
    under the names the files people share of `family` use (original_names)."""
    from safetensors.numpy import load_file

    return write_gguf(path, original_names(family, load_file(str(source))), quant, architecture)


def model_install_setup(base: Path) -> tuple[ModelFileServer, dict, Path]:
    """What the model install tests share (so that their modules share one stack): the
    run's ModelFileServer, the stack settings that install from it into
    <base>/install-models, and <base>/install-sources with a tiny SD 1.x diffusers folder
    (sd1/) and the same model as one single-file checkpoint (tiny-sd1.safetensors)."""
    server = model_file_server(base / "model-files")
    sources = base / "install-sources"
    folder = sources / "sd1"
    if not (folder / "model_index.json").is_file():
        from worker.demo_model import build_demo_model

        build_demo_model(folder, "sd1")
    single = sources / "tiny-sd1.safetensors"
    if not single.is_file():
        from diffusers import StableDiffusionPipeline

        from tests.checkpoints import save_sd1_checkpoint

        save_sd1_checkpoint(StableDiffusionPipeline.from_pretrained(folder, local_files_only=True), single)
    return server, {"DAYDREAM_STARTING_TOKENS": 10000, **server.settings(base / "install-models")}, sources


def with_query(url: str, **changes) -> str:
    """The address with some of its query parameters replaced (None: removed)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))
