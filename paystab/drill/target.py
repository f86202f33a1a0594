"""The ``Target`` seam: what a drill runs against.

Contract: :meth:`Target.start` brings the stack up (or checks it is there) and answers its
:class:`StackEndpoints` — at least ``gateway_url``; :meth:`Target.settle` waits until the
gateway has no payment whose outcome is still in doubt (so reconciliation sees final
states); :meth:`Target.reconcile` compares ledgers, or answers ``None`` when the target has
none to compare (a user's stack without ledgers: the report then says ``null``);
:meth:`Target.stop` stops whatever ``start`` started and nothing else.
Implementations: :class:`ReferenceTarget` (paystab's own stack, started here) and
:class:`RemoteTarget` (the user's stack at a URL, described by a ready file or not).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from paystab import httpclient
from paystab.exceptions import EnvironmentProblem
from paystab.report.model import ReconciliationRecord
from paystab.stack.endpoints import StackEndpoints


def _post_json(url: str, token: str | None, timeout_s: float = 5.0) -> httpclient.Reply:
    return httpclient.request("POST", url, {}, token=token, timeout_s=timeout_s)


def get_status(url: str, timeout_s: float = 2.0, token: str | None = None) -> int:
    """The HTTP status of ``GET url``; 0 when nothing answers."""
    return httpclient.get_status(url, timeout_s, token)


class Target(ABC):
    endpoints: StackEndpoints | None = None

    @abstractmethod
    def start(self) -> StackEndpoints: ...

    @abstractmethod
    def stop(self) -> None: ...

    def describe(self) -> str:
        return self.endpoints.gateway_url if self.endpoints else "?"

    def settle(self, timeout_s: float = 30.0) -> int | None:
        """Ask the gateway to resolve in-doubt attempts until none is left; how many remain."""
        assert self.endpoints is not None
        url = self.endpoints.gateway_url.rstrip("/") + "/admin/resolve"
        deadline = time.monotonic() + timeout_s
        remaining: int | None = None
        while time.monotonic() < deadline:
            try:
                reply = _post_json(url, self.endpoints.admin_token)
            except httpclient.Unreachable:
                remaining = -1  # restarting: try again
            else:
                try:
                    remaining = int(reply.body["unresolved"]) if reply.ok else None
                except (KeyError, TypeError, ValueError):
                    remaining = None
                if remaining is None:
                    return None  # not paystab's gateway: nothing to settle
            if remaining == 0:
                return 0
            time.sleep(0.25)
        return remaining

    def reconcile(self) -> ReconciliationRecord | None:
        assert self.endpoints is not None
        if not self.endpoints.gateway_ledger or not any(p.ledger for p in self.endpoints.providers.values()):
            return None
        from paystab.stack.reconcile import reconcile_stack

        result = reconcile_stack(self.endpoints)
        return ReconciliationRecord(result.double_charges, result.lost_payments, result.orphans,
                                    result.voided_late_successes,
                                    [f.__dict__ for f in result.findings[:50]],
                                    amount_mismatches=result.amount_mismatches)


class ReferenceTarget(Target):
    """paystab's reference stack, started for the drill in ``data_dir``."""

    def __init__(self, data_dir: Path, options: dict[str, Any], seed: int,
                 trace_jsonl: Path | None = None) -> None:
        from paystab.stack.supervisor import RunningStack, StackOptions

        config = options.get("config")
        self.stack = RunningStack(StackOptions(
            port=int(options.get("port", 0)), config=Path(config) if config else None,
            data_dir=data_dir, seed=seed, trace_jsonl=trace_jsonl,
        ))
        self.ready_file = data_dir / "ready.json"

    def start(self) -> StackEndpoints:
        self.endpoints = self.stack.start()
        self.stack.publish(self.ready_file)
        return self.endpoints

    def refresh(self) -> StackEndpoints:
        """The endpoints as they are now (the gateway pid changes when it is restarted)."""
        if self.stack.endpoints is not None:
            self.endpoints = self.stack.endpoints
        assert self.endpoints is not None
        return self.endpoints

    def stop(self) -> None:
        self.stack.stop()

    def describe(self) -> str:
        return "reference stack " + (self.endpoints.gateway_url if self.endpoints else "")


class RemoteTarget(Target):
    """The user's own stack: a gateway URL, optionally described by a ready file."""

    def __init__(self, gateway_url: str | None, ready_file: str | Path | None) -> None:
        if ready_file:
            self.endpoints = StackEndpoints.read(ready_file)
            if gateway_url:
                self.endpoints.gateway_url = gateway_url
        elif gateway_url:
            base = gateway_url.rstrip("/")
            self.endpoints = StackEndpoints(gateway_url=base, providers={}, metrics_url=base + "/metrics")
        else:
            raise EnvironmentProblem("no target: give --target URL or a runbook target")

    def start(self) -> StackEndpoints:
        assert self.endpoints is not None
        status = get_status(self.endpoints.gateway_url.rstrip("/") + "/healthz")
        if status == 0:
            raise EnvironmentProblem(f"the target {self.endpoints.gateway_url} does not answer",
                                     hint="start your stack first, or drop --target to use the reference stack")
        if not self.endpoints.metrics_url:
            self.endpoints.metrics_url = self.endpoints.gateway_url.rstrip("/") + "/metrics"
        return self.endpoints

    def stop(self) -> None:
        pass  # not ours to stop
