"""The one place the OpenTelemetry SDK is configured.

The gateway and the simulators import only ``opentelemetry.trace`` / ``metrics`` (the API).
:func:`setup_telemetry` builds a tracer provider whose exporters are wrapped in
:class:`RedactingSpanExporter`, so a card number that slipped into an attribute, an event or
a status message is masked before it leaves the process. Exporters:

* OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set;
* JSON lines to a file (drills keep their traces next to the report);
* in memory, for tests.

Sampling is decided by the gateway *before* it creates any span (errors always kept,
successes at ``sample_ratio``), so the SDK sampler here is always-on for what it is given.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, Status

from paystab import __version__
from paystab.collector.redact import RedactingFilter, redact, redact_value


def _redact_attributes(attributes: Any) -> dict[str, Any]:
    return {k: redact_value(v) for k, v in (attributes or {}).items()}


def _attributes_clean(attributes: Any) -> bool:
    return all(redact_value(v) == v for v in (attributes or {}).values())


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; hands it the spans with every PAN masked.

    A span with nothing to mask (every span the stack makes: it never puts a card number
    in one) is passed on as it is; only a span that needs masking is copied.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([s if self._is_clean(s) else self._clean(s) for s in spans])

    @staticmethod
    def _is_clean(span: ReadableSpan) -> bool:
        description = span.status.description
        return (redact(span.name) == span.name
                and (not description or redact(description) == description)
                and _attributes_clean(span.attributes)
                and all(_attributes_clean(e.attributes) for e in span.events)
                and all(_attributes_clean(link.attributes) for link in span.links))

    @staticmethod
    def _clean(span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, redact(status.description))
        events = [
            type(e)(e.name, _redact_attributes(e.attributes), e.timestamp) for e in span.events
        ]
        return ReadableSpan(
            name=redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=_redact_attributes(span.attributes),
            events=events,
            links=[Link(link.context, _redact_attributes(link.attributes)) for link in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_JSONL = json.JSONEncoder(default=str)


class JsonlSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = self.path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for s in spans:
            parent = s.parent
            lines.append(_JSONL.encode({
                "name": s.name,
                "trace_id": f"{s.context.trace_id:032x}" if s.context else None,
                "span_id": f"{s.context.span_id:016x}" if s.context else None,
                "parent_span_id": f"{parent.span_id:016x}" if parent else None,
                "kind": s.kind.name,
                "start_time_ns": s.start_time,
                "end_time_ns": s.end_time,
                "status": s.status.status_code.name,
                "attributes": dict(s.attributes or {}),
            }))
        with self._lock:
            self._fh.write("\n".join(lines) + "\n")
            self._fh.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._fh.close()


@dataclass
class Telemetry:
    """What the stack is handed: a tracer (API type), and what to shut down at exit."""

    enabled: bool
    tracer: trace_api.Tracer
    sample_ratio: float
    memory: InMemorySpanExporter | None = None
    meter: metrics_api.Meter | None = None
    _providers: list[Any] = field(default_factory=list)

    def shutdown(self) -> None:
        for provider in self._providers:
            try:
                provider.shutdown()
            except Exception:  # exporters must never take the service down at exit
                logging.getLogger(__name__).exception("telemetry shutdown failed")


def _otlp_traces_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def setup_telemetry(
    service_name: str,
    *,
    enabled: bool = True,
    sample_ratio: float = 0.1,
    jsonl_path: str | Path | None = None,
    in_memory: bool = False,
) -> Telemetry:
    """Configure tracing (and OTLP metrics when an endpoint is set) for one process."""
    if not enabled:
        return Telemetry(False, trace_api.NoOpTracer(), 0.0)
    resource = Resource.create({"service.name": service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource, sampler=ALWAYS_ON)
    memory: InMemorySpanExporter | None = None
    if in_memory:
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(memory)))
    if jsonl_path:
        provider.add_span_processor(
            BatchSpanProcessor(RedactingSpanExporter(JsonlSpanExporter(jsonl_path)))
        )
    providers: list[Any] = [provider]
    meter: metrics_api.Meter | None = None
    if _otlp_traces_endpoint():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(RedactingSpanExporter(OTLPSpanExporter()), schedule_delay_millis=1000)
        )
    if os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        interval_ms = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "5000"))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval_ms)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meter_provider.get_meter("paystab")
        providers.append(meter_provider)
    tracer = provider.get_tracer("paystab", __version__)
    return Telemetry(True, tracer, sample_ratio, memory, meter, providers)


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with PAN redaction on every record. Called from ``main`` only."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
