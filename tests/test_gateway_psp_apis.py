"""The reference gateway through the real PSP APIs: Adyen (card-bravo), PayPay
(wallet-paypay) and KOMOJU (konbini-east), with their competitors disabled.

A charge whose answer is lost is looked up and adopted; a charge that answers after the
gateway gave up is voided late through Adyen's ``/payments/{pspReference}/reversals``; the
reconciler finds no double charge, lost payment or orphan.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from paystab.stack.providers import read_ledger
from paystab.stack.reconcile import reconcile_stack
from tests.conftest import RunningStack
from tests.payments import send_many
from tests.test_gateway import clear, inject, wait_resolved

CONFIG = """
providers:
  card-alpha: {enabled: false}
  card-charlie: {enabled: false}
  card-delta: {enabled: false}
  wallet-kakao: {enabled: false}
  wallet-grab: {enabled: false}
  konbini-west: {enabled: false}
"""
REAL_APIS = ("card-bravo", "wallet-paypay", "konbini-east")


def _bodies(n: int, seed: int, methods: tuple[str, ...]) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    bodies = []
    for _ in range(n):
        method = rng.choice(methods)
        body: dict[str, Any] = {"amount": rng.randint(100, 50_000), "currency": "JPY",
                                "method": method, "country": "JP"}
        if method == "card":
            body["card"] = {"number": rng.choice(["4242424242424242", "5555555555554444",
                                                  "4000000000009995", "4111111111111111"]),
                            "exp_month": 12, "exp_year": 2030, "cvc": "123"}
        elif method == "wallet":
            body["wallet"] = {"brand": "paypay"}
        bodies.append(body)
    return bodies


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    config = tmp_path / "stack.yaml"
    config.write_text(CONFIG)
    running = RunningStack(tmp_path, ["--config", str(config)])
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_lost_answers_adopted_and_late_successes_voided_through_real_apis(stack: Any) -> None:
    endpoints = stack.endpoints
    assert {endpoints.providers[n].dialect for n in REAL_APIS} == {"adyen", "paypay", "komoju"}
    # Answers later than the gateway's response time-out: it pays elsewhere, then voids (first,
    # while card-bravo's breaker is closed: the lost answers below count against it).
    inject(endpoints, "card-bravo", {"type": "latency", "added_ms": 2600,
                                     "operations": ["charge"]})
    late = asyncio.run(send_many(endpoints.gateway_url, _bodies(12, 4, ("card",)),
                                 concurrency=12))
    assert Counter(a.status for a in late) == {200: 12}
    clear(endpoints, "card-bravo")
    for name in REAL_APIS:
        inject(endpoints, name, {"type": "drop_response", "ratio": 0.4})
    answers = asyncio.run(send_many(endpoints.gateway_url, _bodies(
        240, 3, ("card", "wallet", "konbini", "bank_transfer")), concurrency=16))
    assert Counter(a.status for a in answers) == {200: 240}
    assert {a.body["provider"] for a in answers} <= {*REAL_APIS, "card-backup"}
    assert {a.body["provider"] for a in answers} >= set(REAL_APIS)
    for name in REAL_APIS:
        clear(endpoints, name)
    wait_resolved(endpoints)
    result = reconcile_stack(endpoints)
    assert (result.double_charges, result.lost_payments, result.orphans) == (0, 0, 0), \
        result.findings[:5]
    assert result.voided_late_successes >= 1
    ledger = endpoints.providers["card-bravo"].ledger
    assert ledger is not None
    assert "voided" in {row.status for row in read_ledger(ledger)}
