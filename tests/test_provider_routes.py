"""Routed dialects: a dialect that declares (method, pattern, operation, handler) routes.

A toy routed dialect registered for the test serves ``POST /pay`` (a charge through the
charge book), ``GET /pay/{ref}`` and a literal ``GET /pay/latest`` (beats the parameter);
the tests pin the contract of ``stack/dialects/routes.py``: routing, the dialect's own 404,
authentication first, faults per route operation (injected error, drop after charging),
the fail-first magic value, and the ledger as ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from paystab.stack.dialects import DIALECTS
from paystab.stack.dialects.alpha import AlphaDialect
from paystab.stack.dialects.base import Card, ChargeRequest, HttpReply, InboundCall
from paystab.stack.dialects.routes import (
    Route,
    RouteCall,
    RouteError,
    RouteHost,
    RouteTable,
    parse_fail_first,
)
from paystab.stack.providers import read_ledger
from tests.conftest_providers import run, simulators, universal_spec


def _json(status: int, doc: object) -> HttpReply:
    return HttpReply(status, "application/json", json.dumps(doc).encode())


class _Toy(AlphaDialect):
    """Alpha's client half; a routed server half."""

    def __init__(self) -> None:
        self.routes = RouteTable([
            Route("POST", "/pay", "charge", self._pay, self._parse),
            Route("GET", "/pay/latest", "status", self._latest),
            Route("GET", "/pay/{ref}", "status", self._get),
        ])

    def new_state(self, host: RouteHost) -> dict[str, Any]:
        return {"refs": {}, "latest": None}

    def render_no_route(self, method: str, path: str) -> HttpReply:
        return _json(404, {"error": f"no {method} {path.partition('?')[0]}"})

    def authenticate(self, call: InboundCall) -> HttpReply | None:
        if call.headers.get("authorization") == "Bearer ok":
            return None
        return _json(401, {"error": "who are you"})

    def _parse(self, call: RouteCall) -> ChargeRequest:
        doc = json.loads(call.body or b"{}")
        if "key" not in doc:
            raise RouteError(_json(400, {"error": "key missing"}))
        if "fail" in doc:
            times, error = parse_fail_first(doc["fail"])
            call.fail_first = (doc["key"], times, error)
        return ChargeRequest(doc["key"], doc["key"], 1000, "JPY", "card", "JP",
                             card=Card(doc.get("card", "4242424242424242"), 12, 2030, "123"))

    async def _pay(self, call: RouteCall) -> HttpReply:
        assert call.charge is not None
        outcome, replay = await call.host.book.charge(call.charge, call.delay_s)
        state = call.host.state
        state["refs"][outcome.provider_ref] = call.charge.idempotency_key
        state["latest"] = outcome.provider_ref
        call.result = outcome.code
        return _json(200, {"ref": outcome.provider_ref, "code": outcome.code, "replay": replay})

    async def _get(self, call: RouteCall) -> HttpReply:
        key = call.host.state["refs"].get(call.params["ref"])
        found = await call.host.book.lookup(key) if key else None
        if found is None:
            raise RouteError(_json(404, {"error": "no such payment"}), "not_found")
        return _json(200, {"ref": found.provider_ref, "code": found.code})

    async def _latest(self, call: RouteCall) -> HttpReply:
        return _json(200, {"ref": call.host.state["latest"]})


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> _Toy:
    dialect = _Toy()
    monkeypatch.setitem(DIALECTS, "alpha", dialect)
    return dialect


AUTH = {"Authorization": "Bearer ok"}


def test_routes_serve_a_whole_api(toy: _Toy, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as http:
            url = running.endpoints["t-alpha"].url
            async with http.post(f"{url}/pay", json={"key": "k1"}) as r:
                assert r.status == 401  # authentication before anything else
            async with http.post(f"{url}/pay", json={}, headers=AUTH) as r:
                assert r.status == 400 and (await r.json())["error"] == "key missing"
            async with http.post(f"{url}/pay", json={"key": "k1"}, headers=AUTH) as r:
                paid = await r.json()
                assert r.status == 200 and paid["code"] == "approved" and not paid["replay"]
            async with http.get(f"{url}/pay/{paid['ref']}", headers=AUTH) as r:
                assert (await r.json())["code"] == "approved"
            async with http.get(f"{url}/pay/latest", headers=AUTH) as r:
                assert (await r.json())["ref"] == paid["ref"]
            async with http.get(f"{url}/pay/nope", headers=AUTH) as r:
                assert r.status == 404
            async with http.delete(f"{url}/pay", headers=AUTH) as r:
                assert r.status == 404 and (await r.json())["error"] == "no DELETE /pay"
            ledger = running.endpoints["t-alpha"].ledger or ""
            assert [row.idempotency_key for row in read_ledger(ledger)] == ["k1"]
            metrics = await (await http.get(running.metrics_url)).text()
            assert 'operation="charge"' in metrics and 'result="approved"' in metrics

    run(scenario())


def test_faults_apply_per_route_operation(toy: _Toy, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as http:
            url = running.endpoints["t-alpha"].url
            faults = f"{running.admin_url}/admin/providers/t-alpha/faults"
            async with http.post(faults, json={"type": "error_burst", "operations": ["status"],
                                               "error": "rate_limited"}) as r:
                assert r.status == 201
            async with http.post(f"{url}/pay", json={"key": "k2"}, headers=AUTH) as r:
                ref = (await r.json())["ref"]  # charges are not affected
            async with http.get(f"{url}/pay/{ref}", headers=AUTH) as r:
                assert r.status == 429
            await http.delete(faults)
            async with http.post(faults, json={"type": "drop_response"}) as r:
                assert r.status == 201
            with pytest.raises(aiohttp.ClientError):
                async with http.post(f"{url}/pay", json={"key": "k3"}, headers=AUTH) as r:
                    await r.read()
            await http.delete(faults)
            ledger = running.endpoints["t-alpha"].ledger or ""
            assert {row.idempotency_key for row in read_ledger(ledger)} == {"k2", "k3"}

    run(scenario())


def test_fail_first_magic_value(toy: _Toy, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as http:
            url = running.endpoints["t-alpha"].url
            statuses = []
            for _ in range(4):
                async with http.post(f"{url}/pay", json={"key": "k4", "fail": "2:server_error"},
                                     headers=AUTH) as r:
                    statuses.append(r.status)
            assert statuses == [500, 500, 200, 200]

    run(scenario())


def test_fail_first_values() -> None:
    assert parse_fail_first("3") == (3, "server_error")
    assert parse_fail_first("1:rate_limited") == (1, "rate_limited")
    for bad in ("0", "x", "2:teapot", "101"):
        with pytest.raises(ValueError):
            parse_fail_first(bad)
