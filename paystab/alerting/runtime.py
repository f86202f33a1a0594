"""Start Prometheus, Alertmanager and paystab's alert receiver on loopback; stop cleanly.

``paystab up --prometheus [--alertmanager]`` and the integration tests use these. Each
server gets a free 127.0.0.1 port, its own data directory and a config written by
:mod:`.serverconfig` (rules from :mod:`.export`), and is ready when ``/-/ready`` answers
200. Alertmanager runs with clustering off (``--cluster.listen-address=``) so it neither
gossips nor binds a second port. :func:`start_receiver` runs paystab's own webhook receiver
and failover controller (:mod:`.receiver`) for Alertmanager to call. A missing binary is an :class:`EnvironmentProblem`
(exit 4) that says which Debian package to install.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from paystab import httpclient
from paystab.alerting.export import RULE_FILE, write_files
from paystab.alerting.rules import dump_yaml
from paystab.alerting.serverconfig import (
    ScrapeTarget,
    alertmanager_config,
    prometheus_config,
)
from paystab.alerting.spec import AlertingConfig
from paystab.children import child_env, forget, python_command, spawn
from paystab.exceptions import EnvironmentProblem

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


@dataclass
class RunningProcess:
    """A server this module started: where it answers, its log, and how to stop it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    _log: IO[bytes] | None = field(repr=False, default=None)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        forget(self.process)
        if self._log is not None:
            self._log.close()
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def find_binary(names: Sequence[str], package: str) -> str:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                      else None)
        if path:
            return path
    raise EnvironmentProblem(
        f"{names[0]} is not installed",
        hint=f"apt-get install {package} (Debian/Ubuntu), or put {names[0]} on PATH",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _target(item: str | ScrapeTarget, index: int, config: AlertingConfig) -> ScrapeTarget:
    """A ScrapeTarget from ``job=url``, a URL or a bare ``host:port``.

    Entries without a job: the first is the gateway, the others provider processes — the
    order ``paystab up`` lists them in. A URL without a path scrapes ``/metrics``.
    """
    if isinstance(item, ScrapeTarget):
        return item
    job, sep, rest = item.partition("=")
    if not sep or "/" in job:
        job, rest = (config.gateway_job if index == 0 else config.providers_job), item
    url = rest if "://" in rest else f"http://{rest}"
    if urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + "/metrics"
    return ScrapeTarget.parse(f"{job}={url}")


def start_prometheus(
    scrape_targets: Sequence[str | ScrapeTarget],
    data_dir: str | Path,
    *,
    rules_dir: str | Path | None = None,
    config: AlertingConfig | None = None,
    alertmanager_url: str | None = None,
    scrape_interval_s: float = 1.0,
    evaluation_interval_s: float = 1.0,
    timeout_s: float = 30.0,
) -> RunningProcess:
    """Prometheus scraping ``scrape_targets`` with paystab's rules, on a free loopback port.

    ``rules_dir`` holds ``*.rules.yml`` to load; without it the rules are generated from
    ``config`` (default: :meth:`AlertingConfig.fast`, zero ``for:`` so drills see alerts
    within seconds) into ``data_dir/rules``. Exemplar storage is on, for the latency panels.
    """
    binary = find_binary(PROMETHEUS_BINARIES, "prometheus")
    config = config or AlertingConfig.fast()
    data = Path(data_dir)
    if rules_dir is None:
        from paystab.alerting.export import render_rules

        rules_path = data / "rules"
        write_files(rules_path, {name: text for name, text in render_rules(config).items()
                                 if name == RULE_FILE})
    else:
        rules_path = Path(rules_dir)
    alertmanagers = [alertmanager_url.split("://", 1)[-1].rstrip("/")] if alertmanager_url else None
    document = prometheus_config(
        [_target(t, i, config) for i, t in enumerate(scrape_targets)],
        [str(rules_path.resolve() / "*.rules.yml")],
        scrape_interval_s=scrape_interval_s,
        evaluation_interval_s=evaluation_interval_s,
        alertmanagers=alertmanagers,
    )
    config_path = data / "prometheus.yml"
    write_files(data, {"prometheus.yml": dump_yaml(document)})

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ]

    return _start("prometheus", command, data, config_path, timeout_s)


