"""The blast radius is checked on the address a fault actually contacts.

Two real simulator sets play stack A (described by a ready file / context, allowed) and
stack B (not allowed). Each bypass form — ``NAME@URL``, ``localhost``, ``127.0.0.2``,
``::1`` and a DNS name — tries to reach B while the allow list names only A: every one is
refused (exit 2 from the CLI) and B is left untouched; the same forms aimed at A pass.
Everything listens on loopback; the DNS name is mapped to 127.0.0.1 in-process.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab import httpclient
from paystab.chaos.allow import AllowList
from paystab.chaos.base import FaultContext, FaultSpec, ProviderAddress
from paystab.chaos.proxy import ProxyLatency
from paystab.chaos.session import prepare_faults
from paystab.exceptions import InvalidInput
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.providers import RunningProviders, start_providers
from tests.conftest import require
from tests.conftest_chaos import iptables_available, paystab
from tests.conftest_providers import FAST, universal_spec

TOKEN = "blast-token"


class SimStack:
    """Simulators (one ``card-alpha``) in an event loop of their own thread."""

    def __init__(self, tmp: Path, host: str = "127.0.0.1", token: str | None = None) -> None:
        self.token = token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        spec = universal_spec("alpha", name="card-alpha", latency=FAST)
        self.running: RunningProviders = asyncio.run_coroutine_threadsafe(
            start_providers([spec], host=host, data_dir=tmp, token=token), self.loop
        ).result(30)

    @property
    def admin_url(self) -> str:
        return self.running.admin_url

    @property
    def card_url(self) -> str:
        return self.running.endpoints["card-alpha"].url

    @property
    def card_address(self) -> str:
        return self.card_url.removeprefix("http://")

    def admin_port(self) -> int:
        return int(self.admin_url.rsplit(":", 1)[1])

    def faults(self) -> list[Any]:
        reply = httpclient.request("GET", f"{self.admin_url}/admin/providers/card-alpha/faults",
                                   token=self.token)
        return list(reply.json_object("faults")["faults"])

    def ready_file(self, path: Path) -> Path:
        StackEndpoints("http://127.0.0.1:1", dict(self.running.endpoints),
                       provider_admin_url=self.admin_url, admin_token=self.token).write(path)
        return path

    def context(self) -> FaultContext:
        return FaultContext(providers={"card-alpha": ProviderAddress(self.card_url,
                                                                     self.admin_url)},
                            provider_admin_url=self.admin_url, admin_token=self.token)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def stack_a(tmp_path: Path) -> Iterator[SimStack]:
    stack = SimStack(tmp_path / "a", token=TOKEN)
    yield stack
    stack.stop()


@pytest.fixture
def stack_b(tmp_path: Path) -> Iterator[SimStack]:
    stack = SimStack(tmp_path / "b")
    yield stack
    stack.stop()


@pytest.fixture
def stack_b_dns(monkeypatch: pytest.MonkeyPatch) -> str:
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "stack-b.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return "stack-b.test"


def _hang(target: str, ctx: FaultContext, *allow: str) -> None:
    prepare_faults([FaultSpec("h", "provider.hang", target)], ctx, AllowList.parse(allow))


def test_the_reported_case_exits_2_and_leaves_stack_b_alone(
        tmp_path: Path, stack_a: SimStack, stack_b: SimStack) -> None:
    ready = stack_a.ready_file(tmp_path / "A.json")
    result = paystab("chaos", "inject", "provider.hang", "--target",
                     f"card-alpha@{stack_b.admin_url}", "--allow", stack_a.card_address,
                     "--ready-file", str(ready), "--duration", "1s", state=tmp_path / "state",
                     timeout=60)
    assert result.returncode == 2, result.stderr
    assert "outside the blast radius" in result.stderr
    assert stack_b.card_address in result.stderr  # it names what would have been hit
    assert stack_b.faults() == [] and stack_a.faults() == []


@pytest.mark.parametrize("form", ["name@url", "localhost", "dns"])
def test_every_way_of_writing_stack_b_is_refused(form: str, stack_a: SimStack,
                                                 stack_b: SimStack, stack_b_dns: str) -> None:
    host = {"name@url": "127.0.0.1", "localhost": "localhost", "dns": stack_b_dns}[form]
    target = f"card-alpha@http://{host}:{stack_b.admin_port()}"
    ctx = stack_a.context()
    for allowed in (stack_a.card_address, "provider:card-alpha", "provider:*",
                    f"localhost:{stack_a.card_address.rsplit(':', 1)[1]}"):
        with pytest.raises(InvalidInput, match="outside the blast radius"):
            _hang(target, ctx, allowed)
    # Allowed by stack B's own provider address (as B's admin API lists it): accepted.
    _hang(target, ctx, stack_b.card_address)
    if form == "dns":  # an allow entry with a host name is resolved, then compared
        _hang(target, ctx, f"{stack_b_dns}:{stack_b.card_address.rsplit(':', 1)[1]}")
    assert stack_b.faults() == []


def test_the_same_forms_aimed_at_stack_a_pass(stack_a: SimStack, stack_b_dns: str) -> None:
    ctx = stack_a.context()
    port = stack_a.admin_port()
    for target in ("card-alpha", f"card-alpha@{stack_a.admin_url}",
                   f"card-alpha@http://localhost:{port}", f"card-alpha@http://{stack_b_dns}:{port}"):
        _hang(target, ctx, stack_a.card_address)
    _hang("card-alpha", ctx, "provider:card-alpha")


def test_127_0_0_2_is_not_127_0_0_1(tmp_path: Path, stack_a: SimStack,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Stack B on the wildcard address answers on 127.0.0.2 too: still not stack A.

    (Stack B has a token of its own, given to paystab the way a user would.)"""
    stack_b = SimStack(tmp_path / "b2", host="0.0.0.0", token="stack-b-token")
    monkeypatch.setenv("PAYSTAB_ADMIN_TOKEN", "stack-b-token")
    try:
        target = f"card-alpha@http://127.0.0.2:{stack_b.admin_port()}"
        with pytest.raises(InvalidInput, match="outside the blast radius"):
            _hang(target, stack_a.context(), stack_a.card_address, "provider:card-alpha")
        assert stack_b.faults() == []
    finally:
        stack_b.stop()
    allow = AllowList.parse(["127.0.0.1:9001"])
    assert not allow.permits_name("127.0.0.2:9001")
    assert allow.permits_name("127.0.0.1:9001")


