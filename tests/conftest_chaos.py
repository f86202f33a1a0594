"""Real parts for the chaos tests: processes, HTTP servers, dockerd, an image, the proxy.

Not a pytest conftest (the lead owns ``tests/conftest.py``): test modules import the
fixtures they use from here. Everything listens on 127.0.0.1. Real parts that are missing
skip the test, or fail it under ``CI=true`` (``require``).
"""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos import procfs
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "paystab-test-host:1"


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_with_state(state: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, PAYSTAB_STATE_DIR=str(state), PYTHONPATH=str(ROOT), **extra)


def paystab(*args: str, state: Path, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paystab", *args], capture_output=True,
                          text=True, timeout=timeout, env=env_with_state(state), cwd=ROOT, **kw)


def http_get(url: str, timeout: float = 1.0) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        r.read()  # the whole body: a toxic may slow or cut it
        return int(r.status)


def get_outcome(url: str, timeout: float = 0.5) -> str:
    """What a client sees: "ok", "timeout", "refused", "reset" or the error name."""
    try:
        http_get(url, timeout)
        return "ok"
    except Exception as exc:  # classify whatever the network did
        text = f"{type(exc).__name__} {exc}".lower()
        for word in ("timed out", "timeout"):
            if word in text:
                return "timeout"
        if "refused" in text:
            return "refused"
        if "reset" in text or "remote end closed" in text or "connection aborted" in text:
            return "reset"
        return type(exc).__name__


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private fault-journal directory for this test (and its subprocesses)."""
    path = tmp_path / "state"
    monkeypatch.setenv("PAYSTAB_STATE_DIR", str(path))
    return path


# -- local processes and servers ------------------------------------------------------------
class Sleeper:
    """A child process that just sleeps: something safe to stop and kill."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                     start_new_session=True)
        wait_for(lambda: procfs.start_ticks(self.proc.pid), what="sleeper start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def state(self) -> str | None:
        return procfs.state(self.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def sleeper() -> Iterator[Sleeper]:
    s = Sleeper()
    yield s
    s.close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a fixed 2000-byte body (so bandwidth toxics show)."""

    BODY = b"x" * 2000

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: Any) -> None:
        pass


class HttpServer:
    """A threaded HTTP server on 127.0.0.1 in this process."""

    def __init__(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    s = HttpServer()
    yield s
    s.close()


# -- iptables ----------------------------------------------------------------------------------
def iptables_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("iptables"):
        return False
    return subprocess.run(["iptables", "-w", "-L", "-n"], capture_output=True).returncode == 0


def paystab_rules(port: int | None = None) -> list[str]:
    """iptables rules paystab added (tagged paystab:…) for ``port`` (any port if None).

    Filter by port in tests: a drill elsewhere on this machine may hold rules of its own.
    """
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    rules = [line for line in out.splitlines() if "--comment" in line and "paystab:" in line]
    if port is None:
        return rules
    return [r for r in rules if f"--dport {port} " in r or f"--sport {port} " in r]


@pytest.fixture
def iptables() -> None:
    require("iptables", iptables_available(), "run as root with iptables installed")


# -- the Toxiproxy-API server ------------------------------------------------------------------
class ProxyServerProcess:
    """``paystab chaos proxy`` in a subprocess on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paystab", "chaos", "proxy", "--listen", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env_with_state(log.parent))
        wait_for(self._up, 20, "paystab chaos proxy")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "paystab chaos proxy exited"
        try:
            return http_get(self.url + "/version") == 200
        except OSError:
            return False

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=5) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def create(self, name: str, upstream: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api("POST", "/proxies", {
            "name": name, "upstream": upstream, "listen": "127.0.0.1:0"})
        return body

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("GET", f"/proxies/{proxy}/toxics")
        return found

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def proxy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServerProcess]:
    server = ProxyServerProcess(tmp_path_factory.mktemp("proxy") / "proxy.log")
    yield server
    server.close()


# -- docker -------------------------------------------------------------------------------------
def _docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0 \
        if shutil.which("docker") else False


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Docker client; starts ``dockerd`` (root) when none answers, stops it after."""
    started: subprocess.Popen[bytes] | None = None
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    # A daemon that was just stopped may still hold its pid file: try a few times.
    for _ in range(3):
        if _docker_ok() or os.geteuid() != 0 or not shutil.which("dockerd"):
            break
        with open(log, "ab") as out:
            started = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false"],
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.monotonic() + 60
        while not _docker_ok() and time.monotonic() < deadline and started.poll() is None:
            time.sleep(0.2)
        if started.poll() is None:
            break
        started = None
        time.sleep(2)
    require("docker", _docker_ok(), f"apt-get install docker.io; run dockerd as root ({log})")
    import docker

    client = docker.from_env()
    yield client
    client.close()
    if started is not None:
        started.terminate()
        try:
            started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.kill()


@pytest.fixture(scope="session")
def host_image(docker_engine: Any) -> str:
    """An image with an empty root: the host's /usr and Python are bind-mounted into it."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return IMAGE  # built by an earlier session: the same empty root
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("usr", "root", "tmp", "etc", "proc", "sys", "dev", "work"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for link in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
    subprocess.run(["docker", "import", "-", IMAGE], input=buf.getvalue(), check=True,
                   capture_output=True)
    return IMAGE


def python_mounts() -> dict[str, dict[str, str]]:
    """Read-only binds that let the host's Python (and paystab) run in the empty image."""
    paths = {"/usr", str(Path(sys.base_prefix).resolve()), str(ROOT)}
    if Path("/root/.pyenv").is_dir():
        paths.add("/root/.pyenv")
    paths = {p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)}
    return {p: {"bind": p, "mode": "ro"} for p in sorted(paths)}


def run_python_container(client: Any, image: str, name: str, argv: list[str],
                         network: str = "host") -> Any:
    client.containers.run(image, [sys.executable, *argv], name=name, detach=True,
                          network=network, volumes=python_mounts(), working_dir=str(ROOT),
                          environment={"PYTHONPATH": str(ROOT), "HOME": "/tmp"})
    return client.containers.get(name)


def remove_container(client: Any, name: str) -> None:
    import docker

    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture
def web_container(docker_engine: Any, host_image: str) -> Iterator[tuple[Any, str]]:
    """A container (host network) running an HTTP server on a free loopback port."""
    port = free_port()
    name = f"paystab-test-web-{os.getpid()}-{port}"
    container = run_python_container(
        docker_engine, host_image, name,
        ["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/tmp"])
    url = f"http://127.0.0.1:{port}/"
    wait_for(lambda: get_outcome(url) == "ok", 30, "the web container to answer")
    yield container, url
    remove_container(docker_engine, name)


# -- real payment traffic to one provider, in its own dialect ------------------------------
CARD_ALPHA_DIALECT = "stripe"  # what card-alpha speaks (stack/catalog.py)


def charge(url: str, dialect: str, timeout: float = 1.0) -> tuple[str, float]:
    """One card charge sent straight to a provider: (unified code or failure, seconds).

    Failures: ``timeout`` (no answer in time), ``refused`` (nobody listens), ``reset``
    (closed without a full answer). Test card 4242… approves when nothing is broken.
    """
    import http.client
    import urllib.parse
    import uuid

    from paystab.stack.dialects import get_dialect
    from paystab.stack.dialects.base import Card, ChargeRequest

    speaker = get_dialect(dialect)
    key = uuid.uuid4().hex
    call = speaker.charge_call(ChargeRequest(
        idempotency_key=key, payment_id=f"pay_{key[:12]}", amount=1999, currency="JPY",
        method="card", country="JP", card=Card("4242424242424242", 12, 2030, "123")))
    headers = dict(call.headers)
    auth, secret = getattr(speaker, "client_auth_headers", None), getattr(
        speaker, "default_secret", None)
    if auth is not None and secret:  # e.g. stripe's bearer key (the simulator's default)
        headers.update(auth(secret))
    parsed = urllib.parse.urlsplit(url)
    start = time.monotonic()
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(call.method, call.path, body=call.body or None, headers=headers)
        response = conn.getresponse()
        body = response.read()
        answer = speaker.parse_charge(response.status, response.getheader("Content-Type", ""),
                                      body)
        outcome = answer.code
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        outcome = "timeout" if "timed out" in str(exc) else "reset"
    finally:
        conn.close()
    return outcome, time.monotonic() - start


class ProviderProcess:
    """``paystab provider NAME`` alone in a subprocess on fixed free ports."""

    def __init__(self, workdir: Path, name: str = "card-alpha") -> None:
        self.name = name
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.workdir = workdir
        self.argv = [sys.executable, "-m", "paystab", "provider", name, "--port", str(self.port),
                     "--admin-port", str(self.admin_port), "--data-dir", str(workdir / "data")]
        self._log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=ROOT, env=env_with_state(workdir / "state"))
        self.wait_up()

    def wait_up(self, timeout_s: float = 30.0) -> None:
        wait_for(lambda: charge(self.url, CARD_ALPHA_DIALECT, 2.0)[0] == "approved", timeout_s,
                 f"provider {self.name} to answer")

    def faults(self) -> list[Any]:
        data = json.loads(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"{self.admin_url}/admin/providers/{self.name}/faults", timeout=5).read())
        found: list[Any] = data["faults"]
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