def start_alertmanager(
    webhook_url: str,
    data_dir: str | Path,
    *,
    group_wait_s: float = 1.0,
    group_interval_s: float = 5.0,
    repeat_interval: str = "1h",
    timeout_s: float = 30.0,
) -> RunningProcess:
    """Alertmanager sending every alert to ``webhook_url``, on a free loopback port.

    The short default grouping (1 s wait, 5 s interval) is for drills, where a failover
    should follow an alert within seconds; a production setup uses :mod:`.serverconfig`'s
    defaults (see ``deploy/``).
    """
    binary = find_binary(ALERTMANAGER_BINARIES, "prometheus-alertmanager")
    data = Path(data_dir)
    document = alertmanager_config(
        webhook_url, group_wait_s=group_wait_s, group_interval_s=group_interval_s,
        repeat_interval=repeat_interval,
    )
    config_path = data / "alertmanager.yml"
    write_files(data, {"alertmanager.yml": dump_yaml(document)})

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={data / 'store'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    return _start("alertmanager", command, data, config_path, timeout_s)


def start_receiver(
    gateway_url: str,
    data_dir: str | Path,
    *,
    token: str | None = None,
    detect: bool = True,
    timeout_s: float = 30.0,
) -> RunningProcess:
    """paystab's Alertmanager webhook receiver + failover controller, as its own process.

    ``python -m paystab.alerting.receiver`` on a free loopback port, draining through the
    gateway admin API at ``gateway_url``; pass ``url + "/alerts"`` to
    :func:`start_alertmanager`. ``detect=False`` acts on alerts only. Its failover events
    are JSON lines in ``log_path``.
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    env = child_env()
    if token:
        env["PAYSTAB_TOKEN"] = token
    else:
        env.pop("PAYSTAB_TOKEN", None)

    def command(port: int) -> list[str]:
        argv = python_command("-m", "paystab.alerting.receiver", "--gateway", gateway_url,
                              "--listen", f"127.0.0.1:{port}")
        return argv if detect else [*argv, "--no-detect"]

    return _start("receiver", command, data, data / "receiver.log", timeout_s,
                  ready_path="/healthz", env=env)


def _start(name: str, command: Callable[[int], list[str]], data: Path, config_path: Path,
           timeout_s: float, ready_path: str = "/-/ready",
           env: dict[str, str] | None = None) -> RunningProcess:
    last_log = ""
    # A free port can be taken between our probe and the server's bind: try a few.
    for _attempt in range(3):
        port = free_port()
        log_path = data / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by RunningProcess.stop
        try:
            # SIGTERM when paystab dies (kernel death signal), so a crash leaves no server.
            process = spawn(command(port), what=name, death_signal=signal.SIGTERM,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env)
        except OSError as exc:
            log.close()
            raise EnvironmentProblem(f"cannot start {name}: {exc}") from None
        running = RunningProcess(name, f"http://127.0.0.1:{port}", process, log_path,
                                 config_path, log)
        if _wait_ready(running, timeout_s, ready_path):
            return running
        last_log = running.log_tail()
        running.stop()
        if "already in use" not in last_log.lower():
            break
    raise EnvironmentProblem(
        f"{name} did not become ready within {timeout_s:g} s",
        hint=f"its log ({data / (name + '.log')}) ends with:\n{last_log[-1500:]}",
    )


def _wait_ready(running: RunningProcess, timeout_s: float, ready_path: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not running.alive():
            return False
        # through the control-call client: no environment proxy for this loopback call
        if httpclient.get_status(f"{running.url}{ready_path}", 1.0) == 200:
            return True
        time.sleep(0.1)
    return False
