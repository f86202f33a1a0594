"""No card number leaves the process: redaction of text, spans and logs."""

from __future__ import annotations

import logging

from opentelemetry import trace

from paystab.collector.redact import RedactingFilter, contains_pan, redact
from paystab.collector.telemetry import setup_telemetry


def test_luhn_valid_runs_are_masked_and_others_left_alone() -> None:
    assert redact("pan 4242424242424242 ok") == "pan [PAN ****4242] ok"
    assert redact("4242 4242 4242 4242") == "[PAN ****4242]"
    assert redact("4242-4242-4242-4242") == "[PAN ****4242]"
    assert redact("3530111333300000") == "[PAN ****0000]"
    assert redact("order 1234567890123 ts 1700000000000") == "order 1234567890123 ts 1700000000000"
    assert not contains_pan("amount 1999 JPY")


def test_spans_are_redacted_before_export() -> None:
    telemetry = setup_telemetry("t", in_memory=True)
    tracer = telemetry.tracer
    span = tracer.start_span("charge 4000000000009995", attributes={"note": "card 4242424242424242",
                                                                     "digits": 4242424242424242})
    span.add_event("echo", {"body": '{"number":"4100000000000019"}'})
    span.set_status(trace.Status(trace.StatusCode.ERROR, "declined 4000000000000002"))
    span.end()
    assert telemetry.memory is not None
    (exported,) = telemetry.memory.get_finished_spans()
    text = repr((exported.name, dict(exported.attributes or {}), [dict(e.attributes or {}) for e in exported.events],
                 exported.status.description))
    for pan in ("4242424242424242", "4000000000009995", "4100000000000019", "4000000000000002"):
        assert pan not in text
    assert "****4242" in text


def test_log_records_are_redacted(caplog: object) -> None:
    logger = logging.getLogger("paystab.test.redact")
    record = logger.makeRecord("x", logging.INFO, __file__, 1, "card %s declined", ("4242424242424242",), None)
    RedactingFilter().filter(record)
    assert "4242424242424242" not in record.getMessage()


def test_link_attributes_are_redacted_and_clean_spans_pass_through_as_they_are() -> None:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from paystab.collector.telemetry import RedactingSpanExporter

    telemetry = setup_telemetry("t", in_memory=True)
    other = telemetry.tracer.start_span("other")
    other.end()
    link = trace.Link(other.get_span_context(), {"why": "retry of 4242424242424242"})
    dirty = telemetry.tracer.start_span("linked", links=[link])
    dirty.end()
    clean = telemetry.tracer.start_span("clean", attributes={"paystab.payment.id": "pay_0123456789abcdef"})
    clean.end()
    assert telemetry.memory is not None
    exported = {s.name: s for s in telemetry.memory.get_finished_spans()}
    assert "4242424242424242" not in repr([dict(x.attributes or {}) for x in exported["linked"].links])
    assert "****4242" in repr([dict(x.attributes or {}) for x in exported["linked"].links])

    inner = InMemorySpanExporter()
    assert isinstance(clean, ReadableSpan)
    assert RedactingSpanExporter(inner).export([clean]) is SpanExportResult.SUCCESS
    assert inner.get_finished_spans()[0] is clean  # nothing to mask: not copied
