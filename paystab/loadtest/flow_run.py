"""A flow compiled for the load engine: per-checkout values, request bytes, answer verdicts.

Everything the YAML says is turned into prepared pieces once per process (templates split
into fragments, JSON paths into tuples, rules into tests), so a step costs a few template
splices and one JSON decode of the answer. The per-checkout values come from the seeded
payment mix (``mix.py``: amount, currency, country, method, the test card number and the
code it is expected to produce) plus the flow's own ``values`` and whatever earlier steps
extracted. Card numbers only live in these values and the request bytes: never in names,
records or logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from paystab.loadtest.flow_template import (
    ABSENT,
    JsonBody,
    Text,
    header_value,
    lookup,
    parse_path,
    quote_path_value,
)
from paystab.loadtest.mix import DECLINE_TEST_CARDS, PaymentFactory

if TYPE_CHECKING:  # the flow file's models (pydantic): a run of paystab's payment needs none
    from paystab.loadtest.flow import Flow, Rule, Step

_RETRYABLE = frozenset({409, 425, 429})
_DECODE = json.JSONDecoder().decode
_CARD_AT = b'"number":"'


class StepVerdict(NamedTuple):
    outcome: str  # approved | declined | pending | failed | continue
    status: str  # what the answer said (the JSON value tested) or http_NNN
    code: str
    retryable: bool


@dataclass(frozen=True)
class _CompiledRule:
    statuses: frozenset[int] | None
    status_class: int | None
    path: tuple[str | int, ...] | None
    equals: Any
    among: tuple[Any, ...] | None
    exists: bool | None
    outcome: str
    code: tuple[str | int, ...] | None

    def matches(self, status: int, document: Any) -> tuple[bool, Any]:
        if self.statuses is not None and status not in self.statuses:
            return False, None
        if self.status_class is not None and status // 100 != self.status_class:
            return False, None
        if self.path is None:
            return True, None
        value = lookup(document, self.path)
        if self.exists is not None and (value is not ABSENT) != self.exists:
            return False, None
        if self.equals is not None and value != self.equals:
            return False, None
        if self.among is not None and value not in self.among:
            return False, None
        return True, value


def _compile_rule(rule: Rule) -> _CompiledRule:
    statuses: frozenset[int] | None = None
    status_class: int | None = None
    if isinstance(rule.status, int):
        statuses = frozenset({rule.status})
    elif isinstance(rule.status, list):
        statuses = frozenset(rule.status)
    elif isinstance(rule.status, str):
        status_class = int(rule.status[0])
    return _CompiledRule(
        statuses, status_class, parse_path(rule.path) if rule.path else None, rule.equals,
        tuple(rule.in_) if rule.in_ is not None else None, rule.exists, rule.outcome,
        parse_path(rule.code) if rule.code else None)


class CompiledStep:
    __slots__ = ("body", "extract", "headers", "index", "last", "method", "name", "needs_json",
                 "path", "poll_interval_s", "poll_max", "poll_while", "rules")

    def __init__(self, step: Step, index: int, last: bool) -> None:
        self.index = index
        self.last = last
        self.method = step.method
        self.name = f"{step.method} {step.name}"
        self.path = Text(step.path)
        self.headers = [(k, Text(v)) for k, v in step.headers.items()]
        self.body = JsonBody(step.body) if step.body is not None else None
        self.extract = [(k, parse_path(v)) for k, v in step.extract.items()]
        self.rules = [_compile_rule(r) for r in step.classify]
        self.needs_json = bool(self.extract) or any(r.path or r.code for r in self.rules)
        self.poll_while = frozenset(step.poll.while_) if step.poll else frozenset()
        self.poll_max = step.poll.max_attempts if step.poll else 1
        self.poll_interval_s = step.poll.interval_s if step.poll else 0.0

    def request(self, values: dict[str, Any], prefix: str, host: str) -> bytes:
        """The whole HTTP/1.1 request for this step with these values."""
        body = self.body.render(values) if self.body is not None else b""
        path = self.path.render(values, quote_path_value)
        lines = [f"{self.method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\n"]
        for header, text in self.headers:
            lines.append(f"{header}: {text.render(values, header_value)}\r\n")
        if self.body is not None:
            lines.append("Content-Type: application/json\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode() + body

    def judge(self, status: int, body: bytes, values: dict[str, Any]) -> StepVerdict:
        """Classify one answer, extracting into ``values`` when it moves the flow on."""
        document: Any = None
        if self.needs_json and body:
            try:
                document = _DECODE(body.decode())
            except ValueError:
                document = None
        for rule in self.rules:
            matched, value = rule.matches(status, document)
            if matched:
                code = lookup(document, rule.code) if rule.code is not None else ""
                label = value if isinstance(value, str) else rule.outcome
                verdict = StepVerdict(rule.outcome, label, code if isinstance(code, str) else "",
                                      False)
                break
        else:
            if 200 <= status < 300:
                outcome = "approved" if self.last else "continue"
                verdict = StepVerdict(outcome, outcome, "", False)
            elif status == 402:
                verdict = StepVerdict("declined", "http_402", "", False)
            else:
                verdict = StepVerdict("failed", f"http_{status}", "",
                                      status >= 500 or status in _RETRYABLE)
        if verdict.outcome != "failed":
            for name, path in self.extract:
                value = lookup(document, path)
                if value is ABSENT:
                    return StepVerdict("failed", f"missing_{name}", "", False)
                values[name] = value
        return verdict


class CompiledFlow:
    """One process's flow: ``values(seq, key)`` then each step's ``request``/``judge``."""

    def __init__(self, flow: Flow, factory: PaymentFactory) -> None:
        self.flow = flow
        self.factory = factory
        count = len(flow.steps)
        self.steps = [CompiledStep(s, i, i == count - 1) for i, s in enumerate(flow.steps)]
        self.constants = dict(flow.values)
        self._decline_cards = {code: number for number, code in DECLINE_TEST_CARDS.items()}

    def values(self, seq: int, key: str) -> tuple[dict[str, Any], str, str]:
        """The checkout's template values, and its method and currency (for its record)."""
        payment = self.factory.payment(seq)
        card = "4242424242424242"
        body = payment.body
        at = body.find(_CARD_AT)
        if at >= 0:
            start = at + len(_CARD_AT)
            card = body[start:body.index(b'"', start)].decode()
        elif payment.expected in self._decline_cards:
            card = self._decline_cards[payment.expected]
        customer_at = body.find(b'"customer_id":"')
        customer = body[customer_at + 15:body.index(b'"', customer_at + 15)].decode() \
            if customer_at >= 0 else f"c_{seq}"
        values: dict[str, Any] = dict(self.constants)
        values.update(key=key, seq=seq, amount=payment.amount, currency=payment.currency,
                      country=payment.country, method=payment.method, customer=customer,
                      card=card, card_expect=payment.expected or "approved")
        return values, payment.method, payment.currency
