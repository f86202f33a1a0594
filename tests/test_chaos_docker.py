"""docker.* faults on a real container (dockerd started here if none runs).

The image is built with ``docker import`` from an empty root; the container runs the host's
Python (bind-mounted read-only) with host networking, so a client on 127.0.0.1 sees what a
gateway would: pause → requests hang; unpause → answers again; kill/stop → refused until
clear starts it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos.base import FaultContext, FaultSpec
from paystab.chaos.docker import Disconnect, Pause
from paystab.chaos.session import FaultSession
from paystab.exceptions import InvalidInput
from tests.conftest_chaos import (
    docker_engine,
    get_outcome,
    host_image,
    remove_container,
    run_python_container,
    state,
    wait_for,
    web_container,
)

__all__ = ["docker_engine", "host_image", "state", "web_container"]
pytestmark = pytest.mark.docker


def _status(container: Any) -> str:
    container.reload()
    return str(container.status)


def test_pause_hangs_clients_and_unpause_recovers(state: Path, web_container: tuple[Any, str]) -> None:
    container, url = web_container
    with FaultSession() as session:
        fault = session.inject(FaultSpec("freeze", "docker.pause", container.name))
        assert _status(container) == "paused"
        assert get_outcome(url, timeout=0.5) == "timeout"  # accepted by the kernel, no answer
        assert f"container:{container.name}" in fault.touches().names
        session.clear(fault)
        assert _status(container) == "running"
        wait_for(lambda: get_outcome(url) == "ok", 10, "recovery after unpause")
        session.clear(fault)  # idempotent


@pytest.mark.parametrize("kind", ["docker.kill", "docker.stop"])
def test_kill_and_stop_then_start_on_clear(state: Path, web_container: tuple[Any, str],
                                           kind: str) -> None:
    container, url = web_container
    params = {"timeout": 1.0} if kind == "docker.stop" else {"signal": "SIGKILL"}
    with FaultSession() as session:
        session.inject(FaultSpec("down", kind, container.name, params))
        wait_for(lambda: _status(container) == "exited", 15, "the container to stop")
        assert get_outcome(url) == "refused"
    wait_for(lambda: _status(container) == "running", 15, "started again")
    wait_for(lambda: get_outcome(url) == "ok", 30, "answers again")


def test_restart_comes_back(state: Path, web_container: tuple[Any, str]) -> None:
    container, url = web_container
    started = container.attrs["State"]["StartedAt"]
    with FaultSession() as session:
        session.inject(FaultSpec("bounce", "docker.restart", container.name, {"timeout": 0.0}))
        container.reload()
        assert container.attrs["State"]["StartedAt"] != started
        wait_for(lambda: get_outcome(url) == "ok", 30, "answers after restart")


def test_clear_from_another_process_after_a_crash(state: Path,
                                                  web_container: tuple[Any, str]) -> None:
    container, url = web_container
    fault = Pause.prepare(FaultSpec("p", "docker.pause", container.name), FaultContext())
    fault.inject()  # as if the injecting process then died
    Pause.from_record(fault.record()).clear()
    assert _status(container) == "running"
    wait_for(lambda: get_outcome(url) == "ok", 10)


def test_unknown_container_and_host_network_are_exit_2(state: Path,
                                                       web_container: tuple[Any, str]) -> None:
    container, _ = web_container
    with pytest.raises(InvalidInput, match="no container"):
        Pause.prepare(FaultSpec("x", "docker.pause", "no-such-container-xyz"), FaultContext())
    with pytest.raises(InvalidInput, match="host"):
        Disconnect.prepare(FaultSpec("x", "docker.disconnect", container.name,
                                     {"network": "host"}), FaultContext())


def test_network_disconnect_and_reconnect(state: Path, docker_engine: Any, host_image: str) -> None:
    """Disconnect removes the container's interface on that network; clear puts it back.

    Checked from inside the container (its own interface list) and through the Docker API,
    so no test traffic crosses the bridge: all test traffic stays on loopback.
    """
    network_name = f"paystab-test-net-{os.getpid()}"
    name = f"paystab-test-bridge-{os.getpid()}"
    network = docker_engine.networks.create(network_name, driver="bridge")

    def interfaces() -> set[str]:
        code, out = container.exec_run(
            [sys.executable, "-c", "import socket; print(' '.join(n for _, n in socket.if_nameindex()))"])
        assert code == 0, out
        return set(out.decode().split())

    try:
        container = run_python_container(docker_engine, host_image, name, [
            "-c", "import time; time.sleep(300)"], network=network_name)
        container.reload()
        wait_for(lambda: bool(interfaces() - {"lo"}), 30, "the container's interface on the bridge")
        with FaultSession() as session:
            fault = session.inject(FaultSpec("cut", "docker.disconnect", name,
                                             {"network": network_name}))
            container.reload()
            assert network_name not in container.attrs["NetworkSettings"]["Networks"]
            assert interfaces() == {"lo"}
            session.clear(fault)
        container.reload()
        assert network_name in container.attrs["NetworkSettings"]["Networks"]
        wait_for(lambda: bool(interfaces() - {"lo"}), 15, "reconnected")  # a new ethN
    finally:
        remove_container(docker_engine, name)
        network.remove()


def test_docker_cli_reports_environment_problem_without_daemon(state: Path) -> None:
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(state), DOCKER_HOST="unix:///nonexistent.sock")
    done = subprocess.run([sys.executable, "-m", "paystab", "chaos", "inject", "docker.pause",
                           "--target", "web", "--duration", "1s"], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 4 and "Docker engine" in done.stderr
