"""Checkout flows without a network: templates, JSON paths, classification, extraction, and
file:line:field errors for bad flow files. (Runs through the engine: test_load_flow_shop.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paystab.exceptions import InvalidInput
from paystab.loadtest.flow import PAYSTAB_PAYMENT_FLOW, flow_from_json, load_flow, load_flow_text
from paystab.loadtest.flow_run import CompiledFlow, CompiledStep
from paystab.loadtest.flow_template import ABSENT, JsonBody, TemplateError, Text, lookup, parse_path
from paystab.loadtest.mix import DECLINE_TEST_CARDS, PaymentFactory, PaymentMix

TWO_STEP = """\
flow:
  name: shop-order
  values: {channel: web}
  steps:
    - name: order
      path: /api/orders
      json: {amount: "{{ amount }}", ref: "o-{{ seq }}", tags: ["{{ channel }}", 1]}
      extract: {order_id: $.order.id}
    - name: pay
      path: /api/orders/{{ order_id }}/pay
      headers: {Idempotency-Key: "{{ key }}"}
      json: {card: "{{ card }}"}
      classify:
        - {status: 2xx, path: $.state, equals: succeeded, outcome: approved, code: $.reason}
        - {status: [200, 202], path: $.state, in: [declined, refused], outcome: declined}
        - {status: 202, path: $.state, exists: true, outcome: pending}
      poll: {while: [pending], max_attempts: 3, interval: 10ms}
