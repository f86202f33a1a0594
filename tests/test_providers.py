"""Provider simulators over real HTTP: every dialect, gateway-side client to real server.

Each test starts real simulators on ephemeral 127.0.0.1 ports with real SQLite ledgers and
talks to them with the dialect's own client half, as the gateway does. Faults and the admin
API are in ``test_providers_faults.py``; the CLI in ``test_providers_cli.py``.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from paystab.stack.catalog import TEST_CARDS, LatencyModel, ProviderSpec
from paystab.stack.dialects.base import LOOKUP_NOT_FOUND, REFUNDED, VOIDED
from paystab.stack.providers import read_ledger
from paystab.stack.providers.model import ChargeModel
from tests.conftest_providers import (
    DIALECT_NAMES,
    DialectClient,
    async_charge,
    card_charge,
    fast_catalog,
    random_card,
    run,
    simulators,
    universal_spec,
    wait_until,
    wallet_charge,
)


def _rows(path: str | None) -> dict[str, str]:
    assert path is not None
    return {r.idempotency_key: r.status for r in read_ledger(path)}


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_test_cards_and_card_checks(dialect: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec(dialect)], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            endpoint = running.endpoints[f"t-{dialect}"]
            client = DialectClient(session, endpoint)
            for number, code in TEST_CARDS.items():
                answer = await client.charge(card_charge(f"tc-{number}", number))
                assert answer.code == code, (number, answer)
                assert answer.provider_ref or code != "approved"
            assert (await client.charge(card_charge("bad-luhn", "4242424242424241"))).code == \
                "declined.invalid_data"
            assert (await client.charge(card_charge("old", random_card(random.Random(1)),
                                                    exp=(1, 2020)))).code == "declined.expired_card"
            rows = _rows(endpoint.ledger)
            assert rows["tc-4242424242424242"] == "captured"
            assert rows["tc-4000000000009995"] == "declined"
            assert len(rows) == len(TEST_CARDS) + 2
    run(scenario())


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_idempotent_replay_sequential_and_concurrent(dialect: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        spec = universal_spec(dialect, latency=LatencyModel(median_ms=30.0, sigma=0.1))
        async with simulators([spec], tmp_path) as running, aiohttp.ClientSession() as session:
            endpoint = running.endpoints[spec.name]
            client = DialectClient(session, endpoint)
            first = await client.charge(card_charge("seq"))
            again = await client.charge(card_charge("seq"))
            assert first.code == again.code == "approved"
            assert first.provider_ref == again.provider_ref
            answers = await asyncio.gather(*(client.charge(card_charge("burst"))
                                             for _ in range(20)))
            assert {a.code for a in answers} == {"approved"}
            assert len({a.provider_ref for a in answers}) == 1
            # The same key for another amount is refused and charges nothing.
            other = await client.charge(card_charge("seq", amount=999))
            assert other.code == "declined.invalid_data"
            rows = read_ledger(endpoint.ledger or "")
            assert Counter(r.idempotency_key for r in rows) == {"seq": 1, "burst": 1}
            assert all(r.status == "captured" for r in rows)
    run(scenario())


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_status_lookup_and_async_completion(dialect: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec(dialect)], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            endpoint = running.endpoints[f"t-{dialect}"]
            client = DialectClient(session, endpoint)
            charged = await client.charge(card_charge("card-1"))
            found = await client.status("card-1")
            assert (found.code, found.provider_ref) == ("approved", charged.provider_ref)
            declined = await client.charge(card_charge("card-2", "4000000000000002"))
            assert declined.code == "declined.do_not_honor"
            assert (await client.status("card-2")).code == "declined.do_not_honor"
            assert (await client.status("never-seen")).code == LOOKUP_NOT_FOUND
            for method in ("konbini", "bank_transfer"):
                pending = await client.charge(async_charge(f"slip-{method}", method))
                assert pending.code == "pending"
                assert (await client.status(f"slip-{method}")).code == "pending"

                async def captured(key: str = f"slip-{method}") -> bool:
                    return (await client.status(key)).code == "approved"

                await wait_until(captured, 5.0, f"{method} completion")
                assert _rows(endpoint.ledger)[f"slip-{method}"] == "captured"
                # A replay still answers what the charge was answered with.
                assert (await client.charge(async_charge(f"slip-{method}", method))).code == \
                    "pending"
    run(scenario())


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_void_and_refund(dialect: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec(dialect)], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            endpoint = running.endpoints[f"t-{dialect}"]
            client = DialectClient(session, endpoint)
            charged = await client.charge(card_charge("v-1"))
            assert (await client.void("v-1", charged.provider_ref)).code == VOIDED
            assert (await client.status("v-1")).code == VOIDED
            assert (await client.void("v-1")).code == VOIDED  # twice is harmless
            assert (await client.void("nope")).code == LOOKUP_NOT_FOUND
            await client.charge(card_charge("v-2", "4000000000000069"))
            assert (await client.void("v-2")).code == "declined.expired_card"
            await client.charge(card_charge("r-1"))
            assert (await client.refund("r-1")).code == REFUNDED
            assert (await client.status("r-1")).code == REFUNDED
            assert (await client.charge(wallet_charge("w-1"))).code == "approved"
            assert (await client.void("w-1")).code == VOIDED
            # A voided konbini slip never completes.
            assert (await client.charge(async_charge("k-1"))).code == "pending"
            assert (await client.void("k-1")).code == VOIDED
            await asyncio.sleep(0.45)  # past async_completion_s: nothing may capture it
            assert (await client.status("k-1")).code == VOIDED
            rows = _rows(endpoint.ledger)
            assert rows == {"v-1": "voided", "v-2": "declined", "r-1": "refunded",
                            "w-1": "voided", "k-1": "voided"}
    run(scenario())


def test_catalog_support_rules(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators(fast_catalog(), tmp_path) as running, \
                aiohttp.ClientSession() as session:
            def client(name: str) -> DialectClient:
                return DialectClient(session, running.endpoints[name])
            jcb = random_card(random.Random(3), "3530")
            assert (await client("card-alpha").charge(card_charge("j1", jcb))).code == \
                "declined.not_supported"
            assert (await client("card-delta").charge(card_charge("j2", jcb))).code in (
                "approved", *[c for c in TEST_CARDS.values() if c != "approved"],
                "declined.invalid_data")
            assert (await client("wallet-paypay").charge(wallet_charge("p1", "paypay", "KRW"))
                    ).code == "declined.not_supported"
            assert (await client("wallet-paypay").charge(wallet_charge("p2", "grabpay"))
                    ).code == "declined.not_supported"
            assert (await client("card-alpha").charge(async_charge("a1"))).code == \
                "declined.not_supported"
            assert (await client("konbini-east").charge(async_charge("k1"))).code == "pending"
            assert len(running.endpoints) == 10
    run(scenario())


def test_decline_mix_within_tolerance(tmp_path: Path) -> None:
    mix = {"declined.insufficient_funds": 0.10, "declined.do_not_honor": 0.05,
           "declined.fraud": 0.02}
    total = 2000

    async def scenario() -> Counter[str]:
        spec = universal_spec("bravo", decline_mix=mix)
        rng = random.Random(11)
        cards = [random_card(rng) for _ in range(total)]
        async with simulators([spec], tmp_path, seed=5) as running, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            client = DialectClient(session, running.endpoints[spec.name])
            answers = await asyncio.gather(*(client.charge(card_charge(f"m-{i}", cards[i]))
                                             for i in range(total)))
            rows = read_ledger(running.endpoints[spec.name].ledger or "")
            assert len(rows) == total
        return Counter(a.code for a in answers)

    counts = run(scenario())
    assert sum(counts.values()) == total
    for code, share in [*mix.items(), ("approved", 1 - sum(mix.values()))]:
        sd = math.sqrt(total * share * (1 - share))
        assert abs(counts[code] - total * share) <= 4 * sd, (code, counts)


def test_latency_model_is_lognormal_and_capped() -> None:
    spec = ProviderSpec("x", "alpha", ("card",), latency=LatencyModel(median_ms=40.0, sigma=0.35,
                                                                     max_ms=90.0))
    model = ChargeModel(spec, random.Random(2))
    samples = sorted(model.latency_s() for _ in range(20000))
    assert abs(samples[len(samples) // 2] - 0.040) < 0.002
    assert max(samples) <= 0.090
    assert samples[int(len(samples) * 0.95)] > 0.065  # a real right tail: p95 ≈ e^(1.645σ) × median
    with pytest.raises(ValueError, match="adds up"):
        ChargeModel(ProviderSpec("y", "alpha", ("card",),
                                 decline_mix={"declined.fraud": 0.7, "declined.do_not_honor": 0.5}),
                    random.Random(1))


def test_state_survives_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        spec = universal_spec("kakao", async_completion_s=0.4)
        async with simulators([spec], tmp_path) as running, aiohttp.ClientSession() as s:
            client = DialectClient(s, running.endpoints[spec.name])
            first = await client.charge(card_charge("keep"))
            assert (await client.charge(async_charge("slip"))).code == "pending"
        async with simulators([spec], tmp_path) as running, aiohttp.ClientSession() as s:
            client = DialectClient(s, running.endpoints[spec.name])
            again = await client.charge(card_charge("keep"))
            assert (again.code, again.provider_ref) == ("approved", first.provider_ref)
            fresh = await client.charge(card_charge("new"))
            assert fresh.provider_ref != first.provider_ref

            async def completed() -> bool:
                return (await client.status("slip")).code == "approved"

            await wait_until(completed, 5.0, "pending charge to complete after a restart")
            assert [r.idempotency_key for r in read_ledger(running.endpoints[spec.name].ledger
                                                           or "")] == ["keep", "slip", "new"]
    run(scenario())


def test_bad_requests_and_unknown_routes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec(d) for d in DIALECT_NAMES], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            for endpoint in running.endpoints.values():
                client = DialectClient(session, endpoint)
                call = client.dialect.charge_call(card_charge("b-1"))
                for body in (b"garbage", b"", call.body[:-7]):
                    status, ctype, data = await client.send(
                        type(call)(call.method, call.path, call.headers, body))
                    assert 400 <= status < 500 or status == 200, (endpoint.name, status)
                    assert client.dialect.parse_charge(status, ctype, data).code == \
                        "declined.invalid_data", endpoint.name
                assert (await client.charge(card_charge("b-2", amount=0))).code == \
                    "declined.invalid_data"
                async with session.get(endpoint.url + "/no/such/thing") as response:
                    assert response.status == 404
                assert read_ledger(endpoint.ledger or "") == []
    run(scenario())


def test_no_card_number_in_ledger_or_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators(fast_catalog(), tmp_path) as running, \
                aiohttp.ClientSession() as session:
            for name in ("card-alpha", "card-charlie", "card-backup"):
                client = DialectClient(session, running.endpoints[name])
                for number in TEST_CARDS:
                    await client.charge(card_charge(f"{name}-{number[-4:]}", number))
            async with session.get(running.metrics_url) as response:
                metrics = await response.text()
        assert 'result="declined.fraud"' in metrics
        blobs = [metrics.encode()]
        for path in tmp_path.glob("*.sqlite3*"):
            blobs.append(path.read_bytes())
        for number in TEST_CARDS:
            assert all(number.encode() not in blob for blob in blobs)
    run(scenario())


def test_read_ledger_never_creates_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_ledger(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_ledger_is_wal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running:
            path = running.endpoints["t-alpha"].ledger or ""
            conn = sqlite3.connect(path)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            conn.close()
    run(scenario())
