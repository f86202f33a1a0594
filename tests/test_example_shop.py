"""The example shop (examples/shop/) on its own: its API, its SDKs, its switch, its table.

One shop process (``python -m shop``, as a user runs it) against paystab's stripe and adyen
simulators over HTTPS with their local CA, and a real PostgreSQL: orders are paid through
the official Stripe SDK (card-alpha, primary) and Adyen SDK (card-bravo) and land in the
orders table with the PSP's reference; the failover switch moves payments; a PSP that hangs
is left within the request for the next one; a charge whose answer was lost is voided, not
charged twice (the example stack file's own ledgers section finds no defect); the shop's own
metric names are what the stack file queries, and no card number is stored or logged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from paystab.children import forget, spawn
from paystab.stack.catalog import CARD_BRANDS, LatencyModel, ProviderSpec
from paystab.stack.providers import read_ledger
from tests.conftest_alerting import need_binary
from tests.conftest_postgres import PostgresServer, postgres_server  # noqa: F401 (fixture)
from tests.psp_sim_thread import SimThread

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
APPROVE, INSUFFICIENT = "4242424242424242", "4000000000009995"
FAST = LatencyModel(median_ms=5.0, sigma=0.1, max_ms=20.0)
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Shop:
    url: str
    metrics_url: str
    database_url: str
    sims: SimThread
    log_path: Path
    env: dict[str, str]
    pid: int = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=15) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def order(self, amount: int = 1999, currency: str = "JPY") -> str:
        status, doc = self.call("POST", "/api/orders", {"amount": amount, "currency": currency})
        assert status == 201 and doc["state"] == "created", doc
        return str(doc["id"])

    def pay(self, order_id: str, number: str = APPROVE) -> tuple[int, dict[str, Any]]:
        return self.call("POST", f"/api/orders/{order_id}/pay", {
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})

    def switch(self, psp: str, enabled: bool) -> tuple[int, dict[str, Any]]:
        return self.call("PUT", f"/internal/psp/{psp}", {"enabled": enabled, "reason": "test"})

    def metrics(self) -> str:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                self.metrics_url, timeout=5) as reply:
            return str(reply.read().decode())

    def metric(self, line_start: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {line_start}")

    def row(self, order_id: str) -> dict[str, Any]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            found = conn.execute("SELECT * FROM orders WHERE reference = %s", (order_id,)).fetchone()
        assert found is not None
        return dict(found)

    def ledger(self, psp: str) -> list[Any]:
        assert self.sims.running is not None
        return [r for r in read_ledger(self.sims.running.endpoints[psp].ledger)]

    def fault(self, psp: str, body: dict[str, Any]) -> Callable[[], None]:
        assert self.sims.running is not None
        provider = self.sims.running.providers[psp]
        fault = self.sims.call(lambda: provider.faults.add(body, time.monotonic()))
        return lambda: self.sims.call(lambda: provider.faults.remove(fault.id))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory,
         postgres_server: PostgresServer) -> Iterator[Shop]:  # noqa: F811
    pytest.importorskip("stripe") if os.environ.get("CI") != "true" else __import__("stripe")
    pytest.importorskip("Adyen") if os.environ.get("CI") != "true" else __import__("Adyen")
    specs = [ProviderSpec("card-alpha", "stripe", ("card",), card_brands=CARD_BRANDS,
                          decline_mix={}, latency=FAST),
             ProviderSpec("card-bravo", "adyen", ("card",), card_brands=CARD_BRANDS,
                          decline_mix={}, latency=FAST)]
    workdir = tmp_path_factory.mktemp("shop")
    with SimThread(specs, workdir / "sims") as sims:
        assert sims.running is not None
        alpha, bravo = sims.running.endpoints["card-alpha"], sims.running.endpoints["card-bravo"]
        assert alpha.url.startswith("https://") and alpha.ca_file  # the SDKs trust the local CA
        port, metrics_port = _free_port(), _free_port()
        database_url = postgres_server.create_database("shop")
        env = dict(os.environ, SHOP_LISTEN=f"127.0.0.1:{port}",
                   SHOP_METRICS_LISTEN=f"127.0.0.1:{metrics_port}", SHOP_DATABASE_URL=database_url,
                   SHOP_PSP_TIMEOUT_S="0.5", NO_PROXY="127.0.0.1,localhost",
                   STRIPE_API_BASE=alpha.url, STRIPE_API_KEY=alpha.api_key or "",
                   STRIPE_CA_FILE=alpha.ca_file or "",
                   ADYEN_CHECKOUT_URL=f"{bravo.url}/v71", ADYEN_API_KEY=bravo.api_key or "",
                   ADYEN_CA_FILE=bravo.ca_file or "")
        log_path = workdir / "shop.log"
        with log_path.open("wb") as log:  # a child that dies with the test process
            proc = spawn([sys.executable, "-m", "shop"], what="example shop", cwd=SHOP, env=env,
                         death_signal=signal.SIGTERM, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
        handle = Shop(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics",
                      database_url, sims, log_path, env, proc.pid)
        try:
            def up() -> bool:
                assert proc.poll() is None, log_path.read_text(errors="replace")
                try:
                    return handle.call("GET", "/healthz")[0] == 200
                except OSError:
                    return False
            wait_for(up, 30, "the shop to answer /healthz")
            yield handle
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            forget(proc)


@pytest.mark.slow
def test_orders_are_paid_through_the_stripe_sdk_and_land_in_the_orders_table(shop: Shop) -> None:
    order_id = shop.order(1999, "JPY")
    status, doc = shop.pay(order_id)
    assert status == 200 and doc["state"] == "paid" and doc["psp"] == "card-alpha", doc
    row = shop.row(order_id)
    assert (row["state"], row["amount_minor"], row["currency"], row["psp"]) == ("paid", 1999, "JPY",
                                                                              "card-alpha")
    assert row["psp_reference"] == doc["psp_reference"] and row["psp_reference"].startswith("pi_")
    (charge,) = [r for r in shop.ledger("card-alpha") if r.payment_id == order_id]
    assert (charge.status, charge.amount, charge.currency, charge.provider_ref) == (
        "captured", 1999, "JPY", row["psp_reference"])
    # paying again answers the order as it is: the customer is not charged twice
    assert shop.pay(order_id) == (200, doc)
    assert shop.call("GET", f"/api/orders/{order_id}") == (200, {k: v for k, v in doc.items()})
    assert len([r for r in shop.ledger("card-alpha") if r.payment_id == order_id]) == 1
    # a decline is the customer's answer, with Stripe's reason, and no second PSP is tried
    declined_id = shop.order(500, "USD")
    status, doc = shop.pay(declined_id, INSUFFICIENT)
    assert (status, doc["state"], doc["reason"], doc["psp"]) == (402, "declined",
                                                                 "insufficient_funds", "card-alpha")
    assert shop.row(declined_id)["decline_code"] == "insufficient_funds"
    assert not [r for r in shop.ledger("card-bravo") if r.payment_id == declined_id]
    assert shop.call("POST", "/api/orders", {"amount": 0, "currency": "JPY"})[0] == 400
    assert shop.call("POST", f"/api/orders/{shop.order()}/pay", {"card": {"number": "42"}})[0] == 400
    assert shop.call("POST", "/api/orders/ord_none/pay", {"card": {
        "number": APPROVE, "exp_month": 1, "exp_year": 2030, "cvc": "1"}})[0] == 404


@pytest.mark.slow
def test_the_switch_moves_payments_to_adyen_and_back(shop: Shop) -> None:
    assert shop.switch("card-alpha", False) == (200, {"name": "card-alpha", "enabled": False})
    try:
        status, listing = shop.call("GET", "/internal/psp")
        assert [(p["name"], p["enabled"]) for p in listing["psps"]] == [("card-alpha", False),
                                                                      ("card-bravo", True)]
        assert shop.metric('shop_psp_enabled{psp="card-alpha"}') == 0.0
        order_id = shop.order(1250, "EUR")
        status, doc = shop.pay(order_id)
        assert status == 200 and doc["psp"] == "card-bravo" and len(doc["psp_reference"]) == 16
        (charge,) = [r for r in shop.ledger("card-bravo") if r.payment_id == order_id]
        assert (charge.status, charge.amount, charge.provider_ref) == ("captured", 1250,
                                                                        doc["psp_reference"])
        assert shop.call("PUT", "/internal/psp/card-zulu", {"enabled": False})[0] == 404
        assert shop.call("PUT", "/internal/psp/card-alpha", {"enabled": "no"})[0] == 400
    finally:
        assert shop.switch("card-alpha", True)[0] == 200
    assert shop.pay(shop.order())[1]["psp"] == "card-alpha"


@pytest.mark.slow
def test_a_hanging_psp_is_left_within_the_request_and_shows_in_the_metrics(shop: Shop) -> None:
    timeouts = shop.metric('shop_psp_requests_total{outcome="timeout",psp="card-alpha"}')
    clear = shop.fault("card-alpha", {"type": "hang"})
    try:
        order_id = shop.order(3000, "JPY")
        answer: dict[str, Any] = {}
        paying = threading.Thread(target=lambda: answer.update(reply=shop.pay(order_id)))
        paying.start()
        # the stuck call is visible before any timeout completes it
        wait_for(lambda: shop.metric('shop_psp_oldest_inflight_seconds{psp="card-alpha"}') > 0.1,
                 10, "the oldest in-flight age to grow")
        assert shop.metric('shop_psp_inflight_requests{psp="card-alpha"}') >= 1
        paying.join(15)
        status, doc = answer["reply"]
        assert status == 200 and doc["psp"] == "card-bravo", doc  # the customer was paid
        assert shop.metric('shop_psp_requests_total{outcome="timeout",psp="card-alpha"}') == timeouts + 1
    finally:
        clear()
    # the in-doubt call is checked once card-alpha answers again: nothing was charged there
    wait_for(lambda: shop.metric('shop_psp_in_doubt_payments{psp="card-alpha"}') == 0, 20,
             "the late-success check to finish")
    assert not [r for r in shop.ledger("card-alpha") if r.payment_id == order_id]


@pytest.mark.slow
def test_a_charge_whose_answer_was_lost_is_voided_and_reconciles(shop: Shop) -> None:
    from paystab.ledgers.reconcile import reconcile_ledgers
    from paystab.stackfile.load import load_stack

    clear = shop.fault("card-alpha", {"type": "drop_response"})  # charged, answer lost
    try:
        order_id = shop.order(4200, "JPY")
        status, doc = shop.pay(order_id)
        assert status == 200 and doc["psp"] == "card-bravo", doc
    finally:
        clear()
    # card-alpha charged too; the shop refunds that late success (Stripe search by order id)
    wait_for(lambda: [r.status for r in shop.ledger("card-alpha") if r.payment_id == order_id]
             == ["refunded"], 20, "the card-alpha charge to be refunded")
    # the example stack file's own ledgers section, against this shop's table and simulators
    environ = dict(os.environ, SHOP_PORT="1", SHOP_METRICS_PORT="2",
                   SHOP_DATABASE_URL=shop.database_url, SHOP_PROMETHEUS_URL="http://127.0.0.1:3")
    loaded = load_stack(SHOP / "stack.yaml", environ)
    assert loaded.spec.ledgers is not None and shop.sims.running is not None
    books = {name: e.ledger for name, e in shop.sims.running.endpoints.items()}
    result = reconcile_ledgers(loaded.spec.ledgers, loaded.base_dir, books)
    assert (result.double_charges, result.lost_payments, result.orphans) == (0, 0, 0), result.findings


@pytest.mark.slow
def test_the_shops_own_metric_names_are_what_the_stack_file_queries(shop: Shop) -> None:
    text = shop.metrics()
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            shop.url + "/metrics", timeout=5) as reply:  # also on the API port
        assert b"shop_psp_requests_total" in reply.read()
    for name in ("shop_psp_requests_total", "shop_psp_request_seconds_bucket",
                 "shop_psp_inflight_requests", "shop_psp_oldest_inflight_seconds",
                 "shop_psp_enabled", "shop_psp_in_doubt_payments", "shop_orders_total",
                 "shop_checkout_seconds_bucket", "shop_event_loop_lag_seconds"):
        assert f"\n{name}{{" in text or f"\n{name} " in text, name
    for psp in ("card-alpha", "card-bravo"):  # every label set exists before any traffic
        for outcome in ("approved", "declined", "error", "timeout"):
            assert f'shop_psp_requests_total{{outcome="{outcome}",psp="{psp}"}}' in text
    stack = (SHOP / "stack.yaml").read_text()
    for query_name in ("shop_psp_requests_total", "shop_psp_request_seconds_bucket",
                       "shop_psp_inflight_requests", "shop_psp_oldest_inflight_seconds",
                       "shop_event_loop_lag_seconds"):
        assert query_name in stack
    promtool = need_binary("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_a_stalled_shop_process_shows_in_its_loop_lag(shop: Shop) -> None:
    """The whole process stopped (as a starved host stops it) for 0.6 s: right after, the
    loop-lag gauge says so (the stack file's loop_lag query, which keeps the drill from
    reading a stalled host as a hung PSP), and it falls back once the loop runs on time."""
    wait_for(lambda: shop.metric("shop_event_loop_lag_seconds") < 0.1, 10, "a calm loop")
    os.kill(shop.pid, signal.SIGSTOP)
    try:
        time.sleep(0.6)
    finally:
        os.kill(shop.pid, signal.SIGCONT)
    assert shop.metric("shop_event_loop_lag_seconds") >= 0.5
    wait_for(lambda: shop.metric("shop_event_loop_lag_seconds") < 0.1, 10,
             "the lag to fall once the loop is on time")


@pytest.mark.slow
def test_with_an_admin_token_the_switch_wants_it(shop: Shop, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in shop.env.items() if k != "SHOP_METRICS_LISTEN"}
    env.update(SHOP_LISTEN=f"127.0.0.1:{port}", SHOP_ADMIN_TOKEN="s3cret-token")
    with (tmp_path / "shop.log").open("wb") as log:
        proc = spawn([sys.executable, "-m", "shop"], what="example shop", cwd=SHOP, env=env,
                     death_signal=signal.SIGTERM, stdout=log, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL)
    other = Shop(f"http://127.0.0.1:{port}", "", shop.database_url, shop.sims, tmp_path / "shop.log", env)

    def put(headers: dict[str, str]) -> int:
        request = urllib.request.Request(other.url + "/internal/psp/card-alpha", method="PUT",
                                         data=b'{"enabled": true}', headers=headers)
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "shop.log").read_text(errors="replace")
            try:
                return other.call("GET", "/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, 30, "the second shop")
        assert put({}) == 401
        assert put({"Authorization": "Bearer wrong"}) == 401
        assert put({"Authorization": "Bearer s3cret-token"}) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        forget(proc)
    # off loopback without a token, the shop refuses to start
    refused = subprocess.run([sys.executable, "-m", "shop"], cwd=SHOP, capture_output=True, text=True,
                             timeout=60, env={**env, "SHOP_LISTEN": "0.0.0.0:1", "SHOP_ADMIN_TOKEN": ""})
    assert refused.returncode == 2 and "SHOP_ADMIN_TOKEN" in refused.stderr


@pytest.mark.slow
def test_no_card_number_is_stored_or_logged(shop: Shop) -> None:
    import psycopg

    shop.pay(shop.order(), INSUFFICIENT)
    with psycopg.connect(shop.database_url) as conn:
        dump = json.dumps(conn.execute("SELECT * FROM orders").fetchall(), default=str)
    log = shop.log_path.read_text(errors="replace")
    for pan in (APPROVE, INSUFFICIENT):
        assert pan not in dump and pan not in log


def test_the_stack_file_validates_and_names_what_it_needs_from_the_environment() -> None:
    env = dict(os.environ, SHOP_PORT="8080", SHOP_METRICS_PORT="9464",
               SHOP_DATABASE_URL="postgresql://shop@127.0.0.1:5432/shop",
               SHOP_PROMETHEUS_URL="http://127.0.0.1:9090")
    command = [sys.executable, "-m", "paystab", "stack", "validate", str(SHOP / "stack.yaml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "card-alpha (stripe), card-bravo (adyen)" in done.stdout
    for name in ("SHOP_PORT", "SHOP_PROMETHEUS_URL"):
        env.pop(name)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "stack.yaml:" in done.stderr and "SHOP_PORT is not set" in done.stderr
    assert "SHOP_PROMETHEUS_URL is not set" in done.stderr and "Traceback" not in done.stderr
