"""The reference stack end to end: real provider simulators, real gateway, real SQLite."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from paystab.stack.catalog import TEST_CARDS, RoutingSettings, default_providers
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.reconcile import reconcile_stack
from tests.conftest import RunningStack, require
from tests.payments import CARDS, admin, payment_body, post, run_payments

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def preferred_card_provider() -> str:
    from paystab.collector.stats import GatewayStats
    from paystab.stack.routing import Router

    specs = default_providers()
    stats = GatewayStats()
    for s in specs:
        stats.provider(s.name, s.methods)
    return Router(specs, stats.providers, RoutingSettings()).candidates("card", "JPY", "JP", "visa", set())[0].spec.name


def inject(endpoints: StackEndpoints, provider: str, fault: dict[str, object]) -> str:
    assert endpoints.provider_admin_url
    status, body = admin(endpoints.provider_admin_url, "POST", f"/admin/providers/{provider}/faults", fault)
    assert status == 201, body
    return str(body["id"])


def clear(endpoints: StackEndpoints, provider: str) -> None:
    assert endpoints.provider_admin_url
    status, _ = admin(endpoints.provider_admin_url, "DELETE", f"/admin/providers/{provider}/faults")
    assert status == 204


def wait_resolved(endpoints: StackEndpoints, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    remaining = None
    while time.monotonic() < deadline:
        _, body = admin(endpoints.gateway_url, "POST", "/admin/resolve")
        remaining = body["unresolved"]
        if remaining == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{remaining} attempts still unresolved after {timeout_s}s")


@pytest.mark.slow
def test_two_thousand_payments_across_methods_all_answered_with_the_expected_mix(
        reference_stack: StackEndpoints) -> None:
    answers = run_payments(reference_stack.gateway_url, 2000, seed=11)
    assert Counter(a.status for a in answers) == {200: 2000}
    by_method = Counter(a.request["method"] for a in answers)
    assert all(by_method[m] > 100 for m in ("card", "wallet", "konbini", "bank_transfer"))
    ordinary = [a for a in answers if a.request["method"] == "card"
                and a.request["card"]["number"] not in TEST_CARDS]
    for a in answers:
        if a.request["method"] == "card" and a.request["card"]["number"] in TEST_CARDS:
            assert a.body["code"] == TEST_CARDS[a.request["card"]["number"]], a.body
    declined = sum(1 for a in ordinary if a.body["status"] == "declined")
    # default card decline mix is 2.8 %; a binomial 99.9 % band for ~750 cards
    assert 0.005 <= declined / len(ordinary) <= 0.065
    async_methods = [a for a in answers if a.request["method"] in ("konbini", "bank_transfer")]
    assert sum(a.body["status"] == "pending" for a in async_methods) / len(async_methods) > 0.95
    wallets = [a for a in answers if a.request["method"] == "wallet"]
    assert sum(a.body["status"] == "approved" for a in wallets) / len(wallets) > 0.93


def test_idempotency_key_semantics(reference_stack: StackEndpoints) -> None:
    url = reference_stack.gateway_url
    body = {"amount": 1500, "currency": "JPY", "method": "card", "country": "JP", "card": CARD}
    key = f"idem-{uuid.uuid4()}"
    s1, b1 = post(url, body, key)
    s2, b2 = post(url, body, key)
    assert s1 == s2 == 200 and b1 == b2 and b1["status"] == "approved"
    s3, b3 = post(url, {**body, "amount": 1501}, key)
    assert s3 == 422 and "Idempotency-Key" in b3["title"]
    s4, b4 = post(url, body, None)
    assert s4 == 400 and b4["type"].endswith("idempotency-key-missing")
    s5, b5 = admin(url, "GET", f"/v1/payments/{b1['id']}")
    assert s5 == 200 and b5["id"] == b1["id"] and b5["status"] == "approved"


def test_concurrent_same_key_gives_one_payment_and_one_capture(reference_stack: StackEndpoints) -> None:
    from paystab.stack.providers import read_ledger

    url = reference_stack.gateway_url
    key = f"race-{uuid.uuid4()}"
    body = {"amount": 4321, "currency": "JPY", "method": "card", "country": "JP", "card": CARD}

    async def race() -> list[tuple[int, dict[str, object]]]:
        async with aiohttp.ClientSession() as s:
            async def one() -> tuple[int, dict[str, object]]:
                async with s.post(url + "/v1/payments", json=body, headers={"Idempotency-Key": key}) as r:
                    return r.status, await r.json(content_type=None)
            return await asyncio.gather(*(one() for _ in range(20)))

    results = asyncio.run(race())
    ok = [b for s, b in results if s == 200]
    assert ok and all(s in (200, 409) for s, _ in results)
    assert len({b["id"] for b in ok}) == 1
    _, final = post(url, body, key)
    payment_id = final["id"]
    captures = [row for p in reference_stack.providers.values() if p.ledger
                for row in read_ledger(p.ledger) if row.payment_id == payment_id]
    assert len(captures) == 1 and captures[0].status == "captured"


@pytest.mark.parametrize(("raw", "headers", "status"), [
    (b"{oops", {"Content-Type": "application/json"}, 400),
    (b'{"amount": -5}', {"Content-Type": "application/json"}, 422),
    (json.dumps({"amount": 10, "currency": "JPY", "method": "card", "country": "JP"}).encode(),
     {"Content-Type": "application/json"}, 422),
    (b"amount=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (b"x" * (70 * 1024), {"Content-Type": "application/json"}, 413),
])
def test_bad_requests_get_problem_json_never_5xx(reference_stack: StackEndpoints, raw: bytes,
                                                 headers: dict[str, str], status: int) -> None:
    async def go() -> tuple[int, str, dict[str, object]]:
        async with aiohttp.ClientSession() as s, s.post(
                reference_stack.gateway_url + "/v1/payments", data=raw,
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())}) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.json(content_type=None)
    got, content_type, body = asyncio.run(go())
    assert got == status and content_type.startswith("application/problem+json")
    assert body["status"] == status and body["detail"]


def test_metrics_pass_promtool_check_metrics(reference_stack: StackEndpoints) -> None:
    promtool = shutil.which("promtool")
    require("promtool", promtool is not None, "apt-get install prometheus")
    assert promtool is not None
    run_payments(reference_stack.gateway_url, 50, seed=3)
    _, text = _get_text(reference_stack.gateway_url + "/metrics")
    assert "paystab_provider_attempts_total" in text and "paystab_provider_oldest_inflight_age_seconds" in text
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def _get_text(url: str, accept: str | None = None) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        headers = {"Accept": accept} if accept else {}
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
            return r.headers.get("Content-Type", ""), await r.text()
    return asyncio.run(go())


@pytest.mark.slow
def test_a_hung_card_provider_costs_no_payment_and_reconciles_clean(fresh_stack: RunningStack) -> None:
    endpoints = fresh_stack.endpoints
    victim = preferred_card_provider()
    inject(endpoints, victim, {"type": "hang"})
    answers = run_payments(endpoints.gateway_url, 2000, seed=5, method="card", concurrency=48)
    assert Counter(a.status for a in answers) == {200: 2000}
    _, text = _get_text(endpoints.gateway_url + "/metrics")
    assert f'paystab_provider_attempts_total{{error_type="timeout",outcome="error",provider="{victim}"}}' in text
    clear(endpoints, victim)
    wait_resolved(endpoints)
    result = reconcile_stack(endpoints)
    assert (result.double_charges, result.lost_payments, result.orphans) == (0, 0, 0), result.findings[:5]


@pytest.mark.slow
def test_garbage_answers_count_against_the_provider_and_are_retried_elsewhere(fresh_stack: RunningStack) -> None:
    endpoints = fresh_stack.endpoints
    victim = preferred_card_provider()
    inject(endpoints, victim, {"type": "error_burst", "ratio": 1.0, "error": "malformed"})
    answers = run_payments(endpoints.gateway_url, 300, seed=8, method="card")
    assert Counter(a.status for a in answers) == {200: 300}
    assert all(a.body["provider"] != victim for a in answers)
    _, text = _get_text(endpoints.gateway_url + "/metrics")
    line = next(x for x in text.splitlines() if x.startswith("paystab_provider_attempts_total")
                and f'provider="{victim}"' in x and 'error_type="malformed"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 1
    clear(endpoints, victim)
    wait_resolved(endpoints)
    assert reconcile_stack(endpoints).clean


@pytest.mark.slow
def test_drain_and_restore_move_traffic(fresh_stack: RunningStack) -> None:
    endpoints = fresh_stack.endpoints
    victim = preferred_card_provider()
    status, state = admin(endpoints.gateway_url, "POST", f"/admin/providers/{victim}/drain", {"reason": "test"})
    assert status == 200 and state["state"] == "drained"
    answers = run_payments(endpoints.gateway_url, 200, seed=9, method="card")
    assert all(a.body.get("provider") != victim for a in answers)
    status, state = admin(endpoints.gateway_url, "POST", f"/admin/providers/{victim}/restore")
    assert status == 200 and state["state"] == "active"
    status, _ = admin(endpoints.gateway_url, "POST", "/admin/providers/nope/drain")
    assert status == 404
    _, text = _get_text(endpoints.gateway_url + "/metrics")
    assert f'paystab_failovers_total{{action="drain",provider="{victim}"}} 1.0' in text


@pytest.mark.slow
def test_spans_for_two_thousand_test_card_payments_hold_no_card_number(tmp_path: Path) -> None:
    config = tmp_path / "stack.yaml"
    config.write_text("trace_sample_ratio: 1.0\n")
    spans = tmp_path / "spans.jsonl"
    stack = RunningStack(tmp_path, ["--config", str(config), "--trace-jsonl", str(spans)])
    try:
        answers = run_payments(stack.endpoints.gateway_url, 2000, seed=13, method="card")
        assert len(answers) == 2000
    finally:
        stack.stop()
    text = spans.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    servers = [r for r in records if r["kind"] == "SERVER"]
    clients = [r for r in records if r["kind"] == "CLIENT"]
    assert len(servers) == 2000 and len(clients) >= 2000
    client_keys = {"paystab.payment.provider", "paystab.payment.code", "http.request.resend_count"}
    assert client_keys <= set(clients[0]["attributes"])
    assert {"paystab.payment.outcome", "paystab.payment.method"} <= set(servers[0]["attributes"])
    for pan in CARDS:
        assert pan not in text


@pytest.mark.slow
def test_gateway_killed_mid_traffic_is_restarted_and_loses_nothing(fresh_stack: RunningStack) -> None:
    import os
    import random
    import signal
    import threading

    endpoints = fresh_stack.endpoints
    url = endpoints.gateway_url
    rng = random.Random(21)
    bodies = [payment_body(rng) for _ in range(600)]
    results: dict[str, tuple[int, dict[str, object]]] = {}

    async def checkout(session: aiohttp.ClientSession, body: dict[str, object], key: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a checkout page retries with the same key
            try:
                async with session.post(url + "/v1/payments", json=body, headers={"Idempotency-Key": key}) as r:
                    data = await r.json(content_type=None)
                    if r.status == 200 or (400 <= r.status < 500 and r.status != 409):
                        results[key] = (r.status, data)
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)

    async def drive() -> None:
        sem = asyncio.Semaphore(24)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            async def one(i: int) -> None:
                async with sem:
                    await checkout(s, bodies[i], f"crash-{i}")
            await asyncio.gather(*(one(i) for i in range(len(bodies))))

    old_pid = fresh_stack_gateway_pid(fresh_stack)
    killer = threading.Timer(1.0, lambda: os.kill(old_pid, signal.SIGKILL))
    killer.start()
    asyncio.run(drive())
    killer.join()
    assert fresh_stack_gateway_pid(fresh_stack) != old_pid  # it was restarted
    assert len(results) == len(bodies)
    assert all(status == 200 for status, _ in results.values())
    wait_resolved(StackEndpoints.read(fresh_stack.ready_file))
    result = reconcile_stack(StackEndpoints.read(fresh_stack.ready_file))
    assert (result.double_charges, result.lost_payments, result.orphans) == (0, 0, 0), result.findings[:5]


def fresh_stack_gateway_pid(stack: RunningStack) -> int:
    pid = StackEndpoints.read(stack.ready_file).gateway_pid
    assert pid
    return pid


def _ledger_counts(endpoints: StackEndpoints) -> tuple[int, int]:
    import sqlite3

    db = sqlite3.connect(f"file:{endpoints.gateway_ledger}?mode=ro", uri=True)
    try:
        return (db.execute("SELECT count(*) FROM payments").fetchone()[0],
                db.execute("SELECT count(*) FROM attempts").fetchone()[0])
    finally:
        db.close()


def test_the_reported_5xx_inputs_are_4xx_and_never_reach_the_ledger(reference_stack: StackEndpoints) -> None:
    import gzip
    import socket

    url = reference_stack.gateway_url
    good = {"amount": 1500, "currency": "JPY", "method": "card", "country": "JP", "card": CARD}
    before = _ledger_counts(reference_stack)

    async def send(raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession(auto_decompress=False) as s, s.post(
                url + "/v1/payments", data=raw, headers={"Content-Type": "application/json",
                                                         "Idempotency-Key": str(uuid.uuid4()), **headers}) as r:
            assert r.headers["Content-Type"].startswith("application/problem+json")
            return r.status, await r.json(content_type=None)

    surrogate = json.dumps({**good, "customer_id": "\ud800"}).encode()
    deep = b'{"metadata": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    cases = [(surrogate, {}, 422, "customer_id"), (deep, {}, 400, None),
             (json.dumps(good).encode(), {"Content-Encoding": "gzip"}, 400, "Content-Encoding"),
             (gzip.compress(b"{not json"), {"Content-Encoding": "gzip"}, 400, None)]
    for number in ("6011111111111117", "6200000000000005", "0000000000000"):
        cases.append((json.dumps({**good, "card": {**CARD, "number": number}}).encode(), {}, 422, None))
    for raw, headers, status, field in cases:
        got, body = asyncio.run(send(raw, headers))
        assert (got, body.get("field")) == (status, field), body
    assert body["type"].endswith("/unroutable")  # the last: no provider takes the scheme
    assert _ledger_counts(reference_stack) == before  # no payment, no attempt, no retry

    # A body announced at 10 MB is refused at once, not waited for.
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Idempotency-Key: big\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 100)
        assert c.recv(200).startswith(b"HTTP/1.1 413 ")


def test_the_openapi_document_is_served(reference_stack: StackEndpoints) -> None:
    status, document = admin(reference_stack.gateway_url, "GET", "/openapi.json")
    assert status == 200 and document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {"/v1/payments", "/v1/payments/{id}", "/admin/providers"}
    status, problem = admin(reference_stack.gateway_url, "GET", "/v1/payments/%ED%A0%80")
    assert status == 404 and problem["type"].endswith("/not-found")
