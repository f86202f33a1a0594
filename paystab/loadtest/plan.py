"""What a load run is: the plan every process reads, and the client retry policy.

The plan is plain data so it can travel from the master to worker processes (as JSON-able
dicts inside Locust messages) and be read back from ``--paystab-*`` options when the
locustfile runs under stock ``locust``. ``users`` is the size of the pool of checkout
users that take arrivals; it bounds concurrency, not the rate.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from paystab.exceptions import InvalidInput
from paystab.loadtest.mix import PaymentMix
from paystab.loadtest.profiles import Profile, make_profile

POOL_SECONDS = 2.0  # default pool: enough users for every arrival of 2 s at the peak rate
MIN_USERS = 20
MAX_USERS = 10000


def default_users(peak_rate: float) -> int:
    """Users needed so arrivals are only dropped once responses take > ~2 s at the peak."""
    return int(min(max(math.ceil(peak_rate * POOL_SECONDS), MIN_USERS), MAX_USERS))


@dataclass(frozen=True)
class RetryPolicy:
    """A checkout page's retries: same Idempotency-Key, bounded, backoff, Retry-After."""

    max_attempts: int = 3
    attempt_timeout_s: float = 10.0  # per HTTP attempt (connect + response)
    backoff_s: float = 0.2  # before the 2nd attempt; doubles, full jitter
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 5.0  # honour Retry-After up to this; longer → give up
    deadline_s: float = 20.0  # the whole checkout, retries included

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput("max_attempts must be >= 1", field="retry.max_attempts",
                               expected="an integer >= 1")
        for name in ("attempt_timeout_s", "deadline_s"):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be > 0", field=f"retry.{name}",
                                   expected="a positive number of seconds")


@dataclass(frozen=True)
class LoadPlan:
    profile: str
    rate: float
    duration_s: float
    users: int
    seed: int = 0
    params: dict[str, float] = field(default_factory=dict)
    mix: PaymentMix = field(default_factory=PaymentMix)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    path: str = "/v1/payments"
    flow: dict[str, Any] | None = None  # a checked flow.Flow as JSON; None: paystab's payment

    def make_profile(self) -> Profile:
        return make_profile(self.profile, self.rate, self.duration_s, self.params)

    @property
    def drain_s(self) -> float:
        """How long to wait for in-flight checkouts after the last arrival."""
        return self.retry.deadline_s + 1.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mix"] = self.mix.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadPlan:
        fields = dict(data)
        fields["mix"] = PaymentMix.from_json(dict(fields.get("mix") or {}))
        fields["retry"] = RetryPolicy(**dict(fields.get("retry") or {}))
        fields["params"] = {str(k): float(v) for k, v in dict(fields.get("params") or {}).items()}
        return cls(**fields)


def build_plan(
    profile: str, rate: float, duration_s: float | None = None, *, users: int | None = None,
    seed: int = 0, params: dict[str, float] | None = None, mix: PaymentMix | None = None,
    retry: RetryPolicy | None = None, flow: dict[str, Any] | None = None,
) -> LoadPlan:
    """Validate everything up front (InvalidInput → exit 2) and size the user pool."""
    shape = make_profile(profile, rate, duration_s, params)
    if users is not None and users < 1:
        raise InvalidInput(f"users must be >= 1, got {users}", source="--users",
                           expected="a positive integer")
    return LoadPlan(
        profile=profile, rate=shape.rate, duration_s=shape.duration_s,
        users=users if users is not None else default_users(shape.peak_rate()), seed=seed,
        params=dict(params or {}), mix=mix or PaymentMix(), retry=retry or RetryPolicy(),
        flow=flow,
    )