def test_ipv6_loopback_is_its_own_address(tmp_path: Path, stack_a: SimStack,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import require

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        has_ipv6 = True
    except OSError:
        has_ipv6 = False
    require("an IPv6 loopback (::1)", has_ipv6, "enable IPv6 on lo")
    stack_b = SimStack(tmp_path / "b6", host="::1", token="stack-b-token")  # admin on ::1 too
    monkeypatch.setenv("PAYSTAB_ADMIN_TOKEN", "stack-b-token")
    try:
        assert stack_b.admin_url.startswith("http://[::1]:")
        target = f"card-alpha@http://[::1]:{stack_b.admin_port()}"
        with pytest.raises(InvalidInput, match="outside the blast radius"):
            _hang(target, stack_a.context(), stack_a.card_address, "provider:card-alpha")
        port = stack_b.card_address.rsplit(":", 1)[1]
        with pytest.raises(InvalidInput):  # localhost means 127.0.0.1, not ::1
            _hang(target, stack_a.context(), f"localhost:{port}")
        _hang(target, stack_a.context(), f"[::1]:{port}")
        assert stack_b.faults() == []
    finally:
        stack_b.stop()


def test_allow_list_compares_addresses_not_spellings() -> None:
    allow = AllowList.parse(["localhost:9001", "[::1]:9002", "psp.example:443"])
    assert allow.permits_name("127.0.0.1:9001")
    assert allow.permits_name("[::ffff:127.0.0.1]:9001")  # the same IPv4 address
    assert not allow.permits_name("[::1]:9001")
    assert allow.permits_name("[0:0:0:0:0:0:0:1]:9002")
    # A name a fault gives with a host name in it (what was typed) never permits.
    assert not allow.permits_name("psp.example:443")
    assert not allow.permits_name("localhost:9001")


class _ToxiproxyApi:
    """A Toxiproxy-API listing: one proxy ``alpha`` in front of ``upstream``; it also
    answers ``/admin/providers`` like a simulator admin API listing ``card-alpha`` there.
    ``auth`` records the Authorization header of every request."""

    def __init__(self, upstream: str) -> None:
        listing = json.dumps({"alpha": {"name": "alpha", "listen": "127.0.0.1:1",
                                        "upstream": upstream, "enabled": True}}).encode()
        providers = json.dumps({"providers": [{"name": "card-alpha",
                                               "url": f"http://{upstream}"}]}).encode()
        self.auth: list[str] = []
        auth = self.auth

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth.append(self.headers.get("Authorization", ""))
                body = providers if self.path.startswith("/admin/") else listing
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_proxy_on_another_api_is_named_by_what_it_fronts(stack_a: SimStack) -> None:
    ours, theirs = _ToxiproxyApi(stack_a.card_address), _ToxiproxyApi("127.0.0.1:7")
    try:
        ctx = stack_a.context()
        ctx.proxy_api_url = ours.url

        def latency(target: str, *allow: str) -> None:
            prepare_faults([FaultSpec("l", "proxy.latency", target, {"latency": 0.1})], ctx,
                           AllowList.parse(allow))

        latency("alpha", "proxy:alpha")
        latency("alpha", "provider:card-alpha")  # its upstream is A's card-alpha
        for allowed in ("proxy:alpha", "provider:card-alpha", stack_a.card_address):
            with pytest.raises(InvalidInput, match="outside the blast radius"):
                latency(f"alpha@{theirs.url}", allowed)
        latency(f"alpha@{theirs.url}", "127.0.0.1:7")
        fault = ProxyLatency.prepare(FaultSpec("l", "proxy.latency", f"alpha@{theirs.url}",
                                               {"latency": 0.1}), ctx)
        assert "proxy:alpha" not in fault.touches().names
    finally:
        ours.close()
        theirs.close()


def test_iptables_touches_only_the_resolved_address(stack_b_dns: str) -> None:
    require("iptables", iptables_available(), "root and iptables")
    from paystab.chaos.iptables import Partition

    params = {"action": "reject", "direction": "in", "protocol": "tcp"}
    for typed in (f"{stack_b_dns}:9001", "localhost:9001"):
        fault = Partition.prepare(FaultSpec("p", "iptables.partition", typed, params),
                                  FaultContext())
        assert fault.touches().names == (f"{fault.where['address']}:9001",)
        with pytest.raises(InvalidInput):
            prepare_faults([FaultSpec("p", "iptables.partition", typed, params)],
                           FaultContext(), AllowList.parse(["127.0.0.2:9001"]))


def test_a_ready_files_token_goes_only_to_its_own_admin_api(
        stack_a: SimStack, monkeypatch: pytest.MonkeyPatch) -> None:
    other = _ToxiproxyApi("127.0.0.1:7")
    try:
        monkeypatch.delenv("PAYSTAB_ADMIN_TOKEN", raising=False)
        fault = prepare_faults([FaultSpec("h", "provider.hang", f"card-alpha@{other.url}")],
                               stack_a.context(), AllowList.parse(["127.0.0.1:7"]))[0]
        assert other.auth == [""] and fault.token is None  # type: ignore[attr-defined]
        monkeypatch.setenv("PAYSTAB_ADMIN_TOKEN", "set-by-the-user")
        prepare_faults([FaultSpec("h", "provider.hang", f"card-alpha@{other.url}")],
                       stack_a.context(), AllowList.parse(["127.0.0.1:7"]))
        assert other.auth[-1] == "Bearer set-by-the-user"
        # ... while stack A's own admin gets stack A's token (it requires it).
        prepare_faults([FaultSpec("h", "provider.hang", f"card-alpha@{stack_a.admin_url}")],
                       stack_a.context(), AllowList.parse([stack_a.card_address]))
        monkeypatch.setenv("PAYSTAB_PROXY_TOKEN", "proxy-token")
        prepare_faults([FaultSpec("l", "proxy.latency", f"alpha@{other.url}", {"latency": 0.1})],
                       FaultContext(), AllowList.parse(["127.0.0.1:7"]))
        assert other.auth[-1] == "Bearer proxy-token"
        assert TOKEN not in other.auth and f"Bearer {TOKEN}" not in other.auth
    finally:
        other.close()
