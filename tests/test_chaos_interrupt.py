"""Interrupted drills leave nothing behind: 30 × SIGINT/SIGTERM, and SIGKILL + clear --all.

A small drill script loads a runbook with faults on five backends (a provider of the
reference stack, a proxy in front of another, a local process, an iptables partition, a
paused container) and injects them on a schedule inside a FaultSession. Each run is
interrupted at a random moment — before, during or after the injections. Then the *real
targets* are checked: no provider fault, no toxic, no stopped process, no iptables rule,
no paused container, no journal record. iptables and docker join when available (and must
be, under CI=true).
"""

from __future__ import annotations

import random
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos.journal import Journal
from tests.conftest import IN_CI, RunningStack
from tests.conftest_chaos import (  # noqa: F401 - fixtures used by name
    ROOT,
    HttpServer,
    ProxyServerProcess,
    Sleeper,
    docker_engine,
    env_with_state,
    free_port,
    get_outcome,
    host_image,
    iptables_available,
    paystab,
    paystab_rules,
    remove_container,
    require,
    run_python_container,
    wait_for,
)

DRILL = textwrap.dedent("""
    import sys, time
    from paystab.exceptions import PaystabError
    from paystab.chaos.runbook import load_runbook
    from paystab.chaos.session import FaultSession

    def main() -> None:
        book = load_runbook(sys.argv[1])
        with FaultSession(allow=book.allow, context=book.target.context(),
                          allow_source=book.source) as session:
            faults = session.prepare(book.fault_specs())
            print("start", flush=True)
            t0 = time.monotonic()
            for step, fault in zip(book.faults, faults):
                time.sleep(max(0.0, step.at_s - (time.monotonic() - t0)))
                session.inject(fault)
            print("all", flush=True)
            time.sleep(60)

    try:
        main()
    except PaystabError as exc:
        print(exc.render(), file=sys.stderr)
        sys.exit(int(exc.exit_code))
""")


class Targets:
    """Everything the drill breaks, and how to tell it is whole again."""

    def __init__(self, workdir: Path, docker_client: Any, image: str | None) -> None:
        self.workdir = workdir
        (workdir / "stack").mkdir()
        self.stack = RunningStack(workdir / "stack")
        self.proxy = ProxyServerProcess(workdir / "proxy.log")
        bravo = self.stack.endpoints.providers["card-bravo"].url.split("://", 1)[1]
        self.proxy.create("card-bravo", bravo)
        self.sleeper = Sleeper()
        self.web = HttpServer() if iptables_available() else None
        self.docker, self.container = docker_client, None
        if docker_client is not None and image is not None:
            port = free_port()
            self.container = run_python_container(
                docker_client, image, f"paystab-test-int-{port}",
                ["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/tmp"])
            self.container_url = f"http://127.0.0.1:{port}/"
            wait_for(lambda: get_outcome(self.container_url) == "ok", 30, "container")
        self.state = workdir / "state"
        self.runbook = workdir / "drill.yaml"
        self.runbook.write_text(self._runbook())
        self.script = workdir / "drill.py"
        self.script.write_text(DRILL)

    def _runbook(self) -> str:
        faults = [
            ("error", "provider.error_burst", "card-alpha", "{ratio: 1.0}"),
            ("slow-proxy", "proxy.latency", "card-bravo", "{latency: 1s}"),
            ("freeze", "process.stop", "sleeper", "{}"),
        ]
        allow = ["provider:card-alpha", "proxy:card-bravo", "process:sleeper"]
        if self.web is not None:
            faults.append(("cut", "iptables.partition", f"127.0.0.1:{self.web.port}", "{}"))
            allow.append(f"127.0.0.1:{self.web.port}")
        if self.container is not None:
            faults.append(("pause", "docker.pause", self.container.name, "{}"))
            allow.append(f"container:{self.container.name}")
        lines = [
            "name: interrupted-drill",
            "description: faults on several backends, interrupted at random",
            "target:",
            f"  ready_file: {self.stack.ready_file}",
            f"  proxy_api: {self.proxy.url}",
            f"  processes: {{sleeper: {{pid: {self.sleeper.pid}}}}}",
            "load: {profile: steady, rate: 1/s, duration: 60s}",
            "faults:",
        ]
        for index, (name, kind, target, params) in enumerate(faults):
            lines.append(f"  - {{name: {name}, at: {index * 25}ms, kind: {kind}, "
                         f"target: '{target}', params: {params}}}")
        lines.append("allow: [" + ", ".join(f"'{a}'" for a in allow) + "]")
        return "\n".join(lines) + "\n"

    def dirty(self) -> list[str]:
        """What is still broken (empty = all whole)."""
        found = []
        admin = self.stack.endpoints.provider_admin_url
        import json
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        faults = json.loads(opener.open(f"{admin}/admin/providers/card-alpha/faults",
                                        timeout=5).read())["faults"]
        if faults:
            found.append(f"provider faults {faults}")
        if self.proxy.toxics("card-bravo"):
            found.append("toxics")
        if self.sleeper.state() == "T":
            found.append("stopped process")
        if self.web is not None and paystab_rules(self.web.port):
            found.append("iptables rules")
        if self.container is not None:
            self.container.reload()
            if self.container.status != "running":
                found.append(f"container {self.container.status}")
        if Journal(self.state).entries():
            found.append("journal records")
        return found

    def close(self) -> None:
        if self.container is not None:
            remove_container(self.docker, self.container.name)
        self.sleeper.close()
        if self.web is not None:
            self.web.close()
        self.proxy.close()
        self.stack.stop()


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Targets]:
    if IN_CI:
        require("iptables", iptables_available(), "root and iptables")
    try:  # docker joins when it can run here (it must under CI=true: require fails then)
        client: Any = request.getfixturevalue("docker_engine")
        image: str | None = request.getfixturevalue("host_image")
    except pytest.skip.Exception:
        client, image = None, None
    found = Targets(tmp_path_factory.mktemp("interrupt"), client, image)
    yield found
    found.close()


def _run_and_interrupt(targets: Targets, rng: random.Random, signum: int) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, str(targets.script), str(targets.runbook)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_with_state(targets.state), cwd=ROOT)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready and proc.stdout.readline().strip() == "start", proc.stderr and proc.stderr.read()
    time.sleep(rng.uniform(0.0, 0.2))  # before, during or after the injections
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.usefixtures("targets")
def test_thirty_interrupted_drills_leave_nothing(targets: Targets) -> None:
    rng = random.Random(20240611)
    started = time.monotonic()
    for run in range(30):
        signum = rng.choice([signal.SIGINT, signal.SIGTERM])
        code, err = _run_and_interrupt(targets, rng, signum)
        assert code == 3, f"run {run}: exit {code}: {err}"
        assert "interrupted by SIG" in err
        assert targets.dirty() == [], f"run {run} ({signal.Signals(signum).name}): {err}"
    print(f"30 interrupted drills in {time.monotonic() - started:.1f}s")


def test_sigkill_then_clear_all_leaves_nothing(targets: Targets) -> None:
    rng = random.Random(7)
    for run in range(5):
        code, _ = _run_and_interrupt(targets, rng, signal.SIGKILL)
        assert code == -signal.SIGKILL
        left = Journal(targets.state).entries()
        assert all(not e.owner_alive for e in left)
        done = paystab("chaos", "clear", "--all", state=targets.state)
        assert done.returncode == 0, done.stderr
        assert targets.dirty() == [], f"run {run}: {done.stdout} {done.stderr}"
