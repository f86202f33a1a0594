"""No card number leaves the process: redaction of text, spans and logs (property-tested)."""

from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace

from paystab.cards import luhn_checksum_ok as _luhn
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


# -- property tests: a PAN is masked at any boundary ------------------------------------

def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if _luhn(body + d))


pans = st.integers(12, 18).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n)).map(_luhn_complete)
separators = st.sampled_from([" ", "-", "  ", " - ", "--"])
# Text around a PAN: letters, punctuation, separators and other numbers, but no digit
# touching the PAN itself (a PAN glued to more digits is just a longer number).
surroundings = st.text(st.sampled_from(list("ab xyz/:=,.;()[]{}\"'\n\t-") + list("0123456789")), max_size=30)


@st.composite
def formatted(draw: st.DrawFn) -> tuple[str, str, str, str]:
    pan = draw(pans)
    cuts = sorted(draw(st.sets(st.integers(1, len(pan) - 1), max_size=5)))
    parts = [pan[a:b] for a, b in zip([0, *cuts], [*cuts, len(pan)], strict=True)]
    text = parts[0] + "".join(draw(separators) + p for p in parts[1:])
    prefix = draw(surroundings)
    suffix = draw(surroundings)
    if prefix and prefix[-1].isdigit():
        prefix += draw(st.sampled_from([" ", "-", "/", "x", " 12/30 "]))  # not glued to the PAN
    if suffix and suffix[0].isdigit():
        suffix = draw(st.sampled_from([" ", "-", "/", "x"])) + suffix
    return pan, prefix, text, suffix


def _digits_only(text: str) -> str:
    return text.replace(" ", "").replace("-", "")


@settings(max_examples=200, deadline=None)
@given(formatted())
def test_a_pan_with_any_grouping_between_any_text_is_masked(case: tuple[str, str, str, str]) -> None:
    pan, prefix, text, suffix = case
    out = redact(prefix + text + suffix)
    # The surroundings may hold the same digits inside a longer number: those may stay.
    assert _digits_only(out).count(pan) <= _digits_only(prefix + "|" + suffix).count(pan)
    assert "[PAN ****" in out
    assert contains_pan(prefix + text + suffix)


@settings(max_examples=150, deadline=None)
@given(pans, st.sampled_from([" 12/30", "-1", " 1", "-12-30", " exp 12/30", ".", ",7", "\n4"]),
       st.sampled_from(["", "card ", "12 ", "x", "1-"]))
def test_a_pan_followed_by_a_separator_and_digits_is_masked(pan: str, suffix: str, prefix: str) -> None:
    out = redact(prefix + pan + suffix)
    assert pan not in out and out.count("[PAN ****") >= 1


@settings(max_examples=150, deadline=None)
@given(st.text("0123456789", min_size=1, max_size=12), st.sampled_from(["", " ", "-", "abc "]))
def test_fewer_than_thirteen_digits_are_never_masked(digits: str, prefix: str) -> None:
    assert redact(prefix + digits) == prefix + digits


@settings(max_examples=150, deadline=None)
@given(st.integers(12, 18).flatmap(lambda n: st.text("0123456789", min_size=n + 1, max_size=n + 1)))
def test_a_lone_luhn_invalid_number_is_left_alone(digits: str) -> None:
    if _luhn(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    assert redact(f"order {digits} ok") == f"order {digits} ok"


def test_the_reported_misses_are_masked() -> None:
    assert redact("4242424242424242 12/30") == "[PAN ****4242] 12/30"
    assert redact("4242424242424242-1") == "[PAN ****4242]-1"
