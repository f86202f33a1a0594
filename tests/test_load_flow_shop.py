"""``paystab load --flow`` and ``paystab load -f`` against a stand-in shop that is not paystab.

The shop (tests/shop_standin.py) has its own API: ``POST /api/checkout`` answering
``{"state": "succeeded"}``, and an order → pay → poll flow. Each run is a real ``paystab
load`` subprocess (Locust gevent-patches the process it runs in) at a small open-model rate.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_load import run_paystab
from tests.shop_standin import DECLINE_CARDS, Shop, ShopServer

ONE_STEP = """\
flow:
  name: shop-checkout
  steps:
    - name: checkout
      path: /api/checkout
      headers: {X-Request-Id: "{{ key }}"}
      json: {amount: "{{ amount }}", currency: "{{ currency }}", card: "{{ card }}",
             customer: "{{ customer }}"}
      classify:
        - {status: 200, path: $.state, equals: succeeded, outcome: approved}
        - {status: 200, path: $.state, equals: declined, outcome: declined}
"""

ORDER_PAY_POLL = """\
flow:
  name: shop-order
  steps:
    - name: order
      path: /api/orders
      json: {amount: "{{ amount }}", currency: "{{ currency }}"}
      extract: {order_id: $.order.id}
    - name: pay
      path: /api/orders/{{ order_id }}/pay
      headers: {Idempotency-Key: "{{ key }}"}
      json: {card: "{{ card }}"}
      classify:
        - {status: 202, path: $.state, equals: processing, outcome: continue}
    - name: status
      method: GET
      path: /api/orders/{{ order_id }}
      classify:
        - {status: 200, path: $.state, equals: succeeded, outcome: approved}
        - {status: 200, path: $.state, equals: declined, outcome: declined}
        - {status: 200, path: $.state, in: [created, processing], outcome: pending}
      poll: {while: [pending], max_attempts: 5, interval: 20ms}
"""

LOCUSTFILE = """\
from locust import FastHttpUser, between, task


class Shopper(FastHttpUser):
    wait_time = between(5, 10)  # replaced by paystab's arrivals

    @task
    def buy(self):
        self.client.post("{path}", json={{"card": "4242424242424242", "amount": 100}})
