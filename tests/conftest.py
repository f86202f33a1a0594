"""Shared fixtures: the real reference stack, and the rule for tests that need real parts.

``reference_stack`` starts ``paystab up`` in a subprocess on ephemeral loopback ports and
yields its :class:`StackEndpoints` (read from the ready file); ``fresh_stack`` is the same
per test, for tests that inject faults. ``require(part, ok)`` skips a test whose real part
is missing, except under ``CI=true`` where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paystab.stack.endpoints import StackEndpoints

IN_CI = os.environ.get("CI", "").lower() == "true"


# Tests that load the CPU on purpose (burners on every core, capacity searches, benchmarks,
# fuzzing, the ×10 flash sale). When the suite runs on two workers (scripts/test: pytest-xdist
# ``--dist loadgroup``) they share one group, so two of them never run side by side; every
# other test, drills included, may run beside one of them, as on a shared CI runner.
CPU_HEAVY_FILES = {
    "test_drill_busy_host.py", "test_load_acceptance.py", "test_load_benchmark.py",
    "test_anomaly_benchmark.py", "test_gateway_fuzz.py", "test_openapi_schemathesis.py",
    "test_load_distributed.py",
}
CPU_HEAVY_TESTS = ("flash-sale", "flash_sale", "test_capacity_finds_the_knee")
# Tests that set the host's load themselves (CPU burners on every core) or drill a stack that
# cannot tell a stalled host from a hung PSP (the example shop): they run alone, the other
# worker waiting between two of its tests (a readers-writer lock over the workers).
EXCLUSIVE_FILES = {"test_drill_busy_host.py", "test_example_shop_drills.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = Path(item.nodeid.split("::", 1)[0]).name
        if name in CPU_HEAVY_FILES or any(t in item.nodeid for t in CPU_HEAVY_TESTS):
            item.add_marker(pytest.mark.xdist_group("cpu-heavy"))
        if name in EXCLUSIVE_FILES:
            item.add_marker(pytest.mark.exclusive)


@pytest.fixture(autouse=True)
def _exclusive_across_workers(request: pytest.FixtureRequest,
                              tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under pytest-xdist: an ``exclusive`` test holds the suite's lock alone, every other
    test holds it shared. A turnstile taken first keeps the exclusive one from starving."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    import fcntl

    root = tmp_path_factory.getbasetemp().parent  # shared by the workers of this run
    exclusive = request.node.get_closest_marker("exclusive") is not None
    turnstile = os.open(root / "paystab-turnstile.lock", os.O_RDWR | os.O_CREAT, 0o600)
    suite = os.open(root / "paystab-suite.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if exclusive:
            fcntl.flock(suite, fcntl.LOCK_EX)  # waits for the other worker's current test
        else:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(suite, fcntl.LOCK_SH)
        yield
    finally:
        os.close(suite)  # closing releases both locks
        os.close(turnstile)


def require(part: str, available: bool, hint: str = "") -> None:
    """Skip when ``part`` is missing; under CI=true fail instead."""
    if available:
        return
    message = f"{part} is not available" + (f" ({hint})" if hint else "")
    if IN_CI:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    else:
        pytest.skip(message)  # outside CI only


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    require(name, path is not None, f"apt-get install {package}")
    assert path is not None
    return path


class RunningStack:
    """A ``paystab up`` subprocess and what its ready file says."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.ready_file = workdir / "ready.json"
        self.log_path = workdir / "up.log"
        args = [
            sys.executable, "-m", "paystab", "up", "--port", "0",
            "--ready-file", str(self.ready_file), "--data-dir", str(workdir / "data"),
            *(extra_args or []),
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PAYSTAB_STATE_DIR=str(workdir / "state"))
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.endpoints = self._wait_ready(timeout_s=60.0)

    def _wait_ready(self, timeout_s: float) -> StackEndpoints:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                return StackEndpoints.read(self.ready_file)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"paystab up did not become ready: {self.log_path.read_text(errors='replace')[-3000:]}"
        )

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def reference_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    """One reference stack shared by the session: do not inject faults into it."""
    stack = RunningStack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack.endpoints
    finally:
        stack.stop()


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A reference stack of this test's own, free to break."""
    stack = RunningStack(tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


# Each burner spins for at most this long and then exits by itself, even if the test dies.
BURN_LIMIT_S = 240
BURNER = f"import time\nend = time.monotonic() + {BURN_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"


@pytest.fixture
def cpu_burners() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Unrelated CPU burners on every core, as on a shared CI runner (tests that use it run
    alone: ``EXCLUSIVE_FILES``)."""
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(os.cpu_count() or 2)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=10)
