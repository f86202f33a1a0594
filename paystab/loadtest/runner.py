"""Locust as a library: run a plan in-process, or as master of N local worker processes.

:func:`run_load` is the programmatic API (the drill calls it; importing this module imports
Locust, which gevent-patches the process — import it only where load runs). It validates
the plan, checks the target is reachable (exit 4 before any load), runs the users from
``paystab/loadtest/locustfile.py`` at the plan's arrival rate, waits until every arrival
has been issued and every checkout has ended, and returns a :class:`LoadResult`.
:class:`Harness` is the same machinery held open, so the capacity search can change the
rate while it runs.

Everything is bounded: the pacer stops at ``duration_s``, in-flight checkouts get
``plan.drain_s``, and a hard deadline ends the wait even if a worker never reports.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import gevent
import locust.stats
from locust.env import Environment
from locust.html import get_html_report
from rich.console import Console

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.loadtest import locustfile
from paystab.loadtest.distributed import RemoteWorkers
from paystab.loadtest.live import LiveView
from paystab.loadtest.mix import PaymentMix
from paystab.loadtest.plan import LoadPlan, RetryPolicy, build_plan
from paystab.loadtest.records import CheckoutRecord, RecordSink
from paystab.loadtest.result import LoadResult, build_result
from paystab.loadtest.session import LoadSession, attach
from paystab.loadtest.target import check_reachable
from paystab.loadtest.thresholds import parse_thresholds
from paystab.loadtest.worker_admission import MSG_HELLO
from paystab.loadtest.workers import WorkerProcesses, free_port

SPAWN_GRACE_S = 60.0  # added to the hard deadline: spawning users, workers connecting
MAX_PROCESSES = 64


class _QuietSpawnRate(logging.Filter):
    """Locust warns about spawn rates > 100/s; our users only wait, so it is harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


def _quiet_spawn_rate_warning() -> None:
    logger = logging.getLogger("locust.runners")
    if not any(isinstance(f, _QuietSpawnRate) for f in logger.filters):
        logger.addFilter(_QuietSpawnRate())


class StopFlag(Protocol):
    """threading.Event, gevent.event.Event or anything with ``is_set()``."""

    def is_set(self) -> bool: ...


