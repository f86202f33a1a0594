"""OTLP/HTTP receiver source: traces and metrics in, per-provider samples out.

Listens for ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf or JSON, gzip or not) and
answers the empty ``Export*ServiceResponse`` the spec asks for. Each **client span** is one
attempt: its provider is an attribute, its latency ``end - start``, and it failed when the
error attribute is set and is not a customer decline. Presets:

* ``paystab`` — paystab's own spans: ``paystab.payment.provider``; failed when
  ``paystab.payment.code`` starts with ``error.`` (declines are ``declined.*``); metrics
  ``paystab.provider.oldest_inflight_age`` and ``paystab.provider.inflight`` (gauges) and
  ``paystab.provider.attempts`` (``outcome``, ``error_type``).
* ``otel_semconv`` — OpenTelemetry HTTP client conventions: ``server.address``; failed when
  ``error.type`` is set and is not a 4xx status (a 402 decline is the customer's);
  metrics ``http.client.request.duration`` (histogram: its count is attempts) and
  ``http.client.active_requests``.

Counts come from metric points when a provider's attempts arrive as metrics, else from
spans (never both: the same attempt would count twice). Metrics win because spans are often
sampled — paystab's gateway keeps every failed attempt's span but only a share of the
successes, so span counts would overstate its failure ratio; spans still give latency.
``poll`` hands out what arrived since the previous poll;
nothing at all for ``stale_after_s`` is a :class:`SourceError`. Parsing is one pass over the
attributes of each span, in the request thread; the aggregate is a few numbers per provider.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paystab.collector.series import Sample
from paystab.exceptions import EnvironmentProblem
from paystab.net import is_loopback_host
from paystab.stats_math import percentile
from paystab.watch.config import OtlpSource
from paystab.watch.sources import SourceError

MAX_BODY = 32 * 1024 * 1024
_CLIENT = 3  # SpanKind.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class SpanMapping:
    provider: str
    error: str
    decline: re.Pattern[str] | None  # error values that are customer declines
    error_prefix: str | None  # the error attribute must start with this to be a failure
    timeout: re.Pattern[str]
    age_metric: str | None
    inflight_metric: str | None
    attempts_metric: str  # a Sum (paystab) or a Histogram (semconv)
    metric_failed: tuple[str, str] | None  # (attribute, value) marking failed points


def mapping_for(config: OtlpSource) -> SpanMapping:
    if config.preset == "paystab":
        base = SpanMapping("paystab.payment.provider", "paystab.payment.code", None, "error.",
                           re.compile("timeout"), "paystab.provider.oldest_inflight_age",
                           "paystab.provider.inflight", "paystab.provider.attempts",
                           ("outcome", "error"))
    else:
        base = SpanMapping("server.address", "error.type", re.compile(r"^4\d\d$"), None,
                           re.compile("(?i)timeout"), None, "http.client.active_requests",
                           "http.client.request.duration", None)
    return SpanMapping(
        config.provider_attribute or base.provider, config.error_attribute or base.error,
        re.compile(config.decline_pattern) if config.decline_pattern else base.decline,
        base.error_prefix, base.timeout, base.age_metric, base.inflight_metric,
        base.attempts_metric, base.metric_failed)


@dataclass
class _Bucket:
    attempts: int = 0
    failures: int = 0
    timeouts: int = 0
    latencies_s: list[float] = field(default_factory=list)
    metric_attempts: float = 0.0
    metric_failures: float = 0.0
    metric_timeouts: float = 0.0


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Aggregator:
    """Spans and metric points of one interval, per provider (thread-safe)."""

    def __init__(self, mapping: SpanMapping) -> None:
        self.mapping = mapping
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._gauges: dict[str, dict[str, float]] = {}  # provider -> {inflight, age}
        self._cumulative: dict[tuple[str, str, bool], float] = {}
        self._metric_providers: set[str] = set()  # providers whose attempts come as metrics
        self.last_data_at: float | None = None
        self.newest_data_s: float = 0.0  # unix s of the newest span end / point
        self.spans_total = 0

    # -- traces ---------------------------------------------------------------------------
    def add_spans(self, request: Any) -> int:
        m = self.mapping
        wanted = {m.provider, m.error}
        rows: list[tuple[str, float, str | None]] = []
        newest = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if span.kind != _CLIENT:
                        continue
                    provider = error = None
                    for kv in span.attributes:
                        if kv.key in wanted:
                            v = _any_value(kv.value)
                            if kv.key == m.provider:
                                provider = v
                            else:
                                error = v
                    if provider is None:
                        continue
                    end = span.end_time_unix_nano
                    newest = max(newest, end)
                    rows.append((str(provider), (end - span.start_time_unix_nano) / 1e9,
                                 None if error is None else str(error)))
        with self._lock:
            for provider, latency_s, error in rows:
                b = self._buckets.get(provider)
                if b is None:
                    b = self._buckets[provider] = _Bucket()
                b.attempts += 1
                b.latencies_s.append(latency_s)
                if error is not None and self._failed(error):
                    b.failures += 1
                    if m.timeout.search(error):
                        b.timeouts += 1
            if rows:
                self._seen(newest / 1e9)
            self.spans_total += len(rows)
        return len(rows)

    def _failed(self, error: str) -> bool:
        m = self.mapping
        if m.error_prefix is not None and not error.startswith(m.error_prefix):
            return False
        return not (m.decline is not None and m.decline.search(error))

    def _seen(self, data_time_s: float) -> None:
        self.last_data_at = time.time()
        self.newest_data_s = max(self.newest_data_s, data_time_s)

    # -- metrics ----------------------------------------------------------------------------
    def add_metrics(self, request: Any) -> int:
        m = self.mapping
        points = 0
        with self._lock:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        points += self._metric(metric, m)
            if points:
                self._seen(time.time())
        return points

    def _metric(self, metric: Any, m: SpanMapping) -> int:
        name = metric.name
        kind = metric.WhichOneof("data")
        if name in (m.age_metric, m.inflight_metric) and kind in ("gauge", "sum"):
            key = "age" if name == m.age_metric else "inflight"
            for point in getattr(metric, kind).data_points:
                provider = self._attr(point.attributes, m.provider)
                if provider is not None:
                    value = point.as_double if point.HasField("as_double") else float(point.as_int)
                    self._gauges.setdefault(provider, {})[key] = value
            return len(getattr(metric, kind).data_points)
        if name != m.attempts_metric or kind not in ("sum", "histogram"):
            return 0
        data = getattr(metric, kind)
        cumulative = data.aggregation_temporality == 2
        for point in data.data_points:
            provider = self._attr(point.attributes, m.provider)
            if provider is None:
                continue
            if kind == "histogram":
                value = float(point.count)
                error = self._attr(point.attributes, m.error)
                failed = error is not None and self._failed(error)
                timed_out = failed and error is not None and bool(m.timeout.search(error))
            else:
                value = point.as_double if point.HasField("as_double") else float(point.as_int)
                flag = m.metric_failed
                failed = flag is not None and self._attr(point.attributes, flag[0]) == flag[1]
                timed_out = failed and self._attr(point.attributes, "error_type") == "timeout"
            series = (provider, repr(sorted((kv.key, str(_any_value(kv.value)))
                                            for kv in point.attributes)), failed)
            if cumulative:
                before = self._cumulative.get(series)
                self._cumulative[series] = value
                value = 0.0 if before is None else (value if value < before else value - before)
            self._metric_providers.add(provider)
            b = self._buckets.setdefault(provider, _Bucket())
            b.metric_attempts += value
            if failed:
                b.metric_failures += value
            if timed_out:
                b.metric_timeouts += value
        return len(data.data_points)

    @staticmethod
    def _attr(attributes: Iterable[Any], key: str) -> str | None:
        for kv in attributes:
            if kv.key == key:
                return str(_any_value(kv.value))
        return None

    # -- out --------------------------------------------------------------------------------
    def drain(self, now: float, interval_s: float) -> list[Sample]:
        with self._lock:
            buckets, self._buckets = self._buckets, {}
            gauges = {p: dict(g) for p, g in self._gauges.items()}
            metric_providers = set(self._metric_providers)
        out = []
        for provider in sorted(set(buckets) | set(gauges)):
            b = buckets.get(provider, _Bucket())
            g = gauges.get(provider, {})
            if provider in metric_providers:
                attempts, failures = round(b.metric_attempts), round(b.metric_failures)
                timeouts = round(b.metric_timeouts)
            else:
                attempts, failures, timeouts = b.attempts, b.failures, b.timeouts
            q: list[float | None] = [None, None, None]
            if b.latencies_s:
                ordered = sorted(b.latencies_s)
                q = [1000.0 * (percentile(ordered, pct) or 0.0) for pct in (50.0, 95.0, 99.0)]
            out.append(Sample(time=now, provider=provider, attempts=attempts, failures=failures,
                              timeouts=timeouts, p50_ms=q[0], p95_ms=q[1], p99_ms=q[2],
                              inflight=g.get("inflight", 0.0),
                              oldest_inflight_age_s=g.get("age", 0.0), interval_s=interval_s))
        return out


def decode(body: bytes, content_type: str, kind: str) -> Any:
    """An ``Export{Trace,Metrics}ServiceRequest`` from protobuf or OTLP JSON bytes."""
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    message = (trace_service_pb2.ExportTraceServiceRequest() if kind == "traces"
               else metrics_service_pb2.ExportMetricsServiceRequest())
    try:
        if "json" in content_type:
            json_format.ParseDict(json.loads(body), message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except (DecodeError, json_format.ParseError, ValueError) as exc:
        raise ValueError(f"cannot decode the OTLP {kind} request: {exc}") from None
    return message


class OtlpReceiver:
    """See the module docstring."""

    def __init__(self, config: OtlpSource) -> None:
        self.config = config
        self.name = config.name
        self.lag_s = 0.0
        self.aggregator = Aggregator(mapping_for(config))
        self.token = os.environ.get(config.token_env) if config.token_env else None
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._started_at = time.time()
        self._last_poll: float | None = None

    def start(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not is_loopback_host(host) and not self.token:
            raise EnvironmentProblem(f"source {self.name}: listening on {host} needs a token",
                                     hint="set token_env and export that variable")
        try:
            server = ThreadingHTTPServer((host, int(port)), _handler(self))
        except OSError as exc:
            raise EnvironmentProblem(f"source {self.name}: cannot listen on "
                                     f"{self.config.listen}: {exc}") from None
        server.daemon_threads = True
        self._server = server
        bound = server.server_address
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
        threading.Thread(target=server.serve_forever, name=f"otlp-{self.name}",
                         daemon=True).start()
        self._started_at = time.time()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def poll(self, now: float) -> list[Sample]:
        interval = 0.0 if self._last_poll is None else max(0.0, now - self._last_poll)
        self._last_poll = now
        agg = self.aggregator
        last = agg.last_data_at if agg.last_data_at is not None else self._started_at
        if time.time() - last > self.config.stale_after_s:
            what = "nothing" if agg.last_data_at is None else "nothing new"
            raise SourceError(
                f"source {self.name}: {what} received on {self.url or self.config.listen} for "
                f"over {self.config.stale_after_s:g}s",
                hint="point the exporter (OTEL_EXPORTER_OTLP_ENDPOINT) at this address")
        self.lag_s = max(0.0, time.time() - agg.newest_data_s) if agg.newest_data_s else 0.0
        return agg.drain(now, interval)


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            kind = {"/v1/traces": "traces", "/v1/metrics": "metrics"}.get(self.path.split("?")[0])
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY + 1))
            if kind is None:
                self._answer(404, b'{"message":"not found"}', "application/json")
                return
            if receiver.token and self.headers.get("Authorization") != f"Bearer {receiver.token}":
                self._answer(401, b'{"message":"bearer token required"}', "application/json")
                return
            if length > MAX_BODY:
                self._answer(413, b'{"message":"too large"}', "application/json")
                return
            content_type = self.headers.get("Content-Type", "application/x-protobuf")
            try:
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                message = decode(body, content_type, kind)
            except (ValueError, OSError, EOFError) as exc:
                self._answer(400, json.dumps({"message": str(exc)[:300]}).encode(),
                             "application/json")
                return
            agg = receiver.aggregator
            if kind == "traces":
                agg.add_spans(message)
            else:
                agg.add_metrics(message)
            if "json" in content_type:
                self._answer(200, b"{}", "application/json")
            else:
                self._answer(200, b"", "application/x-protobuf")

    return Handler
