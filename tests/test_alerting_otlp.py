"""OTLP for real: the gateway exports spans and metrics to an OTLP/HTTP receiver.

A reference stack runs with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at :class:`OtlpSink`
(aiohttp on 127.0.0.1, decoding the protobuf with ``opentelemetry-proto``) and every
success sampled. Checked: one server span per payment with the ``paystab.payment.*``
attributes, one client span per provider attempt under it (``http.request.resend_count``,
``error.type`` on failed attempts), no card number anywhere in what left the process, and
the gateway's metrics arriving as OTLP metrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningStack
from tests.conftest_alerting import OtlpSink, wait_for
from tests.payments import CARDS, run_payments

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
PAYMENTS = 60


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    else:
        yield str(value)


@pytest.fixture
def otlp_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningStack, OtlpSink]]:
    sink = OtlpSink()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    config = tmp_path / "stack.yml"
    config.write_text("trace_sample_ratio: 1.0\n")
    (tmp_path / "stack").mkdir()
    stack = RunningStack(tmp_path / "stack", ["--config", str(config)])
    try:
        yield stack, sink
    finally:
        stack.stop()
        sink.close()


@pytest.mark.slow
def test_gateway_exports_spans_and_metrics_over_otlp(otlp_stack: tuple[RunningStack, OtlpSink]) -> None:
    stack, sink = otlp_stack
    answers = run_payments(stack.endpoints.gateway_url, PAYMENTS, seed=7, concurrency=8)
    paid = {a.body["id"]: a for a in answers if a.status == 200 and "id" in a.body}
    assert len(paid) >= PAYMENTS * 0.9, [a.status for a in answers]

    def server_spans() -> dict[str, dict[str, Any]]:
        return {s["attributes"].get("paystab.payment.id"): s for s in list(sink.spans)
                if s["kind"] == SPAN_KIND_SERVER}

    wait_for(lambda: set(paid) <= set(server_spans()) or None, 20,
             "a server span for every payment")
    servers = server_spans()
    spans = list(sink.spans)
    for payment_id, answer in paid.items():
        span = servers[payment_id]
        attributes = span["attributes"]
        assert attributes["paystab.payment.method"] == answer.request["method"]
        assert attributes["paystab.payment.currency"] == answer.request["currency"]
        assert attributes["paystab.payment.outcome"] == answer.body["status"]
        assert attributes["paystab.payment.code"] == answer.body["code"]
        assert span["resource"].get("service.name", "").startswith("paystab")
        clients = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT
                   and s["trace_id"] == span["trace_id"]]
        assert len(clients) == answer.body["attempts"], payment_id
        assert all(c["parent_span_id"] == span["span_id"] for c in clients)
        assert sorted(c["attributes"]["http.request.resend_count"] for c in clients) == \
            list(range(len(clients)))
        for client in clients:
            assert client["attributes"]["paystab.payment.provider"]
            if client["attributes"]["paystab.payment.code"].startswith("error."):
                assert client["attributes"]["error.type"].startswith("error.")

    # no card number left the process: neither the test cards nor any Luhn-valid 13-19 digits
    # (ids are hex and may hold long digit runs by chance: scan what spans say, not ids)
    said = [{k: s[k] for k in ("name", "attributes", "events", "status_message", "resource")}
            for s in spans]
    every_string = " ".join(_strings(said))
    for card in CARDS:
        assert card not in every_string
    for digits in re.findall(r"\d{13,19}", every_string):
        assert not _luhn_ok(digits), f"a Luhn-valid number was exported: {digits[:4]}…"

    def exported_payments() -> float:
        points = [p for m in list(sink.metrics) if m["name"] == "paystab.payments"
                  for p in m["points"]]
        # cumulative counters: the latest export of each (method, outcome) holds the total
        latest: dict[tuple[str, str], float] = {}
        for p in points:
            latest[(p["attributes"]["method"], p["attributes"]["outcome"])] = p["value"]
        return sum(latest.values())

    wait_for(lambda: exported_payments() >= len(paid) or None, 15,
             "the OTLP payment counter to reach the payments made")
    names = {m["name"] for m in sink.metrics}
    assert {"paystab.payments", "paystab.provider.attempts", "paystab.provider.health_score",
            "paystab.provider.oldest_inflight_age"} <= names
