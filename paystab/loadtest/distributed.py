"""Load from several machines: ``paystab load --master`` and ``paystab load worker``, master side.

Underneath is stock Locust distribution — a ``MasterRunner`` and ``WorkerRunner`` talking
Locust's ZeroMQ message protocol — with the same paystab session as ``--processes N``
(``session.py``): the master sends each worker the plan and its share of the arrival rate,
one t=0 for every pacer, and receives every checkout record, so thresholds and windows are
judged on the *merged stream of records* (raw latencies, never averaged percentiles).

What this module adds is admission (the rules: ``worker_admission.py``). A worker is
dispatched users only once its ``paystab_hello`` has been checked by :class:`GatedMaster`:
the paystab protocol version, the token proof when the master has a token, and the
*identity of what the worker would run* — paystab's payment, a flow or a locustfile, by
digest — which must equal the master's. The plan itself (shape, rate share, seed, mix, retry
policy, the flow's steps) always comes from the master; the worker's ``--flow``/``-f`` only
says what it agreed to run. Anything else is refused with a reason the worker prints; a
worker that is not admitted gets no users and its messages are dropped. Admission closes
when the expected number has joined: a late worker is refused rather than rebalanced into a
running open-model run (Locust would take users from the others mid-checkout).

:class:`RemoteWorkers` is the master's side of a run for ``runner.Harness``: bind, wait for
N admitted workers (``EnvironmentProblem``, exit 4, naming how many came), watch for a
worker that quits or stops sending heartbeats mid-run (its source is closed in the sink so
the run does not wait for it, and it is listed as lost in the result), and on the way out
tell every worker to stop and wait for their last records before quitting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import __version__ as locust_version
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner

from paystab.exceptions import Aborted, EnvironmentProblem, InvalidInput
from paystab.loadtest.session import MSG_BATCH
from paystab.loadtest.worker_admission import (
    DEFAULT_PORT,
    MSG_HELLO,
    MSG_REFUSED,
    MSG_WELCOME,
    Admission,
    RunIdentity,
    WorkerSeat,
    check_bind,
    host_of,
)

__all__ = ["GatedMaster", "RemoteWorkers", "message"]
LOST_CHECK_S = 0.2  # how often the master looks for workers gone mid-run
CLOCK_SKEW_WARN_S = 0.5  # records carry the workers' wall clocks; windows are cut by them


def message(kind: str, data: Any, node_id: str) -> Any:
    """A Locust protocol message (Locust's class is untyped)."""
    return Message(kind, data, node_id)  # type: ignore[no-untyped-call]


class GatedMaster(MasterRunner):
    """Locust's master, admitting a worker only after its ``paystab_hello`` checks out.

    ``client_ready`` from an unknown worker is acknowledged (Locust's worker waits for the
    ack before it can send anything else) but the worker is not added to ``clients``, so it
    gets no users; every other message from it is dropped.
    """

    def __init__(self, environment: Environment, host: str, port: int,
                 admission: Admission) -> None:
        self.admission = admission
        super().__init__(environment, host, port)

    def handle_message(self, client_id: str, msg: Message) -> None:
        if msg.node_id != client_id:
            return  # a message speaking for another worker
        seats = self.admission.seats
        if msg.type == MSG_HELLO:
            self._hello(client_id, msg.data)
            return
        if client_id not in seats:
            if msg.type == "client_ready":
                self.server.send_to_client(message("ack", {"index": -1}, client_id))
            return
        if msg.type == "quit":
            self._forget(client_id)
            return
        if msg.type == MSG_BATCH and isinstance(msg.data, dict):
            seats[client_id].count_batch(msg.data)  # per-worker counts for the report
        super().handle_message(client_id, msg)

    def _forget(self, client_id: str) -> None:
        """A worker left. Unlike Locust, give its users to nobody: the others' users only
        take arrivals of their own share, and moving users would cut checkouts off."""
        node = self.clients.get(client_id)
        if node is None:
            return
        del self.clients[client_id]
        if self._users_dispatcher is not None:
            self._users_dispatcher.remove_worker(node)

    def _hello(self, client_id: str, data: Any) -> None:
        admission = self.admission
        if client_id in admission.seats:
            return
        refusal = admission.judge(client_id, data)
        if refusal is not None:
            code, reason = refusal
            admission.refused.append({"host": host_of(client_id), "reason": reason})
            self.server.send_to_client(message(MSG_REFUSED, {"code": code, "reason": reason},
                                               client_id))
            return
        sent = float(data.get("time") or time.time())
        admission.seats[client_id] = WorkerSeat(client_id, time.time(), sent - time.time())
        super().handle_message(client_id, message("client_ready", locust_version, client_id))
        self.server.send_to_client(message(MSG_WELCOME, {"share_of": admission.expected},
                                           client_id))


class RemoteWorkers:
    """The master's side of a run over several machines (used by ``runner.Harness``)."""

    def __init__(self, expected: int, identity: RunIdentity, *, bind_host: str = "127.0.0.1",
                 bind_port: int = DEFAULT_PORT, token: str | None = None, wait_s: float = 60.0,
                 announce: Callable[[str], None] | None = None,
                 stop_event: Any = None) -> None:
        if expected < 1:
            raise InvalidInput(f"{expected} workers", source="--expect-workers",
                               expected="an integer >= 1")
        check_bind(bind_host, token)
        self.expected = expected
        self.bind_host, self.bind_port = bind_host, bind_port
        self.wait_s = wait_s
        self.announce = announce or (lambda _text: None)
        self.stop_event = stop_event  # anything with is_set(): Ctrl-C while waiting
        self.admission = Admission(identity, expected, token)
        self.runner: GatedMaster | None = None
        self.run_start: float | None = None
        self.released = False  # told to quit: a worker going away now is not lost

    @property
    def port(self) -> int:
        assert self.runner is not None
        return int(self.runner.server.port)

    def create_runner(self, environment: Environment) -> GatedMaster:
        try:
            runner = environment._create_runner(GatedMaster, self.bind_host, self.bind_port,
                                                self.admission)
        except SystemExit:  # Locust's way of saying the port is taken
            raise EnvironmentProblem(
                f"the load master cannot listen on {self.bind_host}:{self.bind_port}: taken",
                hint="choose another --master-bind-port (0: any free port)") from None
        self.runner = runner
        return runner

    def wait_ready(self) -> None:
        """Block until ``expected`` workers are admitted; exit 4 naming how many came."""
        runner = self.runner
        assert runner is not None
        self.announce(f"load master listening on {self.bind_host}:{self.port}; waiting up to "
                      f"{self.wait_s:g} s for {self.expected} worker(s) "
                      f"({self.admission.identity.describe()})")
        deadline = time.monotonic() + self.wait_s
        while len(runner.clients.ready) < self.expected:
            if self.stop_event is not None and self.stop_event.is_set():
                raise Aborted(f"interrupted while waiting for workers "
                              f"({len(runner.clients.ready)} of {self.expected} had joined)")
            if time.monotonic() > deadline:
                came = len(runner.clients.ready)
                refused = "; ".join(f"{r['host']}: {r['reason']}" for r in self.admission.refused)
                raise EnvironmentProblem(
                    f"only {came} of {self.expected} load workers joined within "
                    f"{self.wait_s:g} s" + (f" (refused: {refused})" if refused else ""),
                    hint=f"start `paystab load worker --master-host HOST --master-port "
                         f"{self.port}` on each load machine, or raise --expect-workers-max-wait")
            gevent.sleep(0.05)
        self.admission.open = False
        for seat in self.admission.seats.values():
            skew = seat.clock_offset_s
            self.announce(f"worker {seat.id} joined" + (
                f"; its clock is {skew:+.1f} s off this one: windows are cut by the workers' "
                "clocks, sync them (NTP)" if abs(skew) > CLOCK_SKEW_WARN_S else ""))

    def watch(self, session: Any) -> None:
        """Until the run ends: a worker gone mid-run is marked lost and its source closed."""
        gevent.spawn(self._watch, session)

    def _watch(self, session: Any) -> None:
        runner = self.runner
        assert runner is not None
        while not session.finished.is_set() and not self.released:
            self.run_start = session.run_start
            for seat in self.admission.seats.values():
                state = session.sink.sources.get(seat.id)
                if seat.lost_at is not None or (state is not None and state.done):
                    continue
                node = runner.clients.get(seat.id)
                reason = ("quit" if node is None
                          else "no heartbeat for 3 s" if node.state == STATE_MISSING else "")
                if reason:
                    seat.lost_at, seat.lost_reason = time.time(), reason
                    session.sink.source(seat.id).done = True  # the run must not wait for it
                    self.announce(f"worker {seat.id} lost ({reason}): the run is marked incomplete")
            gevent.sleep(LOST_CHECK_S)

    def shutdown(self, session: Any, wait_s: float) -> None:
        """Tell every admitted worker to quit (arrivals stop, in-flight checkouts end, the
        last records are sent), and wait up to ``wait_s`` for those records."""
        runner = self.runner
        if runner is None:
            return
        self.released = True
        for seat in self.admission.seats.values():
            runner.server.send_to_client(message("quit", None, seat.id))
        if session is None:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if all(self._settled(session, seat) for seat in self.admission.seats.values()):
                break
            gevent.sleep(0.05)

    def _settled(self, session: Any, seat: WorkerSeat) -> bool:
        """Nothing more will come from this worker: drained, lost, or gone after the quit
        (a worker stopped mid-run sends what it has and leaves)."""
        state = session.sink.sources.get(seat.id)
        if seat.lost_at is not None or (state is not None and state.done):
            return True
        assert self.runner is not None
        node = self.runner.clients.get(seat.id)
        return node is None or node.state == STATE_MISSING

    @property
    def lost(self) -> list[WorkerSeat]:
        return [s for s in self.admission.seats.values() if s.lost_at is not None]

    def to_json(self) -> dict[str, Any]:
        seats = self.admission.seats.values()
        return {
            "expected": self.expected,
            "joined": len(self.admission.seats),
            "complete": not self.lost and len(self.admission.seats) == self.expected,
            "flow": self.admission.identity.to_json(),
            "workers": [s.to_json(self.run_start) for s in seats],
            "lost": [s.to_json(self.run_start) for s in self.lost],
            "refused": list(self.admission.refused),
        }
