"""``paystab load worker``: one load machine of a ``paystab load --master`` run.

A stock Locust ``WorkerRunner`` in this process, with the users paystab runs locally
(its checkout user for paystab's payment and ``--flow``, the user's paced classes for
``-f``) and a worker-role session (``session.py``) that takes the plan and its share of the
rate from the master and ships every record back. Once Locust has acknowledged the worker,
it sends ``paystab_hello`` (what it would run, the token proof) and waits to be welcomed or
refused (``distributed.py``). It runs one load, then quits when the master says so.

Exit codes: 0 the master ended the run; 2 refused for running something else than the
master; 3 interrupted (Ctrl-C/SIGTERM: the arrivals stop, the last records are sent and the
master is told); 4 no master within ``--connect-timeout``, refused for the token, the master
went silent, or it quit without starting a run (too few workers joined).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import MASTER_HEARTBEAT_TIMEOUT, WorkerRunner

from paystab.exceptions import Aborted, EnvironmentProblem, InvalidInput
from paystab.loadtest.distributed import message
from paystab.loadtest.session import LoadSession, attach
from paystab.loadtest.worker_admission import (
    MSG_HELLO,
    MSG_REFUSED,
    MSG_WELCOME,
    REFUSED_TOKEN,
    RunIdentity,
    hello,
)


class _Answer:
    def __init__(self) -> None:
        self.event = Event()
        self.welcome: dict[str, Any] | None = None
        self.refusal: dict[str, Any] | None = None


def register_hello(runner: WorkerRunner, identity: RunIdentity, token: str | None,
                   on_refused: Callable[[dict[str, Any]], None] | None = None) -> _Answer:
    """Listen for the master's answer and send ``paystab_hello`` (also used by the stock
    locustfile's worker hook)."""
    answer = _Answer()

    def welcomed(msg: Any, **_kw: Any) -> None:
        answer.welcome = dict(msg.data or {})
        answer.event.set()

    def refused(msg: Any, **_kw: Any) -> None:
        answer.refusal = dict(msg.data or {})
        answer.event.set()
        if on_refused is not None:
            on_refused(answer.refusal)

    runner.register_message(MSG_WELCOME, welcomed)
    runner.register_message(MSG_REFUSED, refused)
    runner.client.send(message(MSG_HELLO, hello(identity, runner.client_id, token),
                               runner.client_id))
    return answer


def run_worker(master_host: str, master_port: int, identity: RunIdentity,
               user_classes: Sequence[type[Any]] | None, *, token: str | None = None,
               connect_timeout_s: float = 60.0,
               say: Callable[[str], None] = lambda _text: None) -> None:
    """Serve one run for the master; returns when the master ended it, raises otherwise."""
    from paystab.loadtest import locustfile

    classes: list[Any] = (list(user_classes) if user_classes is not None
                          else [locustfile.CheckoutUser])
    env = Environment(user_classes=classes, catch_exceptions=True)
    if user_classes is not None:
        from paystab.loadtest.userfile import install
        install(env)
    where = f"{master_host}:{master_port}"
    interrupted = Event()
    handlers = [gevent.signal_handler(sig, interrupted.set)
                for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        say(f"connecting to the load master at {where} ({identity.describe()})")
        runner = _connect(env, master_host, master_port, connect_timeout_s, interrupted)
        if user_classes is not None:
            from paystab.loadtest.userfile import fire_init
            fire_init(env, runner)  # a locustfile's @events.init listeners, as in Locust
        session = attach(env, None)
        answer = register_hello(runner, identity, token)
        if not _wait_any(answer.event, interrupted, connect_timeout_s):
            raise EnvironmentProblem(f"the load master at {where} did not answer the worker's "
                                     f"hello within {connect_timeout_s:g} s",
                                     hint="is it a `paystab load --master` of the same version?")
        if answer.refusal is not None:
            reason = str(answer.refusal.get("reason", "refused"))
            if answer.refusal.get("code") == REFUSED_TOKEN:
                raise EnvironmentProblem(f"the load master at {where} refused this worker: {reason}")
            raise InvalidInput(f"the load master at {where} refused this worker: {reason}",
                               source="paystab load worker")
        say(f"joined the load master at {where} as {runner.client_id} "
            f"({identity.describe()})")
        if interrupted.is_set() or not _serve(runner, interrupted):
            _leave(runner, session)
            raise Aborted("the load worker was interrupted; the master was told")
        # Quit by the master: say we are gone (Locust's worker does not), so a master that
        # stopped the run early need not wait for missing heartbeats.
        runner.client.send(message("quit", None, runner.client_id))
        gevent.sleep(0.2)
        if (runner.last_heartbeat_timestamp is not None
                and time.time() - runner.last_heartbeat_timestamp > MASTER_HEARTBEAT_TIMEOUT):
            raise EnvironmentProblem(f"the load master at {where} went silent for "
                                     f"{MASTER_HEARTBEAT_TIMEOUT} s")
        pacer = session.pacer
        if pacer is None or session.plan is None:
            raise EnvironmentProblem(f"the load master at {where} ended without starting a run",
                                     hint="its own output says why (too few workers joined?)")
        say(f"run {session.plan.run_id} ended: share {session.stream + 1}/"
            f"{session.share_count}, {pacer.issued} arrivals issued, "
            f"{pacer.dropped_total} dropped")
    finally:
        for handler in handlers:
            handler.cancel()


def _connect(env: Environment, host: str, port: int, timeout_s: float,
             interrupted: Event) -> WorkerRunner:
    """Locust's worker, once the master acknowledged it (Locust retries for minutes)."""
    connecting = gevent.spawn(env.create_worker_runner, host, port)
    deadline = time.time() + timeout_s
    while not connecting.ready():
        if interrupted.is_set():
            connecting.kill(block=False)
            raise Aborted(f"interrupted while connecting to the load master at {host}:{port}")
        if time.time() > deadline:
            connecting.kill(block=False)
            raise EnvironmentProblem(
                f"no load master answered at {host}:{port} within {timeout_s:g} s",
                hint="start `paystab load --master --expect-workers N` first (its "
                     "--master-bind-host must be reachable from here)")
        gevent.sleep(0.05)
    if not connecting.successful():
        raise EnvironmentProblem(f"no load master answered at {host}:{port}: "
                                 f"{connecting.exception!r}")
    runner: WorkerRunner = connecting.value
    return runner


def _wait_any(first: Event, second: Event, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while not first.is_set() and not second.is_set():
        if time.time() > deadline:
            return False
        gevent.sleep(0.05)
    return True


def _serve(runner: WorkerRunner, interrupted: Event) -> bool:
    """Until the master quits this worker (True) or we are interrupted (False)."""
    while not interrupted.is_set():
        if runner.greenlet.join(timeout=0.2):
            return True
    return False


def _leave(runner: WorkerRunner, session: LoadSession) -> None:
    """Stop arrivals, send the last records, tell the master this worker quits."""
    try:
        runner.stop()  # test_stop: the session stops its pacer and flushes a last batch
        runner.client.send(message("quit", None, runner.client_id))
        gevent.sleep(0.2)  # let ZeroMQ hand the last messages to the wire
    finally:
        runner.greenlet.kill(block=False)
    sys.stderr.flush()
