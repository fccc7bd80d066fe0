"""Does the web tier use every core?

Starts the real web server (gunicorn as `make run` starts it, serve.web_command: one
process a core by default) against a throwaway instance (its own migrated SQLite
database and its own embedded Redis), signs a user in, and measures three routes:

  page    GET /studio, signed in (session cookie)
  api     GET /api/v1/me with a bearer token
  health  GET /healthz

each with one sequential client, then with 50 concurrent clients (a closed loop: each
client sends its next request when the answer came), after a warm-up, on keep-alive
connections. The load comes from a few client processes (plain sockets, a thread per
connection), so that the clients' own GIL does not cap what is measured.

Figures, for each route: p99 latency with 50 clients ÷ with one client, and requests
per second with 50 clients ÷ with one. Targets on 2 or more cores: requests per second
ratio ≥ 1.6 (the server does more work with more clients, instead of less), and p99
ratio ≤ 1.5 × 50 / 1.6 ≈ 47 (50 clients sharing 1.6 clients' worth of throughput, 1.5×
allowed for the tail). The same run measures a server of one process
(DAYDREAM_WEB_PROCESSES=1, the old default) beside it, in interleaved rounds: the
"before" figures, printed, not judged.

    python -m bench.bench_web [--clients 50] [--seconds 3] [--warmup 1] [--rounds 2] [--processes N]

Exit status 1 when a target of the page, API or health route is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RPS_RATIO = 1.6
TAIL_ALLOWANCE = 1.5
CONNECTIONS_PER_CLIENT_PROCESS = 10
PASSWORD = "a bench password, long enough"


# --------------------------------------------------------------------------- the load (client processes)


def _read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response off a keep-alive socket: (status, bytes left over, still open)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-body")
            rest += chunk
        rest = rest[length:]
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:  # size line, data, CRLF ... until the 0-size chunk and its CRLF
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        raise ValueError("a response with neither Content-Length nor chunked body")
    return status, rest, headers.get(b"connection") != b"close"


def _client(port: int, request: bytes, connections: int, start_at: float, warmup: float, seconds: float) -> dict:
    """Closed-loop clients on `connections` keep-alive sockets from start_at (wall clock)
    for warmup + seconds; latencies of the requests sent after the warm-up."""
    measure_from, end = start_at + warmup, start_at + warmup + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections

    def run(n: int) -> None:
        sock, buffer = None, b""
        time.sleep(max(0.0, start_at - time.time()))
        while True:
            sent_at = time.time()
            if sent_at >= end:
                break
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buffer = b""
                started = time.perf_counter()
                sock.sendall(request)
                status, buffer, still_open = _read_response(sock, buffer)
                took = time.perf_counter() - started
                if status != 200:
                    errors[n] += 1
                elif sent_at >= measure_from:
                    latencies[n].append(took)
                if not still_open:
                    sock.close()
                    sock = None
            except (OSError, ValueError):
                errors[n] += 1
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": [t for per in latencies for t in per], "errors": sum(errors)}


@dataclass
class Load:
    clients: int
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def __add__(self, other: "Load") -> "Load":
        return Load(self.clients, self.latencies + other.latencies, self.errors + other.errors,
                    self.seconds + other.seconds)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def run_load(port: int, path: str, headers: dict, clients: int, warmup: float, seconds: float) -> Load:
    """`clients` closed-loop clients, CONNECTIONS_PER_CLIENT_PROCESS to a process."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    start_at = time.time() + 0.6  # time for the client processes to start
    sizes = [CONNECTIONS_PER_CLIENT_PROCESS] * (clients // CONNECTIONS_PER_CLIENT_PROCESS)
    if clients % CONNECTIONS_PER_CLIENT_PROCESS:
        sizes.append(clients % CONNECTIONS_PER_CLIENT_PROCESS)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.bench_web", "--client", json.dumps({
        "port": port, "request": request.decode(), "connections": size, "start_at": start_at,
        "warmup": warmup, "seconds": seconds})], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for size in sizes]
    latencies, errors = [], 0
    for proc in procs:
        out, _ = proc.communicate(timeout=warmup + seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"a client process failed (status {proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        latencies += result["latencies"]
        errors += result["errors"]
    return Load(clients, latencies, errors, seconds)


# --------------------------------------------------------------------------- the server


class Http:
    """Setting up: a few requests with a cookie jar (the standard library only)."""

    def __init__(self, port: int):
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        return response.status, data

    def json(self, method: str, path: str, payload: dict) -> tuple[int, dict]:
        status, data = self.request(method, path, json.dumps(payload).encode(), "application/json")
        return status, json.loads(data or b"{}")


def _csrf(html: bytes) -> str:
    import re

    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(rb'name="csrf-token" content="([^"]+)"', html)
    if not match:
        raise RuntimeError("no CSRF token on the sign-in page")
    return match.group(1).decode()


def _children(parent: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


class Instance:
    """A throwaway Daydream: its folder, its embedded Redis, its migrated database."""

    def __init__(self, folder: Path):
        import serve

        self.folder = folder
        sock = serve.socket_path(folder)
        self.redis = subprocess.Popen(serve.redis_command(folder, sock), cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("DAYDREAM_") and k not in ("DATABASE_URL", "REDIS_URL")}
        self.env = {**base, "DAYDREAM_INSTANCE_PATH": str(folder), "REDIS_URL": f"unix://{sock}",
                    "DAYDREAM_QUEUE": f"bench-{uuid.uuid4().hex[:8]}", "DAYDREAM_MODEL": "demo",
                    "DAYDREAM_MODELS_PATH": str(folder / "models"), "HF_HUB_OFFLINE": "1",
                    "DAYDREAM_SECRET_KEY": secrets.token_urlsafe(32), "PYTHONWARNINGS": "ignore"}
        serve.wait_for_redis(self.env["REDIS_URL"], self.redis, folder / "redis.log")
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT,
                       env=self.env, check=True, capture_output=True)

    def close(self) -> None:
        self.redis.terminate()
        self.redis.wait(20)


class Server:
    """gunicorn as `make run` starts it (no request log), with `processes` processes or
    the default (DAYDREAM_WEB_PROCESSES unset: one a core)."""

    def __init__(self, instance: Instance, processes: int | None):
        import serve
        from config import web_processes

        env = dict(instance.env)
        if processes is not None:
            env["DAYDREAM_WEB_PROCESSES"] = str(processes)
        self.processes = processes or web_processes()
        self.port = _free_port()
        self.log = open(instance.folder / f"web-{self.processes}.log", "ab")
        self.proc = subprocess.Popen(serve.web_command("127.0.0.1", self.port, None, processes=self.processes),
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited; see {self.log.name}")
            if len(_children(self.proc.pid)) >= self.processes and self._healthy():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start; see {self.log.name}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            return Http(self.port).request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sign_in(port: int) -> tuple[dict, dict]:
    """A new user: (headers of a signed-in browser, headers of an API client)."""
    name = f"bench{uuid.uuid4().hex[:8]}"
    http = Http(port)
    status, body = http.json("POST", "/api/v1/auth/register",
                             {"username": name, "email": f"{name}@example.com", "password": PASSWORD})
    if status != 201:
        raise RuntimeError(f"could not register: {status} {body}")
    status, body = http.json("POST", "/api/v1/auth/tokens", {"login": name, "password": PASSWORD, "name": "bench"})
    token = body["token"]
    browser = Http(port)
    _, page = browser.request("GET", "/login")
    from urllib.parse import urlencode

    status, _ = browser.request("POST", "/login", urlencode(
        {"login": name, "password": PASSWORD, "csrf_token": _csrf(page)}).encode(), "application/x-www-form-urlencoded")
    if status != 302:
        raise RuntimeError(f"could not sign in: {status}")
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    return {"Cookie": cookie}, {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- measuring


@dataclass
class RouteFigures:
    name: str
    path: str
    one: Load
    many: Load

    @property
    def p99_ratio(self) -> float:
        return self.many.percentile(99) / self.one.percentile(99)

    @property
    def rps_ratio(self) -> float:
        return self.many.rps / self.one.rps


def measure(ports: dict[int, int], clients: int, warmup: float, seconds: float,
            rounds: int) -> dict[int, list[RouteFigures]]:
    """For each server (processes -> port) and route: one client, then `clients`, in
    `rounds` interleaved rounds (server by server within a route), so that what else the
    machine does hits every figure alike. One user signs in; both servers share the
    instance, so its cookie and token work on either."""
    page_headers, api_headers = sign_in(next(iter(ports.values())))
    routes = [("page", "/studio", page_headers), ("api", "/api/v1/me", api_headers), ("health", "/healthz", {})]
    loads: dict[tuple[int, str], list[Load]] = {}
    for _ in range(rounds):
        for name, path, headers in routes:
            for processes, port in ports.items():
                one = run_load(port, path, headers, 1, warmup, seconds)
                many = run_load(port, path, headers, clients, warmup, seconds)
                previous = loads.get((processes, name))
                loads[(processes, name)] = [one, many] if previous is None else \
                    [previous[0] + one, previous[1] + many]
    return {processes: [RouteFigures(name, path, *loads[(processes, name)]) for name, path, _ in routes]
            for processes in ports}


def targets(clients: int, cores: int) -> tuple[float, float]:
    """(least requests-per-second ratio, largest p99 ratio)."""
    rps = TARGET_RPS_RATIO if cores >= 2 else 0.9  # one core: no gain to be had, only no loss
    return rps, TAIL_ALLOWANCE * clients / rps


def report(results: dict[int, list[RouteFigures]], judged: int, clients: int, cores: int) -> tuple[str, bool]:
    rps_target, p99_target = targets(clients, cores)
    lines, passed = [], True
    for processes, figures in results.items():
        label = f"{processes} process{'es' if processes != 1 else ''}"
        lines.append(f"web server of {label} ({'the default: one a core' if processes == judged else 'before'}),"
                     f" {cores} cores, the load generator on the same machine")
        lines.append(f"  {'route':<22} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>6}")
        for f in figures:
            for load in (f.one, f.many):
                lines.append(f"  {f.name + ' ' + f.path:<22} {load.clients:>7} {load.percentile(50) * 1000:>8.1f} "
                             f"{load.percentile(99) * 1000:>8.1f} {load.rps:>8.0f} {load.errors:>6}")
        for f in figures:
            if processes == judged:
                ok_p99, ok_rps = f.p99_ratio <= p99_target, f.rps_ratio >= rps_target
                ok = ok_p99 and ok_rps and f.many.errors == 0 and f.one.errors == 0
                passed = passed and ok
                lines.append(f"  {f.name:<7} p99 {clients} clients ÷ 1: {f.p99_ratio:6.1f}  (target ≤ {p99_target:.0f})"
                             f"  {'PASS' if ok_p99 else 'FAIL'};  req/s {clients} clients ÷ 1: {f.rps_ratio:5.2f}"
                             f"  (target ≥ {rps_target})  {'PASS' if ok_rps else 'FAIL'}")
            else:
                lines.append(f"  {f.name:<7} p99 {clients} clients ÷ 1: {f.p99_ratio:6.1f};"
                             f"  req/s {clients} clients ÷ 1: {f.rps_ratio:5.2f}")
        lines.append("")
    lines.append("PASS" if passed else "FAIL")
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_web", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per route, client count and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=None, help="web processes (default: one a core)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        spec = json.loads(args.client)
        result = _client(spec["port"], spec["request"].encode(), spec["connections"], spec["start_at"],
                         spec["warmup"], spec["seconds"])
        print(json.dumps(result))
        return 0
    if args.clients < 2 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients must be at least 2, --seconds positive and --rounds at least 1")
    sys.path.insert(0, str(ROOT))
    from config import web_processes

    os.environ.pop("DAYDREAM_WEB_PROCESSES", None)  # the default is what is judged, unless --processes
    judged = args.processes or web_processes()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    folder = Path(tempfile.mkdtemp(prefix="daydream-bench-web-"))
    started = time.perf_counter()
    instance, servers = None, {}
    try:
        instance = Instance(folder)
        for processes in dict.fromkeys([1, judged]):  # before and after (once if the same)
            servers[processes] = Server(instance, processes if processes != judged or args.processes else None)
        print(f"measuring web servers of {' and '.join(map(str, servers))} processes, {args.rounds} rounds ...",
              flush=True)
        results = measure({n: server.port for n, server in servers.items()}, args.clients, args.warmup,
                          args.seconds, args.rounds)
    finally:
        for server in servers.values():
            server.stop()
        if instance is not None:
            instance.close()
        shutil.rmtree(folder, ignore_errors=True)
    text, passed = report(results, judged, args.clients, cores)
    print(text, flush=True)
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