class Harness:
    """One Locust environment running one plan; ``start`` → ``wait`` → ``stop``."""

    def __init__(
        self, target_url: str, plan: LoadPlan, *, processes: int = 1,
        on_record: Callable[[CheckoutRecord], None] | None = None, live: bool = False,
        console: Console | None = None, user_classes: Sequence[type[Any]] | None = None,
        remote: RemoteWorkers | None = None, spawn_rate: float | None = None,
    ) -> None:
        if spawn_rate is not None and not spawn_rate > 0:
            raise InvalidInput(f"spawn rate must be > 0, got {spawn_rate:g}", source="--spawn-rate",
                               expected="users started per second, > 0")
        if remote is not None:  # workers on other machines: their count is the share count
            processes = remote.expected
        if not 1 <= processes <= MAX_PROCESSES:
            raise InvalidInput(f"{processes} processes", source="--processes",
                               expected=f"an integer from 1 to {MAX_PROCESSES}")
        if plan.users < processes:
            raise InvalidInput(f"{plan.users} users cannot be shared by {processes} processes",
                               source="--users", expected=f"at least {processes} users "
                               "(each process runs its share of the users and of the rate)")
        self.target_url = target_url
        self.plan = plan
        self.processes = processes
        # Users started per second while the pool fills (Locust's -r); t=0 waits for the last
        # one. None: all at once — they only wait for arrivals, so spawning fast costs nothing.
        self.spawn_rate = spawn_rate
        self.sink = RecordSink(on_record=on_record)
        self.live = live
        self.console = console
        if plan.flow is not None and not target_url.startswith("http://"):
            raise InvalidInput(f"a checkout flow needs a plain http:// target, not {target_url!r}",
                               source="--target", expected="http://HOST:PORT (https flows are "
                               "not supported yet)")
        if user_classes is not None and processes > 1 and remote is None:
            raise InvalidInput("a user's locustfile runs in one process for now",
                               source="--processes", expected="1 with -f")
        _quiet_spawn_rate_warning()
        classes: list[Any] = (list(user_classes) if user_classes is not None
                              else [locustfile.CheckoutUser])
        self.env = Environment(user_classes=classes, host=target_url,
                               stop_timeout=plan.drain_s, catch_exceptions=True)
        self.user_classes = user_classes
        if user_classes is not None:
            from paystab.loadtest.userfile import install
            install(self.env)
        self.workers: WorkerProcesses | None = None
        self.remote = remote
        self.view: LiveView | None = None
        self._session: LoadSession | None = None
        self.interrupted = False
        self.finished_at: float | None = None

    @property
    def session(self) -> LoadSession:
        assert self._session is not None, "start() the harness first"
        return self._session

    def start(self) -> None:
        # Everything alive now (modules, schemas, Locust, a user's locustfile) lives for the
        # whole run: frozen, it is not walked by every full collection during the load.
        gc.collect()
        gc.freeze()
        if self.remote is not None:
            runner: Any = self.remote.create_runner(self.env)
            try:
                self.remote.wait_ready()
            except BaseException:  # too few workers, interrupted: the master quits
                self.stop()
                raise
        elif self.processes == 1:
            runner = self.env.create_local_runner()
        else:
            port = free_port()
            runner = self.env.create_master_runner("127.0.0.1", port)
            runner.register_message(MSG_HELLO, lambda **_kw: None)  # stock workers announce
            self.workers = WorkerProcesses(self.processes, port)
            self.workers.start()
            try:
                self.workers.wait_ready(runner)
            except EnvironmentProblem:
                self.stop()
                raise
        if self.user_classes is not None:
            from paystab.loadtest.userfile import fire_init
            fire_init(self.env, runner)  # a locustfile's @events.init listeners, as in Locust
        self._session = attach(self.env, self.plan, self.sink)
        if self.remote is not None:
            self.remote.watch(self._session)
        gevent.spawn(locust.stats.stats_history, runner)
        if self.live:
            session = self._session
            self.view = LiveView(
                self.sink, title=f"paystab load — {self.plan.profile} → {self.target_url}",
                target_rate=session.target_rate_now,
                users=lambda: int(runner.user_count), run_start=lambda: session.run_start,
                duration_s=self.plan.duration_s, console=self.console,
            )
            self.view.start()
        users = self.plan.users
        runner.start(users, spawn_rate=self.spawn_rate or float(max(users, 1) * 5))

    def spawn_s(self) -> float:
        """How long filling the pool may take at the spawn rate (0 when all start at once)."""
        return self.plan.users / self.spawn_rate if self.spawn_rate else 0.0

    def set_rate(self, rate: float) -> None:
        self.session.set_rate(rate)

    def wait_started(self, timeout_s: float = 60.0) -> float:
        """Block until t=0 (users spawned, pacers about to issue); return it (epoch s)."""
        deadline = time.monotonic() + timeout_s + self.spawn_s()
        while self.session.run_start is None:
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"the load did not start within {timeout_s:g} s")
            gevent.sleep(0.02)
        run_start = self.session.run_start
        gevent.sleep(max(run_start - time.time(), 0.0))
        return run_start

    def wait(self, stop_event: StopFlag | None = None) -> bool:
        """Block (cooperatively) until the run drained; False if stopped or timed out."""
        hard = (time.time() + self.plan.duration_s + self.plan.drain_s + SPAWN_GRACE_S
                + self.spawn_s())
        session = self.session
        while not session.finished.wait(0.2):
            if stop_event is not None and stop_event.is_set():
                self.interrupted = True
                return False
            if self.workers is not None and (dead := self.workers.died()) is not None:
                index = self.workers.procs.index(dead)
                self.interrupted = True
                raise EnvironmentProblem(
                    f"load worker {index} died with exit code {dead.returncode}:\n"
                    + self.workers.log_tail(index))
            if time.time() > hard:
                self.interrupted = True
                return False
        self.finished_at = time.time()
        return True

    def stop(self, html_path: str | Path | None = None) -> None:
        if self.finished_at is None:
            self.finished_at = time.time()
        session = self._session
        if session is not None and session.pacer is not None and session.role == "local":
            session.pacer.stop()
            session.sync_local()
        if self.remote is not None:  # the workers drain and send their last records first
            self.remote.shutdown(session, self.plan.drain_s + 5.0)
        runner = self.env.runner
        if runner is not None:
            runner.quit()
        if self.workers is not None:
            self.workers.stop()
        if self.view is not None:
            self.view.stop()
        if html_path is not None and runner is not None:
            Path(html_path).write_text(get_html_report(  # type: ignore[no-untyped-call]
                self.env, show_download_link=False))

    def result(self, thresholds: Sequence[str] = (), window_s: float = 30.0,
               expected_peak: float | None = None) -> LoadResult:
        session = self.session
        start = session.run_start or time.time()
        end = self.finished_at or time.time()
        result = build_result(
            self.plan, self.sink, target_url=self.target_url, run_start=start,
            elapsed_s=max(end - start, 0.0), thresholds=parse_thresholds(thresholds),
            window_s=window_s, processes=self.processes, interrupted=self.interrupted,
            harness_cpu_s=session.harness_cpu_s(),
            interrupted_checkouts=session.interrupted_checkouts, expected_peak=expected_peak,
        )
        if self.remote is not None:
            result.workers = self.remote.to_json()
        return result


