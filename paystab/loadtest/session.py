"""Wires a load plan into one Locust Environment: pacer, records, and master↔worker messages.

One :class:`LoadSession` per Environment, in whichever role Locust gives it:

* **local** (one process): a pacer feeds this process's users; records go straight into
  the sink.
* **master**: holds the sink. At test start it sends each worker the plan and its share
  (``paystab_plan``); once every worker has spawned its users it sends one start time
  (``paystab_go``) so all pacers share t=0; ``paystab_rate`` changes the rate (capacity
  search). Workers answer with ``paystab_batch`` messages: records, dropped arrivals,
  in-flight count, watermark, CPU time and ``done`` once drained.
* **worker**: runs a pacer at ``rate / workers`` with a phase offset and ships batches.

The run is *finished* when every pacer has issued its last arrival and its in-flight
checkouts have ended (or ``plan.drain_s`` passed): so the counts add up to what the target
saw — nothing is cut off mid-request by the stop.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from paystab.loadtest.engine import CheckoutEngine
from paystab.loadtest.flow_run import CompiledFlow
from paystab.loadtest.mix import PaymentFactory
from paystab.loadtest.pacing import ArrivalPacer, process_cpu_s
from paystab.loadtest.plan import LoadPlan
from paystab.loadtest.profiles import Profile
from paystab.loadtest.records import CheckoutRecord, RecordSink

MSG_PLAN = "paystab_plan"
MSG_GO = "paystab_go"
MSG_RATE = "paystab_rate"
MSG_BATCH = "paystab_batch"
FLUSH_INTERVAL_S = 0.5
GO_DELAY_S = 0.3  # lets the go message reach every worker before t=0
WATCH_INTERVAL_S = 0.1

_SESSIONS: weakref.WeakKeyDictionary[Environment, LoadSession] = weakref.WeakKeyDictionary()


def session_for(environment: Environment) -> LoadSession:
    session = _SESSIONS.get(environment)
    if session is None:
        raise RuntimeError("no paystab load session is attached to this Locust environment")
    return session


def attach(environment: Environment, plan: LoadPlan | None,
           sink: RecordSink | None = None) -> LoadSession:
    """Create the session for an Environment whose runner exists (any role)."""
    session = LoadSession(environment, plan, sink)
    _SESSIONS[environment] = session
    return session


class LoadSession:
    def __init__(self, environment: Environment, plan: LoadPlan | None,
                 sink: RecordSink | None) -> None:
        runner = environment.runner
        if runner is None:
            raise RuntimeError("create the Locust runner before attaching the session")
        self.environment = environment
        self.role = ("master" if isinstance(runner, MasterRunner)
                     else "worker" if isinstance(runner, WorkerRunner) else "local")
        self.plan = plan
        self.sink = sink if sink is not None else RecordSink()
        self.profile: Profile | None = plan.make_profile() if plan is not None else None
        self.pacer: ArrivalPacer | None = None
        self.engine: CheckoutEngine | None = None  # made by the first user of an http:// target
        self.factory: PaymentFactory | None = None
        self.flow: CompiledFlow | None = None  # a declarative flow; None: paystab's payment
        self.stream = 0
        self.share_count = 1
        self._rate_override: float | None = None
        self.run_start: float | None = None
        self.finished = Event()
        self.outbox: list[list[Any]] = []
        self.interrupted_checkouts = 0
        self.cpu_go_s = 0.0
        self.cpu_end_s: float | None = None
        # What a checkout hands its record to: ``record``, or for a run whose sink has no
        # per-record consumer the records list's own append (no Python call per checkout)
        self.take_record: Callable[[CheckoutRecord], None] = (
            self.sink.records.append if self.role != "worker" and self.sink.on_record is None
            else self.record)
        events = environment.events
        if self.role == "worker":
            runner.register_message(MSG_PLAN, self._on_plan)
            runner.register_message(MSG_GO, self._on_go)
            runner.register_message(MSG_RATE, self._on_rate)
            events.test_stop.add_listener(self._on_worker_stop)  # type: ignore[no-untyped-call]
        else:
            events.test_start.add_listener(self._on_test_start)  # type: ignore[no-untyped-call]
            events.spawning_complete.add_listener(self._on_spawned)  # type: ignore[no-untyped-call]
            if self.role == "master":
                runner.register_message(MSG_BATCH, self._on_batch)

    # -- shared ----------------------------------------------------------------------
    def _new_pacer(self, stream: int, share_count: int) -> None:
        assert self.plan is not None
        self.profile = profile = self.plan.make_profile()
        self.stream, self.share_count = stream, share_count
        self.factory = PaymentFactory(self.plan.mix, self.plan.seed, stream)
        self.flow = None
        if self.plan.flow is not None:
            # the flow's models (pydantic) are imported for a flow only: paystab's own
            # payment starts without them
            from paystab.loadtest.flow import flow_from_json

            self.flow = CompiledFlow(flow_from_json(self.plan.flow), self.factory)

        self.pacer = ArrivalPacer(self._rate_fn(profile), self.plan.duration_s,
                                  share=1.0 / share_count, phase=stream / share_count)

    def _rate_fn(self, profile: Profile) -> Callable[[float], float]:
        """The pacer's rate: the profile's own function, or the override's constant (one
        call per hand-off either way: the pacer asks at every arrival a user takes)."""
        override = self._rate_override
        if override is None:
            return profile.rate_at
        return lambda _t_s: override

    @property
    def rate_override(self) -> float | None:
        """A rate that replaces the profile's (capacity search); None: the profile's."""
        return self._rate_override

    @rate_override.setter
    def rate_override(self, rate: float | None) -> None:
        self._rate_override = rate
        if self.pacer is not None and self.profile is not None:
            self.pacer.rate_fn = self._rate_fn(self.profile)

    def record(self, record: CheckoutRecord) -> None:
        """Called by a user when a checkout ends."""
        if self.role == "worker":
            self.outbox.append(record.to_row())
        else:
            self.sink.add(record)

    def target_rate_now(self) -> float:
        if self.rate_override is not None:
            return self.rate_override
        if self.profile is None or self.run_start is None:
            return 0.0
        t = time.time() - self.run_start
        return self.profile.rate_at(t) if 0 <= t < self.profile.duration_s else 0.0

    def set_rate(self, rate: float) -> None:
        """Override the profile's rate (capacity search); reaches every worker."""
        self.rate_override = rate
        runner = self.environment.runner
        if self.role == "master" and runner is not None:
            runner.send_message(MSG_RATE, {"rate": rate})

    # -- local / master --------------------------------------------------------------
    def _on_test_start(self, **_kw: Any) -> None:
        if self.plan is None:
            return
        self.run_start = None
        self.finished.clear()
        runner = self.environment.runner
        if self.role == "local":
            self._new_pacer(0, 1)
            return
        assert isinstance(runner, MasterRunner)
        workers = sorted(runner.clients.ready + runner.clients.running + runner.clients.spawning,
                         key=lambda w: str(w.id))
        self.share_count = max(len(workers), 1)
        for index, worker in enumerate(workers):
            runner.send_message(MSG_PLAN, {"plan": self.plan.to_json(), "stream": index,
                                           "share_count": self.share_count}, client_id=worker.id)

    def _on_spawned(self, **_kw: Any) -> None:
        if self.plan is None or self.run_start is not None:
            return
        delay = GO_DELAY_S if self.role == "master" else 0.02
        self.run_start = start_at = time.time() + delay
        self.cpu_go_s = process_cpu_s()
        if self.role == "master":
            runner = self.environment.runner
            assert runner is not None
            runner.send_message(MSG_GO, {"start_at": start_at})
        else:
            assert self.pacer is not None
            self.pacer.start_at = start_at
            self.pacer.start()
        gevent.spawn(self._watch)

    def _watch(self) -> None:
        assert self.plan is not None and self.run_start is not None
        hard_stop = self.run_start + self.plan.duration_s + self.plan.drain_s + 5.0
        while not self.finished.is_set():
            gevent.sleep(WATCH_INTERVAL_S)
            if self.role == "local":
                self.sync_local()
            if self.sink.all_done(self.share_count) or time.time() > hard_stop:
                self.cpu_end_s = process_cpu_s()
                self.finished.set()

    def sync_local(self) -> None:
        """Move the local pacer's counters into the sink (records are already there)."""
        pacer = self.pacer
        if pacer is None:
            return
        dropped, pacer.dropped_by_tick = pacer.dropped_by_tick, {}
        for tick, count in dropped.items():
            self.sink.add_dropped(tick, count)
        state = self.sink.source("local")
        state.inflight = len(pacer.inflight)
        state.watermark = pacer.watermark()
        state.issued = pacer.issued
        state.cpu_s = pacer.cpu_s
        state.max_lag_ms = pacer.max_lag_ms
        if pacer.arrivals_done.is_set() and not pacer.inflight:
            state.done = True

    def _on_batch(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        data = msg.data
        self.sink.add_rows(data["rows"])
        for tick, count in data["dropped"]:
            self.sink.add_dropped(int(tick), int(count))
        state = self.sink.source(str(msg.node_id))
        state.inflight = int(data["inflight"])
        state.watermark = float(data["watermark"])
        state.issued = int(data["issued"])
        state.cpu_s = float(data["cpu_s"])
        state.max_lag_ms = float(data["max_lag_ms"])
        state.done = state.done or bool(data["done"])
        self.interrupted_checkouts += int(data.get("interrupted", 0))

    def harness_cpu_s(self) -> float:
        """CPU seconds all harness processes spent from t=0 until the run finished."""
        own_end = self.cpu_end_s if self.cpu_end_s is not None else process_cpu_s()
        if self.role == "local":
            return self.pacer.cpu_s if self.pacer is not None else 0.0
        workers = sum(s.cpu_s for s in self.sink.sources.values())
        return workers + max(own_end - self.cpu_go_s, 0.0)

    # -- worker ----------------------------------------------------------------------
    def _on_plan(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        data = msg.data
        self.plan = LoadPlan.from_json(data["plan"])
        self.rate_override = None
        self.outbox = []
        self._new_pacer(int(data["stream"]), int(data["share_count"]))

    def _on_go(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        if self.pacer is None:
            return
        self.run_start = self.pacer.start_at = float(msg.data["start_at"])
        self.pacer.start()
        gevent.spawn(self._flush_loop)

    def _on_rate(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self.rate_override = float(msg.data["rate"])

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            if self._flush():
                return

    def _flush(self) -> bool:
        """Send one batch to the master; True once the pacer is drained (the last batch)."""
        pacer, runner = self.pacer, self.environment.runner
        if pacer is None or runner is None:
            return True
        done = pacer.drained
        rows, self.outbox = self.outbox, []
        dropped, pacer.dropped_by_tick = pacer.dropped_by_tick, {}
        interrupted, self.interrupted_checkouts = self.interrupted_checkouts, 0
        runner.send_message(MSG_BATCH, {
            "rows": rows, "dropped": [[k, v] for k, v in dropped.items()],
            "inflight": len(pacer.inflight), "watermark": pacer.watermark(), "done": done,
            "issued": pacer.issued, "cpu_s": pacer.cpu_s, "max_lag_ms": pacer.max_lag_ms,
            "interrupted": interrupted,
        })
        return done

    def _on_worker_stop(self, **_kw: Any) -> None:
        if self.pacer is not None and self.pacer.started_epoch is not None:
            self.pacer.stop()
            self._flush()
