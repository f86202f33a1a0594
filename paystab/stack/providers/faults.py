"""Runtime faults of the provider simulators, one small class each, registered by name.

A fault is what the admin API receives (``POST /admin/providers/{name}/faults``, see
``stack/endpoints.py``): ``{"type": …, "id"?: …, "operations"?: [...], ...parameters}``.
Parameters, with units in their names:

==================  ===========================================  ==========================
type                parameters (default)                         effect
==================  ===========================================  ==========================
error_burst         ratio (1.0), error (server_error)            that share of requests
                                                                 answers the error
latency             added_ms, jitter_ms (0)                      adds added_ms ± jitter_ms
hang                ratio (1.0)                                  accept, never answer until
                                                                 the client goes away
slow                duration_ms                                  trickle the answer's body
                                                                 over duration_ms
drop_response       ratio (1.0)                                  charge (ledger), then close
                                                                 the connection unanswered
partial_outage      method, currency, bin_from + bin_to          matching charges answer the
                    (at least one), error (server_error)         error
flapping            period_s, down_ratio (0.5),                  down for the first
                    error (server_error)                         down_ratio of each period
webhook_delay       added_ms, jitter_ms (0)                      webhook events leave late
webhook_duplicate   ratio (1.0), copies (1)                      that share of events is
                                                                 delivered 1 + copies times
webhook_reorder     window_ms                                    events are held for
                                                                 window_ms, then delivered
                                                                 newest first
webhook_drop        ratio (1.0)                                  that share of events is
                                                                 never delivered
==================  ===========================================  ==========================

``error`` is server_error | rate_limited | malformed | bad_gateway, rendered in the
provider's own dialect. ``operations`` limits a fault to some of charge, status, void,
refund (default: all; charge only for drop_response and partial_outage); the webhook_*
faults apply to the ``webhook`` operation (outgoing events, ``stack/webhooks.py``). Each
request and each webhook event gets a :class:`FaultPlan`, the sum of the active faults that
apply to it.

Deterministic sequences for tests: :class:`FailFirst` makes the first N requests that carry
a dialect's documented magic value (stripe: ``metadata[paystab_fail_times]=N`` or
``N:rate_limited``, read by ``dialects.routes.parse_fail_first``) answer the injected
error, and every later one succeed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from paystab.stack.catalog import METHODS
from paystab.stack.dialects.base import ChargeRequest, InjectedError
from paystab.stack.dialects.routes import parse_fail_first

__all__ = ["FAULT_TYPES", "FailFirst", "Fault", "FaultPlan", "FaultSet", "parse_fail_first"]

OPERATIONS = ("charge", "status", "void", "refund")
WEBHOOK = "webhook"
ALL_OPERATIONS = (*OPERATIONS, WEBHOOK)
ERRORS: tuple[InjectedError, ...] = ("server_error", "rate_limited", "malformed", "bad_gateway")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_REQUIRED = object()


class FaultError(ValueError):
    """A fault body the admin API refuses (HTTP 400), with the reason."""


class FaultConflict(FaultError):
    """A fault id that is already in use (HTTP 409)."""


@dataclass(slots=True)
class FaultPlan:
    """What the active faults do to one request."""

    error: InjectedError | None = None
    hang: bool = False
    added_s: float = 0.0
    slow_s: float = 0.0
    drop: bool = False
    # webhook events only
    webhook_delay_s: float = 0.0
    webhook_copies: int = 0  # extra deliveries of the same event
    webhook_hold_s: float = 0.0  # held this long, then delivered newest first
    webhook_drop: bool = False


@dataclass(frozen=True)
class Param:
    kind: str  # ratio | ms | period | error | method | currency | bin
    default: object = _REQUIRED


def _number(name: str, value: object, low: float, high: float, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name} must be a number")
    number = float(value)
    if number > high or number < low or (low_open and number == low):
        bracket = "(" if low_open else "["
        raise FaultError(f"{name} must be in {bracket}{low:g}, {high:g}], got {number:g}")
    return number


def _check(name: str, kind: str, value: object) -> object:
    if kind == "ratio":
        return _number(name, value, 0.0, 1.0, low_open=True)
    if kind == "ms":
        return _number(name, value, 0.0, 600_000.0, low_open=False)
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise FaultError(f"{name} must be an integer in [1, 100]")
        return value
    if kind == "period":
        return _number(name, value, 0.05, 86_400.0, low_open=False)
    if kind == "error":
        if value not in ERRORS:
            raise FaultError(f"{name} must be one of {', '.join(ERRORS)}")
        return value
    if kind == "method":
        if value not in METHODS:
            raise FaultError(f"{name} must be one of {', '.join(METHODS)}")
        return value
    if kind == "currency":
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
            raise FaultError(f"{name} must be an ISO 4217 code such as JPY")
        return value
    if kind == "bin":
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not re.fullmatch(r"\d{1,12}", text):
            raise FaultError(f"{name} must be 1-12 digits (a card number prefix)")
        return text
    raise AssertionError(kind)


class Fault:
    """One active fault. Subclasses declare ``params`` and implement ``apply``."""

    type: ClassVar[str]
    params: ClassVar[dict[str, Param]]
    default_operations: ClassVar[tuple[str, ...]] = OPERATIONS

    def __init__(self, fault_id: str, values: dict[str, Any], operations: frozenset[str],
                 created_at: float) -> None:
        self.id = fault_id
        self.values = values
        self.operations = operations
        self.created_at = created_at  # monotonic seconds, for flapping phases
        self.validate()

    def validate(self) -> None:
        """Cross-parameter rules; raise FaultError."""

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, **self.values,
                "operations": [op for op in ALL_OPERATIONS if op in self.operations]}


FAULT_TYPES: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    FAULT_TYPES[cls.type] = cls
    return cls


def _hit(ratio: float, rng: random.Random) -> bool:
    return ratio >= 1.0 or rng.random() < ratio


@register
class ErrorBurst(Fault):
    type = "error_burst"
    params: ClassVar[dict[str, Param]] = {"ratio": Param("ratio", 1.0), "error": Param("error", "server_error")}

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if plan.error is None and _hit(self.values["ratio"], rng):
            plan.error = self.values["error"]


@register
class Latency(Fault):
    type = "latency"
    params: ClassVar[dict[str, Param]] = {"added_ms": Param("ms"), "jitter_ms": Param("ms", 0.0)}

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        added_ms = self.values["added_ms"]
        jitter_ms = self.values["jitter_ms"]
        if jitter_ms:
            added_ms += rng.uniform(-jitter_ms, jitter_ms)
        plan.added_s += max(0.0, added_ms) / 1000.0


@register
class Hang(Fault):
    type = "hang"
    params: ClassVar[dict[str, Param]] = {"ratio": Param("ratio", 1.0)}

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if _hit(self.values["ratio"], rng):
            plan.hang = True


@register
class Slow(Fault):
    type = "slow"
    params: ClassVar[dict[str, Param]] = {"duration_ms": Param("ms")}

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        plan.slow_s = max(plan.slow_s, self.values["duration_ms"] / 1000.0)


@register
class DropResponse(Fault):
    type = "drop_response"
    params: ClassVar[dict[str, Param]] = {"ratio": Param("ratio", 1.0)}
    default_operations = ("charge",)

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if _hit(self.values["ratio"], rng):
            plan.drop = True


@register
class PartialOutage(Fault):
    type = "partial_outage"
    params: ClassVar[dict[str, Param]] = {"method": Param("method", None), "currency": Param("currency", None),
              "bin_from": Param("bin", None), "bin_to": Param("bin", None),
              "error": Param("error", "server_error")}
    default_operations = ("charge",)

    def validate(self) -> None:
        v = self.values
        if v["method"] is None and v["currency"] is None and v["bin_from"] is None:
            raise FaultError("partial_outage needs method, currency or bin_from+bin_to")
        if (v["bin_from"] is None) != (v["bin_to"] is None):
            raise FaultError("bin_from and bin_to go together")
        if v["bin_from"] is not None:
            if len(v["bin_from"]) != len(v["bin_to"]):
                raise FaultError("bin_from and bin_to must have the same number of digits")
            if int(v["bin_from"]) > int(v["bin_to"]):
                raise FaultError("bin_from must not be above bin_to")

    def matches(self, request: ChargeRequest) -> bool:
        v = self.values
        if v["method"] is not None and request.method != v["method"]:
            return False
        if v["currency"] is not None and request.currency != v["currency"]:
            return False
        if v["bin_from"] is not None:
            prefix = request.card.number[: len(v["bin_from"])] if request.card else ""
            return prefix.isdigit() and v["bin_from"] <= prefix <= v["bin_to"]
        return True

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if plan.error is None and request is not None and self.matches(request):
            plan.error = self.values["error"]


@register
class Flapping(Fault):
    type = "flapping"
    params: ClassVar[dict[str, Param]] = {"period_s": Param("period"), "down_ratio": Param("ratio", 0.5),
              "error": Param("error", "server_error")}

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        period = self.values["period_s"]
        if plan.error is None and (now - self.created_at) % period < (
                self.values["down_ratio"] * period):
            plan.error = self.values["error"]


def parse_fault(body: object, default_id: str, now: float) -> Fault:
    """Validate an admin API fault body; FaultError says what is wrong."""
    if not isinstance(body, dict):
        raise FaultError("a fault is a JSON object with a \"type\"")
    kind = body.get("type")
    cls = FAULT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise FaultError(f"unknown fault type {kind!r}; known: {', '.join(FAULT_TYPES)}")
    fault_id = body.get("id", default_id)
    if not isinstance(fault_id, str) or not _ID.fullmatch(fault_id):
        raise FaultError("id must be 1-64 characters of letters, digits, _ . : -")
    operations = body.get("operations", list(cls.default_operations))
    if (not isinstance(operations, list) or not operations
            or any(op not in ALL_OPERATIONS for op in operations)):
        raise FaultError(f"operations must be a non-empty list of {', '.join(ALL_OPERATIONS)}")
    unknown = sorted(set(body) - set(cls.params) - {"type", "id", "operations"})
    if unknown:
        raise FaultError(f"unknown parameter {unknown[0]!r} for {kind}; "
                         f"expected: {', '.join(cls.params) or 'none'}")
    values: dict[str, Any] = {}
    for name, param in cls.params.items():
        if name in body and not (body[name] is None and param.default is None):
            values[name] = _check(name, param.kind, body[name])
        elif param.default is _REQUIRED:
            raise FaultError(f"{kind} needs {name}")
        else:
            values[name] = param.default
    return cls(fault_id, values, frozenset(cast(list[str], operations)), now)


class FaultSet:
    """The active faults of one provider, in the order they were added."""

    def __init__(self, rng: random.Random,
                 on_change: Callable[[FaultSet], None] | None = None) -> None:
        self._rng = rng
        self._faults: dict[str, Fault] = {}
        self._serial = 0
        self._on_change = on_change

    def __bool__(self) -> bool:
        return bool(self._faults)

    def add(self, body: object, now: float) -> Fault:
        self._serial += 1
        kind = body.get("type") if isinstance(body, dict) else None
        fault = parse_fault(body, f"{kind}-{self._serial}", now)
        if fault.id in self._faults:
            raise FaultConflict(f"a fault with id {fault.id!r} is already active")
        self._faults[fault.id] = fault
        self._changed()
        return fault

    def remove(self, fault_id: str) -> bool:
        removed = self._faults.pop(fault_id, None) is not None
        if removed:
            self._changed()
        return removed

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        self._changed()
        return count

    def active(self) -> list[Fault]:
        return list(self._faults.values())

    def counts_by_type(self) -> dict[str, int]:
        counts = dict.fromkeys(FAULT_TYPES, 0)
        for fault in self._faults.values():
            counts[fault.type] += 1
        return counts

    def plan(self, operation: str, request: ChargeRequest | None, now: float) -> FaultPlan | None:
        """None when no fault is active (the hot path's only cost)."""
        if not self._faults:
            return None
        plan = FaultPlan()
        for fault in self._faults.values():
            if operation in fault.operations:
                fault.apply(plan, request, now, self._rng)
        return plan

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)


# The webhook faults and FailFirst live in their own module; importing it registers them.
from paystab.stack.providers.webhook_faults import FailFirst  # noqa: E402