def check_window(window_s: float) -> None:
    if not window_s > 0:
        raise InvalidInput(f"window must be > 0, got {window_s:g}", source="--window",
                           expected="a positive number of seconds")


def run_load(
    target_url: str, profile: str = "steady", rate: float = 50.0,
    duration_s: float | None = None, *, seed: int = 0, users: int | None = None,
    processes: int = 1, params: Mapping[str, float] | None = None,
    mix: PaymentMix | None = None, retry: RetryPolicy | None = None,
    thresholds: Sequence[str] = (), window_s: float = 30.0,
    on_record: Callable[[CheckoutRecord], None] | None = None,
    stop_event: StopFlag | None = None, live: bool = False,
    html_path: str | Path | None = None, preflight: bool = True,
    expected_peak: float | None = None, plan: LoadPlan | None = None,
    on_started: Callable[[Harness], None] | None = None,
    user_classes: Sequence[type[Any]] | None = None, remote: RemoteWorkers | None = None,
    spawn_rate: float | None = None,
) -> LoadResult:
    """Run one load and return its result (thresholds evaluated, never raised on).

    ``on_record`` is called in this process for every finished checkout (with
    ``processes > 1``, in batches every ~0.5 s). ``user_classes`` (a user's locustfile,
    made ``userfile.paced``) replace paystab's checkout user. ``remote`` (``distributed.py``)
    runs the load on workers of other machines instead of local processes. ``spawn_rate``
    (Locust's -r): users started per second while the pool fills, before t=0.
    ``stop_event.is_set()`` ends the run early
    (``result.interrupted``). Bad input raises InvalidInput; an unreachable target
    EnvironmentProblem — both before any load is sent.
    """
    plan = plan or build_plan(profile, rate, duration_s, users=users, seed=seed,
                              params=dict(params or {}), mix=mix, retry=retry)
    parse_thresholds(thresholds)
    check_window(window_s)
    if preflight:
        check_reachable(target_url)
    harness = Harness(target_url, plan, processes=processes, on_record=on_record, live=live,
                      user_classes=user_classes, remote=remote, spawn_rate=spawn_rate)
    try:
        harness.start()
        if on_started is not None:
            on_started(harness)
        harness.wait(stop_event)
    except KeyboardInterrupt:
        harness.interrupted = True
    finally:
        harness.stop(html_path)
    return harness.result(thresholds, window_s, expected_peak)