"""


def _flow() -> CompiledFlow:
    return CompiledFlow(load_flow_text(TWO_STEP, "two.yaml"), PaymentFactory(PaymentMix(), 7))


def test_templates_copy_values_and_keep_json_types() -> None:
    body = JsonBody({"amount": "{{ amount }}", "ref": "o-{{ seq }}", "n": [1, "{{ x }}"],
                     "plain": "no holes", "quote": 'a"b'})
    out = json.loads(body.render({"amount": 1999, "seq": 4, "x": 'he said "hi"'}))
    assert out == {"amount": 1999, "ref": "o-4", "n": [1, 'he said "hi"'], "plain": "no holes",
                   "quote": 'a"b'}
    assert Text("/api/{{ id }}/pay").render({"id": "ord_9"}) == "/api/ord_9/pay"
    for bad in ("{{ a + b }}", "{{ __import__('os') }}", "{{ a.b }}", "x }}"):
        with pytest.raises(TemplateError):
            Text(bad)


def test_values_from_answers_cannot_break_the_request_line_or_add_headers() -> None:
    flow = CompiledFlow(load_flow_text(
        "flow:\n  values: {id: x}\n  steps:\n    - name: s\n      method: GET\n      path: /o/{{ id }}\n"
        "      headers: {X-Ref: '{{ id }}'}\n", "f.yaml"), PaymentFactory(PaymentMix(), 1))
    request = flow.steps[0].request({"id": "a b\r\nEvil: 1"}, "", "h")
    assert request.startswith(b"GET /o/a%20b%0D%0AEvil%3A%201 HTTP/1.1\r\n")
    assert b"X-Ref: a bEvil: 1\r\n" in request and b"\r\nEvil" not in request


def test_json_paths_walk_fields_and_indexes_and_report_absence() -> None:
    doc = {"order": {"id": "o1", "lines": [{"sku": "a"}, {"sku": "b"}]}, "x-y": 1}
    assert lookup(doc, parse_path("$.order.lines[1].sku")) == "b"
    assert lookup(doc, parse_path('$["x-y"]')) == 1
    assert lookup(doc, parse_path("$.order.lines[5]")) is ABSENT
    assert lookup(doc, parse_path("$.order.id.more")) is ABSENT
    assert lookup(doc, parse_path("$")) == doc
    for bad in ("order.id", "$.a..b", "$[x]"):
        with pytest.raises(TemplateError):
            parse_path(bad)


def test_answers_are_classified_by_status_and_json_path_and_values_extracted() -> None:
    flow = _flow()
    values, method, currency = flow.values(3, "run-0-3")
    assert values["key"] == "run-0-3" and values["channel"] == "web" and method and currency
    order, pay = flow.steps
    request = order.request(values, "/shop", "h:1")
    head, body = request.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /shop/api/orders HTTP/1.1\r\nHost: h:1\r\n")
    assert json.loads(body)["amount"] == values["amount"]
    assert f"Content-Length: {len(body)}".encode() in head

    assert order.judge(201, b'{"order":{"id":"ord_7"}}', values).outcome == "continue"
    assert values["order_id"] == "ord_7"
    assert pay.request(values, "", "h").startswith(b"POST /api/orders/ord_7/pay HTTP/1.1")
    assert b"Idempotency-Key: run-0-3\r\n" in pay.request(values, "", "h")

    judged = pay.judge(200, b'{"state":"succeeded","reason":"ok"}', values)
    assert (judged.outcome, judged.status, judged.code) == ("approved", "succeeded", "ok")
    assert pay.judge(202, b'{"state":"refused"}', values).outcome == "declined"
    assert pay.judge(202, b'{"state":"processing"}', values).outcome == "pending"
    assert pay.judge(503, b"", values) == ("failed", "http_503", "", True)  # retried
    assert pay.judge(429, b"", values).retryable
    assert pay.judge(404, b"{}", values) == ("failed", "http_404", "", False)
    assert pay.judge(402, b"", values).outcome == "declined"
    assert pay.judge(200, b"not json", values).outcome == "approved"  # last step, 2xx
    assert pay.poll_max == 3 and pay.poll_while == {"pending"}
    # an answer that moves on but lacks the value to extract is a failed checkout
    assert order.judge(201, b'{"order":{}}', {}) == ("failed", "missing_order_id", "", False)


def test_paystab_payment_is_a_flow_that_judges_like_the_built_in_checkout() -> None:
    flow = CompiledFlow(flow_from_json(PAYSTAB_PAYMENT_FLOW), PaymentFactory(PaymentMix(), 1))
    step: CompiledStep = flow.steps[0]
    body = b'{"id":"p","status":"declined","code":"declined.fraud"}'
    assert step.judge(200, body, {})[:3] == ("declined", "declined", "declined.fraud")
    assert step.judge(200, b'{"status":"pending","code":"pending"}', {}).outcome == "pending"
    # the cards come from the seeded mix: a decline card is sent with what it should yield
    seen = {flow.values(seq, "k")[0]["card"] for seq in range(400)}
    assert seen & set(DECLINE_TEST_CARDS) and "4242424242424242" in seen


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("flow:\n  steps:\n    - name: pay\n      path: /p\n      json: {c: '{{ crad }}'}\n",
     5, "flow.steps[0].json", "unknown template value"),
    ("flow:\n  steps:\n    - name: pay\n      path: /p\n      classify:\n"
     "        - {path: $.s, equals: ok, outcome: approvd}\n",
     6, "flow.steps[0].classify[0].outcome", "approved"),
    ("flow:\n  steps:\n    - name: pay\n      path: /p\n      retries: 3\n",
     5, "flow.steps[0].retries", "unknown field"),
    ("flow:\n  steps:\n    - name: pay\n", 3, "flow.steps[0]", "missing required field 'path'"),
    ("flow:\n  steps:\n    - name: pay\n      path: /p\n      extract: {x: state}\n",
     5, "flow.steps[0].extract.x", "JSON path"),
    ("flow:\n  steps:\n    - name: pay\n      path: /p\n      poll: {interval: 2 parsecs}\n",
     5, "flow.steps[0].poll.interval", "duration"),
    ("flow:\n  steps:\n    - name: a\n      path: /{{ later }}\n    - name: b\n      path: /b\n"
     "      extract: {later: $.x}\n", 4, "flow.steps[0].path", "later"),
    ("flow:\n  steps: []\n", 2, "flow.steps", "at least 1"),
    ("flow:\n  steps:\n    - name: s\n      path: /p\n      headers: {Host: x}\n",
     5, "flow.steps[0].headers", "Host"),
    ("flow:\n  steps:\n    - name: s\n      path: api/p\n", 4, "flow.steps[0].path",
     "starting with /"),
])
def test_bad_flow_files_name_file_line_and_field(text: str, line: int, field: str,
                                                 words: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_flow(path)
    error = caught.value
    assert (error.source, error.line, error.field) == (str(path), line, field)
    assert words in str(error)
    assert int(error.exit_code) == 2
