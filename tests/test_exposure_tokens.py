"""Bound off loopback, only the customer payment API answers without the token.

``paystab up --host 0.0.0.0 --token T``: the gateway's and the simulators' ``/metrics``
and admin APIs refuse a caller without the token, the payment API still answers, and
the token goes nowhere else — not in the log, not in a file others can read. Everything
is reached over 127.0.0.1 (the listeners are on the wildcard address).
"""

from __future__ import annotations

import asyncio
import stat
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from paystab import httpclient
from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.controller import FailoverController
from paystab.anomaly.webhook import WebhookServer
from paystab.stack.providers import start_providers
from tests.conftest import RunningStack
from tests.conftest_providers import FAST, run, universal_spec

TOKEN = "t0ken-" + uuid.uuid4().hex


async def _status(url: str, token: str | None = None) -> int:
    """The status of GET ``url`` with the sync client, off the event loop serving it."""
    reply = await asyncio.to_thread(httpclient.request, "GET", url, token=token)
    return reply.status


def test_simulator_metrics_need_the_token_off_loopback(tmp_path: Path) -> None:
    async def scenario() -> None:
        running = await start_providers([universal_spec("alpha", latency=FAST)], host="0.0.0.0",
                                        data_dir=tmp_path, token=TOKEN)
        try:
            metrics = running.metrics_url
            assert metrics.startswith("http://127.0.0.1:")
            assert await _status(metrics) == 401
            assert await _status(metrics, "wrong") == 401
            assert await _status(metrics, TOKEN) == 200
            admin = running.admin_url + "/admin/providers"
            assert await _status(admin) == 401
            assert await _status(running.admin_url + "/healthz") == 200
        finally:
            await running.stop()

    run(scenario())


def test_simulator_metrics_stay_open_on_loopback(tmp_path: Path) -> None:
    async def scenario() -> None:
        running = await start_providers([universal_spec("alpha", latency=FAST)],
                                        data_dir=tmp_path, token=TOKEN)
        try:
            assert await _status(running.metrics_url) == 200
            assert await _status(running.admin_url + "/admin/providers") == 401
        finally:
            await running.stop()

    run(scenario())


def test_failover_receiver_metrics_need_the_token_off_loopback() -> None:
    registry = CollectorRegistry()
    controller = FailoverController(GatewayAdmin("http://127.0.0.1:1"), registry=registry)
    for host, open_metrics in (("0.0.0.0", False), ("127.0.0.1", True)):
        server = WebhookServer(controller, host=host, token=TOKEN, registry=registry).start()
        try:
            url = server.url.replace("0.0.0.0", "127.0.0.1") + "/metrics"
            assert httpclient.request("GET", url).status == (200 if open_metrics else 401)
            assert httpclient.request("GET", url, token="wrong").status == \
                (200 if open_metrics else 401)
            assert httpclient.request("GET", url, token=TOKEN).status == 200
        finally:
            server.stop()


def _command_lines_with(secret: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if secret.encode() in cmdline.read_bytes():
                found.append(str(cmdline))
        except OSError:
            pass  # gone meanwhile, or not ours to read
    return found


@pytest.mark.slow
def test_up_off_loopback_guards_everything_but_payments(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTAB_TOKEN", TOKEN)  # as documented: not on the command line
    stack = RunningStack(tmp_path, ["--host", "0.0.0.0"])
    try:
        # No process shows the token in its argv (any local user can read those).
        assert _command_lines_with(TOKEN) == []
        ep = stack.endpoints
        gateway = ep.gateway_url.replace("0.0.0.0", "127.0.0.1").rstrip("/")
        assert httpclient.request("GET", f"{gateway}/metrics").status == 401
        assert httpclient.request("GET", f"{gateway}/metrics", token=TOKEN).status == 200
        assert httpclient.request("GET", f"{gateway}/admin/providers").status == 401
        assert ep.provider_admin_url
        provider_metrics = ep.provider_admin_url.rstrip("/") + "/metrics"
        assert httpclient.request("GET", provider_metrics).status == 401
        assert httpclient.request("GET", provider_metrics, token=TOKEN).status == 200
        paid = httpclient.request(
            "POST", f"{gateway}/v1/payments",
            {"amount": 1999, "currency": "JPY", "method": "card", "country": "JP",
             "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030,
                      "cvc": "123"}},
            headers={"Idempotency-Key": "exposure-1"})
        assert paid.status in (200, 201), paid.body
    finally:
        stack.stop()
    # Only ready files hold the token, and only their owner may read them; no log does.
    holders = [p for p in tmp_path.rglob("*")
               if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert stack.ready_file in holders
    for path in holders:
        assert path.suffix == ".json" and "log" not in path.name, path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.parametrize("dialect", ["charlie", "echo", "kakao"])
def test_a_simulator_without_a_psp_scheme_needs_its_secret_off_loopback(tmp_path: Path, dialect: str) -> None:
    """Dialects whose PSP has no authentication of its own get a random per-provider secret
    off loopback: a caller without it can neither charge nor void (401), the gateway's
    provider client presents it and is served."""
    from paystab.stack.dialects import DIALECTS
    from paystab.stack.dialects.base import Card, ChargeRequest

    async def scenario() -> None:
        spec = universal_spec(dialect, latency=FAST)
        running = await start_providers([spec], host="0.0.0.0", data_dir=tmp_path, token=TOKEN)
        try:
            endpoint = running.endpoints[spec.name]
            assert endpoint.api_key and endpoint.api_key != TOKEN
            codec = DIALECTS[dialect]
            request = ChargeRequest("exposure-key-1", "pay_exposure_1", 1999, "JPY",
                                    "wallet" if dialect == "kakao" else "card", "JP",
                                    None if dialect == "kakao" else Card("4242424242424242", 12, 2030, "123"),
                                    wallet_brand="kakaopay" if dialect == "kakao" else None)
            call = codec.charge_call(request)
            url = endpoint.url.replace("0.0.0.0", "127.0.0.1") + call.path
            for headers, allowed in ((call.headers, False),
                                     ({**call.headers, "Authorization": "Bearer wrong"}, False),
                                     ({**call.headers, "Authorization": f"Bearer {endpoint.api_key}"}, True)):
                reply = await asyncio.to_thread(httpclient.request, call.method, url,
                                                content=call.body or None, headers=headers)
                assert (reply.status != 401) == allowed, (reply.status, reply.body[:200])
            assert running.providers[spec.name].ledger.path.exists()
        finally:
            await running.stop()

    run(scenario())
