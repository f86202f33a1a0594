"""The simulator asks the dialect to authenticate every payment-endpoint call first.

``Dialect.authenticate`` is the hook each PSP's own scheme plugs into; these tests pin
what the simulator does around it: the default accepts, a rejection is sent as the
dialect rendered it, and a rejected call reaches neither the fault set nor the ledger.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from paystab.stack.dialects import DIALECTS
from paystab.stack.dialects.alpha import AlphaDialect
from paystab.stack.dialects.base import HttpReply, InboundCall
from paystab.stack.providers import read_ledger
from tests.conftest_providers import DialectClient, card_charge, run, simulators, universal_spec


class _KeyedAlpha(AlphaDialect):
    """Alpha that wants ``Authorization: Bearer sk_test`` and records what it was shown."""

    def __init__(self) -> None:
        self.seen: list[InboundCall] = []

    def authenticate(self, call: InboundCall) -> HttpReply | None:
        self.seen.append(call)
        if call.headers.get("authorization") == "Bearer sk_test":
            return None
        return HttpReply(401, "application/json", b'{"error":{"type":"invalid_request_error"}}')


def test_default_dialects_accept_every_caller(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            client = DialectClient(session, running.endpoints["t-alpha"])
            assert (await client.charge(card_charge("k1"))).code == "approved"

    run(scenario())


def test_rejected_call_never_reaches_the_book(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    keyed = _KeyedAlpha()
    monkeypatch.setitem(DIALECTS, "alpha", keyed)

    async def scenario() -> None:
        async with simulators([universal_spec("alpha")], tmp_path) as running, \
                aiohttp.ClientSession() as session:
            endpoint = running.endpoints["t-alpha"]
            client = DialectClient(session, endpoint)
            call = keyed.charge_call(card_charge("k2"))
            status, _, body = await client.send(call)
            assert status == 401 and b"invalid_request_error" in body
            void = keyed.void_call("k2", None)
            assert (await client.send(void))[0] == 401
            assert [c.operation for c in keyed.seen] == ["charge", "void"]
            assert keyed.seen[0].body == call.body and keyed.seen[0].secret is None
            assert keyed.seen[1].path == void.path
            assert endpoint.ledger is not None
            assert read_ledger(endpoint.ledger) == []
            authed = {**call.headers, "Authorization": "Bearer sk_test"}
            status, _, _ = await client.send(type(call)(call.method, call.path, authed, call.body))
            assert status == 200
            assert [r.idempotency_key for r in read_ledger(endpoint.ledger)] == ["k2"]
            metrics = await (await session.get(running.metrics_url)).text()
            assert 'result="unauthenticated"' in metrics

    run(scenario())
