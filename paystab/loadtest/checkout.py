"""One checkout as a real checkout page does it: POST, and retry with the same key.

Each checkout has one Idempotency-Key. A 5xx, a 409 (the same key is still in flight), a
429, a timeout or a broken connection is retried with that key — bounded by attempts and a
deadline, with exponential backoff (full jitter) that honours ``Retry-After`` — because the
gateway promises the same answer for the same key and no second charge. A 200 ends the
checkout with the payment's status; other 4xx end it as failed (the request was wrong, a
retry would not help). Only answers count: approved, declined and pending.

Every HTTP attempt is reported to Locust (for its statistics and HTML report) under a name
that carries the method only — never the card number. The HTTP itself goes through a
:class:`Transport` (``transport.py``), so the retry rules are tested without a network.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, Protocol

import gevent

from paystab.loadtest.mix import Payment
from paystab.loadtest.plan import RetryPolicy

ANSWER_STATUSES = frozenset({"approved", "declined", "pending"})
_RETRYABLE_4XX = frozenset({409, 425, 429})


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    outcome: str  # approved | declined | pending | failed
    status: str  # payment status, or http_NNN / timeout / connect_error / malformed
    code: str
    attempts: int
    http_status: int
    latency_ms: float


class AttemptVerdict(NamedTuple):
    outcome: str
    status: str
    code: str
    retryable: bool


_decode = json.JSONDecoder().decode
_ANSWERS: dict[tuple[str, str], AttemptVerdict] = {}  # (status, code) → its verdict, made once


def judge(http_status: int, body: bytes, error: BaseException | None) -> AttemptVerdict:
    """Classify one HTTP attempt (pure: tested without a network)."""
    if http_status == 0:
        return AttemptVerdict("failed", _error_label(error), "", True)
    if 200 <= http_status < 300:
        try:
            data = _decode(body.decode())
        except ValueError:  # UnicodeDecodeError is one too
            data = None
        status = data.get("status") if isinstance(data, dict) else None
        if status in ANSWER_STATUSES:
            assert isinstance(data, dict)
            code = data.get("code")
            key = (status, code if isinstance(code, str) else "")
            verdict = _ANSWERS.get(key)
            if verdict is None:
                verdict = AttemptVerdict(status, status, key[1], False)
                if len(_ANSWERS) < 1024:
                    _ANSWERS[key] = verdict
            return verdict
        return AttemptVerdict("failed", "malformed", "", True)
    retryable = http_status >= 500 or http_status in _RETRYABLE_4XX
    return AttemptVerdict("failed", f"http_{http_status}", "", retryable)


def _error_label(error: BaseException | None) -> str:
    if error is None:
        return "no_response"
    if isinstance(error, (socket.timeout, TimeoutError, gevent.Timeout)):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connect_error"
    name = type(error).__name__.lower()
    if "timeout" in name:
        return "timeout"
    return "connection_error"


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(float(when) - (time.time() if now is None else now), 0.0)


def backoff_s(policy: RetryPolicy, attempt: int, retry_after: float | None,
              rand: Callable[[], float] = random.random) -> float:
    """Wait before attempt ``attempt + 1``: full-jitter exponential, at least Retry-After."""
    ceiling = min(policy.max_backoff_s, policy.backoff_s * 2.0 ** (attempt - 1))
    wait = rand() * ceiling
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


@dataclass(frozen=True, slots=True)
class Reply:
    """What one HTTP attempt brought back; ``status`` 0 means no response (see ``error``)."""

    status: int
    body: bytes
    retry_after: str | None
    error: BaseException | None
    elapsed_ms: float


class Transport(Protocol):
    """Sends one POST and returns a :class:`Reply`. Network failures are returned, never
    raised (only greenlet kills propagate); the transport owns its connections."""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply: ...


class AttemptFailed(Exception):
    """How a failed attempt is reported to Locust's statistics (the label only)."""


Report = Callable[[str, float, int, BaseException | None], None]


def perform_checkout(
    transport: Transport, payment: Payment, key: str, policy: RetryPolicy, path: str,
    report: Report, sleep: Callable[[float], Any] = gevent.sleep,
) -> CheckoutResult:
    """POST the payment, retrying with the same key; every attempt goes to ``report``
    (request name, ms, response bytes, failure or None) — Locust's request event."""
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    name = f"POST {path} [{payment.method}]"
    t0 = time.perf_counter()
    deadline = t0 + policy.deadline_s
    attempt = 0
    while True:
        attempt += 1
        reply = transport.post(path, payment.body, headers)
        verdict = judge(reply.status, reply.body, reply.error)
        report(name, reply.elapsed_ms, len(reply.body),
               AttemptFailed(verdict.status) if verdict.outcome == "failed" else None)
        done = not verdict.retryable or attempt >= policy.max_attempts
        if not done:
            advised = retry_after_s(reply.retry_after)
            if advised is not None and advised > policy.max_retry_after_s:
                done = True  # the target asks for longer than a customer would wait
            else:
                wait = backoff_s(policy, attempt, advised)
                if time.perf_counter() + wait >= deadline:
                    done = True
                else:
                    sleep(wait)
        if done:
            return CheckoutResult(verdict.outcome, verdict.status, verdict.code, attempt,
                                  reply.status, (time.perf_counter() - t0) * 1000.0)
