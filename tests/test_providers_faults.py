"""Runtime faults and the provider admin API, observed from the gateway side over HTTP.

Every fault is set through the real admin API of real simulators, its effect observed by
a dialect client (answers, timings, dropped connections, ledger rows, metrics), then
cleared and the provider seen healthy again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from paystab.collector.names import SIM_ACTIVE_FAULTS, SIM_REQUESTS_TOTAL
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.stack.dialects.base import LOOKUP_NOT_FOUND
from paystab.stack.providers import RunningProviders, read_ledger, start_providers
from paystab.stack.providers import runner as runner_module
from paystab.stack.providers.server import SimProvider
from tests.conftest_providers import (
    DIALECT_NAMES,
    DialectClient,
    card_charge,
    run,
    simulators,
    universal_spec,
    wait_until,
)

INJECTED = {"server_error": "error.provider_5xx", "bad_gateway": "error.provider_5xx",
            "rate_limited": "error.rate_limited", "malformed": "error.malformed"}


class Admin:
    def __init__(self, session: aiohttp.ClientSession, running: RunningProviders,
                 token: str | None = None) -> None:
        self.session = session
        self.base = running.admin_url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def request(self, method: str, path: str, body: Any = None,
                      raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with self.session.request(method, self.base + path, data=data,
                                        headers=self.headers) as response:
            text = await response.text()
            is_json = response.content_type == "application/json"
            parsed = json.loads(text) if text and is_json else text
            return response.status, parsed

    async def add(self, provider: str, fault: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.request("POST", f"/admin/providers/{provider}/faults", fault)
        assert status == 201, body
        return dict(body)

    async def clear(self, provider: str) -> None:
        status, _ = await self.request("DELETE", f"/admin/providers/{provider}/faults")
        assert status == 204


def test_error_bursts_speak_each_dialect(tmp_path: Path) -> None:
    async def scenario() -> None:
        specs = [universal_spec(d) for d in DIALECT_NAMES]
        async with simulators(specs, tmp_path) as running, aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            for name, endpoint in running.endpoints.items():
                client = DialectClient(session, endpoint)
                for error, code in INJECTED.items():
                    fault = await admin.add(name, {"type": "error_burst", "error": error})
                    assert (await client.charge(card_charge(f"{error}-1"))).code == code
                    assert (await client.status(f"{error}-1")).code == code
                    status, _ = await admin.request(
                        "DELETE", f"/admin/providers/{name}/faults/{fault['id']}")
                    assert status == 204
                assert (await client.charge(card_charge("after"))).code == "approved"
                assert [r.idempotency_key for r in read_ledger(endpoint.ledger or "")] == ["after"]
    run(scenario())


def test_error_burst_ratio(tmp_path: Path) -> None:
    async def scenario() -> Counter[str]:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            await Admin(session, running).add("t-alpha", {"type": "error_burst", "ratio": 0.3})
            client = DialectClient(session, running.endpoints["t-alpha"])
            answers = await asyncio.gather(*(client.charge(card_charge(f"r{i}"))
                                             for i in range(400)))
            counts = Counter(a.code for a in answers)
            assert len(read_ledger(running.endpoints["t-alpha"].ledger or "")) == \
                counts["approved"]
            return counts

    counts = run(scenario())
    sd = math.sqrt(400 * 0.3 * 0.7)
    assert abs(counts["error.provider_5xx"] - 120) <= 4 * sd, counts


def test_latency_and_slow(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("paypay")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            client = DialectClient(session, running.endpoints["t-paypay"])
            await admin.add("t-paypay", {"type": "latency", "added_ms": 400, "jitter_ms": 20})
            started = time.monotonic()
            assert (await client.charge(card_charge("lat"))).code == "approved"
            assert time.monotonic() - started >= 0.38
            await admin.clear("t-paypay")
            await admin.add("t-paypay", {"type": "slow", "duration_ms": 300})
            started = time.monotonic()
            answer = await client.charge(card_charge("slow"))
            assert answer.code == "approved"  # the whole body arrives, just late
            assert time.monotonic() - started >= 0.28
            await admin.clear("t-paypay")
            started = time.monotonic()
            assert (await client.charge(card_charge("fast"))).code == "approved"
            assert time.monotonic() - started < 0.3  # the 400 ms are gone
    run(scenario())


def test_hang_until_the_client_leaves(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("charlie")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            client = DialectClient(session, running.endpoints["t-charlie"])
            await admin.add("t-charlie", {"type": "hang", "operations": ["charge"]})
            with pytest.raises(asyncio.TimeoutError):
                await client.charge(card_charge("h-1"), timeout_s=0.3)
            # Look-ups are not hung (operations), and the hung charge charged nothing.
            assert (await client.status("h-1")).code == LOOKUP_NOT_FOUND
            assert read_ledger(running.endpoints["t-charlie"].ledger or "") == []
            metrics = await _metrics(session, running)
            assert f'{SIM_REQUESTS_TOTAL}{{operation="charge",provider="t-charlie",' \
                   f'result="hang"}} 1.0' in metrics
            await admin.clear("t-charlie")
            assert (await client.charge(card_charge("h-2"))).code == "approved"
    run(scenario())


def test_stop_releases_hung_connections(tmp_path: Path) -> None:
    async def scenario() -> None:
        running = await start_providers([universal_spec("echo")], data_dir=tmp_path)
        async with aiohttp.ClientSession() as session:
            await Admin(session, running).add("t-echo", {"type": "hang"})
            client = DialectClient(session, running.endpoints["t-echo"])
            hung = asyncio.ensure_future(client.charge(card_charge("h"), timeout_s=30))
            # stop only once the provider holds the request (it counts the hang on arrival)
            held = f'{SIM_REQUESTS_TOTAL}{{operation="charge",provider="t-echo",result="hang"}} 1.0'
            deadline = time.monotonic() + 10.0
            while held not in await _metrics(session, running):
                assert time.monotonic() < deadline, "the hung charge never reached the provider"
                await asyncio.sleep(0.01)
            started = time.monotonic()
            await running.stop()
            with pytest.raises(aiohttp.ClientError):
                await hung
            assert time.monotonic() - started < 3.0
    run(scenario())


def test_stop_closes_idle_keep_alive_connections_and_answers_what_is_in_flight(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a gateway's or an SDK's pool holds idle keep-alive connections: stopping must not
    # wait the whole shutdown timeout for each (it did: 2 s per stop), and a charge the
    # provider is still working on is answered, not cut off
    monkeypatch.setattr(runner_module, "_SHUTDOWN_TIMEOUT_S", 30.0)
    arrived: list[str] = []
    handle = SimProvider.handle

    async def counting(self: SimProvider, request: web.BaseRequest) -> web.StreamResponse:
        arrived.append(request.raw_path)
        return await handle(self, request)

    monkeypatch.setattr(SimProvider, "handle", counting)

    async def scenario() -> None:
        running = await start_providers([universal_spec("echo")], data_dir=tmp_path)
        async with aiohttp.ClientSession() as idle_pool, aiohttp.ClientSession() as session:
            idle = DialectClient(idle_pool, running.endpoints["t-echo"])
            assert (await idle.charge(card_charge("idle"))).code == "approved"  # then idle
            await Admin(session, running).add("t-echo", {"type": "latency", "added_ms": 500,
                                                         "jitter_ms": 0})
            client = DialectClient(session, running.endpoints["t-echo"])
            in_flight = asyncio.ensure_future(client.charge(card_charge("late"), timeout_s=30))
            deadline = time.monotonic() + 10.0
            while len(arrived) < 2:  # the idle pool's charge, then this one, being handled
                assert time.monotonic() < deadline, "the late charge never reached the provider"
                await asyncio.sleep(0.01)
            await asyncio.wait_for(running.stop(), timeout=10)  # not 30 s per connection
            assert (await in_flight).code == "approved"
    run(scenario())


def test_drop_response_after_charging(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("delta")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            endpoint = running.endpoints["t-delta"]
            client = DialectClient(session, endpoint)
            await admin.add("t-delta", {"type": "drop_response"})
            with pytest.raises(aiohttp.ClientError):
                await client.charge(card_charge("d-1"))
            assert {r.idempotency_key: r.status for r in read_ledger(endpoint.ledger or "")} == \
                {"d-1": "captured"}
            looked_up = await client.status("d-1")  # drop_response spares look-ups by default
            assert looked_up.code == "approved"
            await admin.clear("t-delta")
            retried = await client.charge(card_charge("d-1"))
            assert (retried.code, retried.provider_ref) == ("approved", looked_up.provider_ref)
            assert len(read_ledger(endpoint.ledger or "")) == 1
    run(scenario())


def test_partial_outage_by_currency_method_and_bin(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("grab")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            client = DialectClient(session, running.endpoints["t-grab"])
            await admin.add("t-grab", {"type": "partial_outage", "currency": "USD",
                                       "error": "rate_limited"})
            assert (await client.charge(card_charge("c1", currency="USD"))).code == \
                "error.rate_limited"
            assert (await client.charge(card_charge("c2", currency="JPY"))).code == "approved"
            await admin.clear("t-grab")
            await admin.add("t-grab", {"type": "partial_outage", "method": "card"})
            assert (await client.charge(card_charge("m1"))).code == "error.provider_5xx"
            await admin.clear("t-grab")
            await admin.add("t-grab", {"type": "partial_outage", "bin_from": "400000",
                                       "bin_to": "400099"})
            assert (await client.charge(card_charge("b1", "4000000000000002"))).code == \
                "error.provider_5xx"
            assert (await client.charge(card_charge("b2", "4242424242424242"))).code == "approved"
            await admin.clear("t-grab")
            assert (await client.charge(card_charge("b3", "4000000000000002"))).code == \
                "declined.do_not_honor"
    run(scenario())


def test_flapping(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with simulators([universal_spec("kakao")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            await Admin(session, running).add("t-kakao", {"type": "flapping", "period_s": 0.3,
                                                          "down_ratio": 0.5})
            client = DialectClient(session, running.endpoints["t-kakao"])
            seen: list[str] = []
            deadline = time.monotonic() + 0.9
            i = 0
            while time.monotonic() < deadline:
                seen.append((await client.charge(card_charge(f"f{i}"))).code)
                i += 1
                await asyncio.sleep(0.01)
            await Admin(session, running).clear("t-kakao")
            after = [(await client.charge(card_charge(f"after-{j}"))).code for j in range(8)]
            assert set(after) == {"approved"}
            return seen

    seen = run(scenario())
    assert set(seen) == {"approved", "error.provider_5xx"}
    flips = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert flips >= 3, seen  # down, up, down, up: it flaps rather than failing once


def test_active_fault_metrics_and_listing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha"), universal_spec("konbini")],
                              tmp_path) as running, aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            line = f'{SIM_ACTIVE_FAULTS}{{provider="t-alpha",type="latency"}}'
            assert f"{line} 0.0" in await _metrics(session, running)
            fault = await admin.add("t-alpha", {"type": "latency", "added_ms": 5, "id": "lat-1"})
            assert fault == {"id": "lat-1", "type": "latency", "added_ms": 5.0,
                             "jitter_ms": 0.0,
                             "operations": ["charge", "status", "void", "refund"]}
            assert f"{line} 1.0" in await _metrics(session, running)
            status, listing = await admin.request("GET", "/admin/providers")
            assert status == 200
            by_name = {p["name"]: p for p in listing["providers"]}
            assert by_name["t-alpha"]["faults"] == [fault]
            assert by_name["t-konbini"]["url"] == running.endpoints["t-konbini"].url
            status, faults = await admin.request("GET", "/admin/providers/t-alpha/faults")
            assert (status, faults) == (200, {"faults": [fault]})
            await admin.add("t-konbini", {"type": "hang"})
            status, _ = await admin.request("DELETE", "/admin/faults")
            assert status == 204
            metrics = await _metrics(session, running)
            assert f"{line} 0.0" in metrics
            assert f'{SIM_ACTIVE_FAULTS}{{provider="t-konbini",type="hang"}} 0.0' in metrics
    run(scenario())


BAD_FAULTS: list[tuple[Any, str]] = [
    ([1, 2], "JSON object"),
    ({"type": "meteor"}, "unknown fault type"),
    ({"ratio": 0.5}, "unknown fault type"),
    ({"type": "error_burst", "ratio": 1.5}, "ratio must be in"),
    ({"type": "error_burst", "ratio": 0}, "ratio must be in"),
    ({"type": "error_burst", "ratio": "half"}, "ratio must be a number"),
    ({"type": "error_burst", "ratio": True}, "ratio must be a number"),
    ({"type": "error_burst", "error": "boom"}, "error must be one of"),
    ({"type": "error_burst", "code": 500}, "unknown parameter 'code'"),
    ({"type": "latency"}, "latency needs added_ms"),
    ({"type": "latency", "added_ms": -1}, "added_ms must be in"),
    ({"type": "slow", "duration_ms": 10_000_000}, "duration_ms must be in"),
    ({"type": "flapping", "period_s": 0}, "period_s must be in"),
    ({"type": "partial_outage"}, "needs method, currency or bin_from"),
    ({"type": "partial_outage", "bin_from": "4000"}, "go together"),
    ({"type": "partial_outage", "bin_from": "4999", "bin_to": "4000"}, "must not be above"),
    ({"type": "partial_outage", "bin_from": "40", "bin_to": "4100"}, "same number of digits"),
    ({"type": "partial_outage", "bin_from": "4x", "bin_to": "41"}, "digits"),
    ({"type": "partial_outage", "currency": "yen"}, "ISO 4217"),
    ({"type": "partial_outage", "method": "cash"}, "method must be one of"),
    ({"type": "hang", "operations": ["charge", "dance"]}, "operations must be"),
    ({"type": "hang", "operations": []}, "operations must be"),
    ({"type": "hang", "id": "has space"}, "id must be"),
]


def test_admin_validation(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            admin = Admin(session, running)
            path = "/admin/providers/t-alpha/faults"
            for body, reason in BAD_FAULTS:
                status, answer = await admin.request("POST", path, body)
                assert status == 400, (body, answer)
                assert reason in answer["error"], (body, answer)
            status, answer = await admin.request("POST", path, raw=b"{nope")
            assert (status, answer) == (400, {"error": "body is not JSON"})
            await admin.add("t-alpha", {"type": "hang", "id": "h"})
            status, answer = await admin.request("POST", path, {"type": "hang", "id": "h"})
            assert status == 409 and "already active" in answer["error"]
            status, answer = await admin.request("GET", "/admin/providers/zeta/faults")
            assert status == 404 and "unknown provider 'zeta'" in answer["error"]
            status, _ = await admin.request("DELETE", f"{path}/nope")
            assert status == 404
            status, _ = await admin.request("POST", path, raw=b"x" * 70_000)
            assert status == 413
            # Nothing invalid was kept.
            assert [f["id"] for f in (await admin.request("GET", path))[1]["faults"]] == ["h"]
    run(scenario())


def test_token_and_non_loopback(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path, token="s3cret") as running, \
                aiohttp.ClientSession() as session:
            status, _ = await Admin(session, running).request("GET", "/admin/providers")
            assert status == 401
            status, _ = await Admin(session, running, "wrong").request("GET", "/admin/providers")
            assert status == 401
            status, _ = await Admin(session, running, "s3cret").request("GET", "/admin/providers")
            assert status == 200
            async with session.get(running.metrics_url) as response:
                assert response.status == 200  # scrapers need no secret
        with pytest.raises(InvalidInput, match="non-loopback"):
            await start_providers([universal_spec("alpha")], host="0.0.0.0", data_dir=tmp_path)
        with pytest.raises(InvalidInput, match="non-loopback"):
            await start_providers([universal_spec("alpha")], host="192.0.2.1", data_dir=tmp_path)
    run(scenario())


def test_port_in_use_is_an_environment_problem(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path / "a") as running:
            port = int(running.endpoints["t-alpha"].url.rsplit(":", 1)[1])
            spec = universal_spec("bravo", port=port)
            with pytest.raises(EnvironmentProblem, match="already in use"):
                await start_providers([spec], data_dir=tmp_path / "b")
    run(scenario())


async def _metrics(session: aiohttp.ClientSession, running: RunningProviders) -> str:
    async with session.get(running.metrics_url) as response:
        assert response.status == 200
        return await response.text()


def test_wait_until_helper_times_out() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match="timed out"):
        run(wait_until(never, 0.05, "nothing"))