"""


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = ShopServer()
    yield server.start()
    server.stop()


def _load(shop: Shop, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, object]]:
    out = tmp_path / "result.json"
    proc = run_paystab("load", "--target", shop.url, "--rps", "40", "--duration", "2",
                       "--no-live", "--json", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, data


@pytest.mark.slow
def test_a_one_step_flow_classifies_the_shops_own_answers(shop: Shop, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(ONE_STEP)
    mix = tmp_path / "mix.yaml"
    mix.write_text("decline_share: 0.5\n")  # many decline test cards among the card payments
    rc, output, data = _load(shop, tmp_path, "--flow", str(flow), "--mix", str(mix),
                             "--csv", str(tmp_path / "c.csv"), "--threshold", "failure_rate<0.01")
    assert rc == 0, output
    summary = data["summary"]
    assert isinstance(summary, dict)
    assert summary["requests"] == 80 == len(shop.checkouts)
    assert summary["failed"] == 0 and summary["pending"] == 0
    assert summary["declined"] > 0 and summary["approved"] > 0  # the mix's decline cards
    declined_sent = sum(c["card"] in DECLINE_CARDS for c in shop.checkouts)
    assert summary["declined"] == declined_sent
    keys = [c["key"] for c in shop.checkouts]
    assert len(set(keys)) == len(keys)
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert {r["status"] for r in rows} == {"succeeded", "declined"}
    assert not any("4242424242424242" in line for line in (tmp_path / "c.csv").open())


@pytest.mark.slow
def test_order_pay_poll_carries_the_order_id_and_polls_until_final(shop: Shop,
                                                                   tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(ORDER_PAY_POLL)
    rc, output, data = _load(shop, tmp_path, "--flow", str(flow))
    assert rc == 0, output
    summary = data["summary"]
    assert isinstance(summary, dict)
    assert summary["requests"] == 80 == len(shop.orders)
    assert summary["approved"] + summary["declined"] == 80, summary
    assert shop.unknown_order_pays == 0  # every pay went to the order its step created
    assert len(shop.pay_keys) == 80 and len(set(shop.pay_keys)) == 80
    assert shop.polls == 160  # processing on the first poll, final on the second
    assert all(o["state"] in ("succeeded", "declined") for o in shop.orders.values())


def test_a_bad_flow_file_exits_2_naming_file_line_and_field(shop: Shop, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(ONE_STEP.replace("outcome: declined", "outcome: refused"))
    proc = run_paystab("load", "--target", shop.url, "--flow", str(flow), "--no-live")
    assert proc.returncode == 2
    assert f"{flow}:11: flow.steps[0].classify[1].outcome" in proc.stderr
    assert not shop.checkouts  # checked before any load


@pytest.mark.slow
def test_a_users_locustfile_runs_paced_with_thresholds_judged(shop: Shop, tmp_path: Path) -> None:
    good = tmp_path / "locustfile.py"
    good.write_text(LOCUSTFILE.format(path="/api/checkout"))
    rc, output, data = _load(shop, tmp_path, "-f", str(good), "-u", "8", "-r", "8", "--headless",
                             "--threshold", "failure_rate<0.01", "--threshold", "p(99)<2000")
    assert rc == 0, output
    summary = data["summary"]
    assert isinstance(summary, dict)
    # open model: 40/s for 2 s whatever the file's wait_time says
    assert summary["requests"] == 80 == len(shop.checkouts) and summary["approved"] == 80

    broken = tmp_path / "broken.py"
    broken.write_text(LOCUSTFILE.format(path="/api/no-such-page"))
    rc, output, data = _load(shop, tmp_path, "-f", str(broken), "-t", "2",
                             "--threshold", "failure_rate<0.01")
    assert rc == 1, output
    assert "failure_rate<0.01" in output
    summary = data["summary"]
    assert isinstance(summary, dict) and summary["failed"] == summary["requests"] == 80


HOOKED_LOCUSTFILE = """\
import json
from locust import FastHttpUser, events, task

LOG = {log!r}


def note(kind, **extra):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({{"kind": kind, **extra}}) + "\\n")


@events.init.add_listener
def on_init(environment, runner, **kwargs):
    note("init", runner=type(runner).__name__, host=environment.host)


@events.test_start.add_listener
def on_start(environment, **kwargs):
    note("test_start")


@events.request.add_listener
def on_request(request_type, name, response_time, exception, **kwargs):
    note("request", name=name, failed=exception is not None)


@events.test_stop.add_listener
def on_stop(environment, **kwargs):
    note("test_stop")


class Shopper(FastHttpUser):
    @task
    def buy(self):
        self.client.post("/api/checkout", json={{"card": "4242424242424242", "amount": 100}})
"""


def test_a_locustfiles_module_level_event_hooks_fire_as_in_locust(shop: Shop, tmp_path: Path) -> None:
    """``@events.init`` / ``test_start`` / ``request`` / ``test_stop`` listeners a locustfile
    registers at import fire under ``paystab load -f``, once each (request: per request)."""
    log = tmp_path / "hooks.jsonl"
    user_file = tmp_path / "locustfile.py"
    user_file.write_text(HOOKED_LOCUSTFILE.format(log=str(log)))
    rc, output, data = _load(shop, tmp_path, "-f", str(user_file), "-u", "4")
    assert rc == 0, output
    notes = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [n["kind"] for n in notes]
    assert kinds.count("init") == 1 and kinds.count("test_start") == 1, kinds
    assert kinds.count("test_stop") == 1, kinds
    init = next(n for n in notes if n["kind"] == "init")
    assert init["runner"] == "LocalRunner" and init["host"] == shop.url
    summary = data["summary"]
    assert isinstance(summary, dict)
    requests = [n for n in notes if n["kind"] == "request"]
    assert len(requests) == summary["requests"] == len(shop.checkouts) > 0
    assert not any(n["failed"] for n in requests)
