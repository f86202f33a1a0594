"""Load from several machines: ``paystab load --master`` and ``paystab load worker``, master side.

Underneath is stock Locust distribution — a ``MasterRunner`` and ``WorkerRunner`` talking
Locust's ZeroMQ message protocol — with the same paystab session as ``--processes N``
(``session.py``): the master sends each worker the plan and its share of the arrival rate,
one t=0 for every pacer, and receives every checkout record, so thresholds and windows are
judged on the *merged stream of records* (raw latencies, never averaged percentiles).

What this module adds is admission. A worker is dispatched users only once its
``paystab_hello`` has been checked by :class:`GatedMaster`: the paystab protocol version,
the token proof (HMAC of the worker's id under the shared token; the token itself never
travels) when the master has a token, and the *identity of what the worker would run* —
paystab's payment, a flow (digest of its checked JSON) or a locustfile (digest of its bytes)
— which must equal the master's. The plan itself (shape, rate share, seed, mix, retry
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

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import __version__ as locust_version
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner

from paystab.exceptions import Aborted, EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host

PROTOCOL = 1  # bumped when the paystab messages below change shape
MSG_HELLO = "paystab_hello"
MSG_WELCOME = "paystab_welcome"
MSG_REFUSED = "paystab_refused"
DEFAULT_PORT = 5557  # Locust's master port
LOST_CHECK_S = 0.2
REFUSED_FLOW, REFUSED_TOKEN, REFUSED_FULL = "flow", "token", "full"


@dataclass(frozen=True)
class RunIdentity:
    """What a process would send: its kind, a label for messages, a digest that decides."""

    kind: str  # payment | flow | locustfile
    label: str
    digest: str  # sha256 hex

    def describe(self) -> str:
        if self.kind == "payment":
            return "paystab's own payment"
        return f"{self.kind} {self.label} (sha256 {self.digest[:12]})"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "digest": self.digest}


def message(kind: str, data: Any, node_id: str) -> Any:
    """A Locust protocol message (Locust's class is untyped)."""
    return Message(kind, data, node_id)  # type: ignore[no-untyped-call]


def identify(flow: dict[str, Any] | None, locustfile: str | None) -> RunIdentity:
    """The identity of a plan's flow or a locustfile (``--flow`` and ``-f`` exclude each other)."""
    if locustfile:
        data = Path(locustfile).read_bytes()
        return RunIdentity("locustfile", Path(locustfile).name, hashlib.sha256(data).hexdigest())
    if flow is not None:
        canonical = json.dumps(flow, sort_keys=True, separators=(",", ":")).encode()
        return RunIdentity("flow", str(flow.get("name") or "flow"),
                           hashlib.sha256(canonical).hexdigest())
    return RunIdentity("payment", "payment", hashlib.sha256(b"paystab-payment/1").hexdigest())


def token_proof(token: str, client_id: str) -> str:
    """What a worker shows for the shared token: the token never goes on the wire."""
    return hmac.new(token.encode(), f"paystab-load-worker:{client_id}".encode(),
                    hashlib.sha256).hexdigest()


def hello(identity: RunIdentity, client_id: str, token: str | None) -> dict[str, Any]:
    """The ``paystab_hello`` a worker sends once Locust has acknowledged it."""
    return {"protocol": PROTOCOL, "identity": identity.to_json(), "time": time.time(),
            "proof": token_proof(token, client_id) if token else "",
            "locust": locust_version}


def check_bind(host: str, token: str | None) -> None:
    """The master listens on loopback unless a token guards it (docs/security.md)."""
    if not is_loopback_host(host) and not token:
        raise InvalidInput(f"refusing to bind the load master to {host} without a token",
                           source="--master-bind-host",
                           expected="127.0.0.1, or PAYSTAB_TOKEN (or --token) for any other "
                                    "address: workers must then present it")


def host_of(client_id: str) -> str:
    """Locust names a worker ``<hostname>_<uuid hex>``."""
    return client_id.rsplit("_", 1)[0]


@dataclass
class WorkerSeat:
    """One admitted worker, as the result reports it."""

    id: str
    joined_at: float  # epoch s
    clock_offset_s: float  # its clock minus ours at hello (one-way: includes the latency)
    lost_at: float | None = None
    lost_reason: str = ""

    def to_json(self, run_start: float | None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "host": host_of(self.id),
                                "clock_offset_s": round(self.clock_offset_s, 3)}
        if self.lost_at is not None:
            data["lost_at_s"] = round(self.lost_at - (run_start or self.lost_at), 3)
            data["reason"] = self.lost_reason
        return data


@dataclass
class Admission:
    """Who may join: the master's identity and token, and how many seats there are."""

    identity: RunIdentity
    expected: int
    token: str | None = None
    seats: dict[str, WorkerSeat] = field(default_factory=dict)
    refused: list[dict[str, str]] = field(default_factory=list)
    open: bool = True

    def judge(self, client_id: str, data: Any) -> tuple[str, str] | None:
        """None to admit, else (code, reason) for the worker to print."""
        if not isinstance(data, dict) or data.get("protocol") != PROTOCOL:
            return REFUSED_FLOW, (f"paystab load protocol {PROTOCOL} expected; the worker "
                                  "runs another paystab version")
        if self.token is not None:
            proof = str(data.get("proof") or "")
            if not hmac.compare_digest(proof, token_proof(self.token, client_id)):
                return REFUSED_TOKEN, ("token missing or wrong: the master has one; give the "
                                       "worker the same PAYSTAB_TOKEN")
        theirs = data.get("identity") or {}
        if theirs.get("kind") != self.identity.kind or theirs.get("digest") != self.identity.digest:
            other = RunIdentity(str(theirs.get("kind")), str(theirs.get("label")),
                                str(theirs.get("digest") or ""))
            return REFUSED_FLOW, (f"the master runs {self.identity.describe()}, this worker "
                                  f"{other.describe()}: start it with the same "
                                  f"{_flag(self.identity.kind)}")
        if not self.open or len(self.seats) >= self.expected:
            return REFUSED_FULL, (f"the master expected {self.expected} workers and they have "
                                  "joined (a late worker would take users from a running run)")
        return None


def _flag(kind: str) -> str:
    return {"flow": "--flow FILE", "locustfile": "-f FILE"}.get(kind, "options (no --flow, no -f)")


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
        super().handle_message(client_id, msg)

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
            self.announce(f"worker {seat.id} joined")

    def watch(self, session: Any) -> None:
        """Until the run ends: a worker gone mid-run is marked lost and its source closed."""
        gevent.spawn(self._watch, session)

    def _watch(self, session: Any) -> None:
        runner = self.runner
        assert runner is not None
        while not session.finished.is_set():
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
        for seat in self.admission.seats.values():
            runner.server.send_to_client(message("quit", None, seat.id))
        if session is None:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            live = [s for s in self.admission.seats.values() if s.lost_at is None]
            if all((st := session.sink.sources.get(s.id)) is not None and st.done for s in live):
                break
            gevent.sleep(0.05)

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
