"""watch's OTLP/HTTP receiver with the real OpenTelemetry SDK exporting spans to it.

A provider fault in the spans is detected and the webhook actuator is called for that
provider; with ``--dry-run`` the same fault is decided and logged but nothing is called.
Fast tests decode protobuf and OTLP JSON with both presets.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.watch.config import config_from_text
from paystab.watch.sources.otlp import OtlpReceiver
from tests.conftest_alerting import wait_for
from tests.watch_support import Recorder, WatchProcess

PROVIDERS = ["psp-a.example", "psp-b.example"]


class SpanTraffic:
    """Client spans per OTel HTTP semconv, exported by the SDK over OTLP/HTTP protobuf."""

    def __init__(self, endpoint: str, rate_per_s: float = 100.0, max_spans: int = 60_000) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint + "/v1/traces"), schedule_delay_millis=200))
        self.tracer = self.provider.get_tracer("shop.checkout")
        self.fail_ratio = dict.fromkeys(PROVIDERS, 0.0)
        self.decline_ratio = dict.fromkeys(PROVIDERS, 0.0)
        self.rate_per_s = rate_per_s
        self.max_spans = max_spans
        self._stop = threading.Event()
        self._rng = random.Random(3)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        sent = 0
        tick = 0.05
        while not self._stop.wait(tick) and sent < self.max_spans:
            now = time.time_ns()
            for name in PROVIDERS:
                for _ in range(round(self.rate_per_s * tick)):
                    roll = self._rng.random()
                    error = ("503" if roll < self.fail_ratio[name] else
                             "402" if roll < self.fail_ratio[name] + self.decline_ratio[name]
                             else None)
                    attrs: dict[str, Any] = {"server.address": name, "http.request.method": "POST"}
                    if error:
                        attrs["error.type"] = error
                        attrs["http.response.status_code"] = int(error)
                    span = self.tracer.start_span("POST", kind=SpanKind.CLIENT, attributes=attrs,
                                                  start_time=now - 40_000_000)
                    if error:
                        span.set_status(Status(StatusCode.ERROR))
                    span.end(end_time=now)
                    sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.provider.shutdown()


def _config(tmp_path: Path, recorder_url: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(f"""\
interval_s: 500ms
providers:
  - {{name: psp-a.example, methods: [card]}}
  - {{name: psp-b.example, methods: [card]}}
sources:
  - kind: otlp
    listen: 127.0.0.1:0
    preset: otel_semconv
detectors:
  failure_rate: {{}}
failover:
  when: [[failure_rate]]
  cooldown_s: 1h
actuators:
  - kind: webhook
    url: {recorder_url}/routes/{{provider}}/{{action}}
admin:
  listen: 127.0.0.1:0
state_file: state.json
decision_log: decisions.jsonl
""")
    return path


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.stop()


def _run_fault(tmp_path: Path, recorder: Recorder, extra: list[str]) -> tuple[WatchProcess,
                                                                              dict[str, Any]]:
    watch = WatchProcess(_config(tmp_path, recorder.url), tmp_path / "decisions.jsonl", extra)
    started = watch.started()
    traffic = SpanTraffic(started["sources_urls"]["otlp"])
    try:
        wait_for(lambda: (tmp_path / "state.json").exists(), 30, "a first saved state")
        wait_for(lambda: _samples_fed(watch) >= 16, 40, "8 healthy rounds through OTLP")
        traffic.decline_ratio["psp-b.example"] = 0.3
        traffic.fail_ratio["psp-a.example"] = 0.4
        fault_at = time.time()
        word = "would_drain" if "--dry-run" in extra else "decision"
        found = watch.wait_entry(lambda e: e.get("event") == word
                                 and e.get("action", "drain") == "drain", 60, word)
        print(f"detection delay through OTLP: {found['time'] - fault_at:.2f} s")
        return watch, found
    finally:
        traffic.stop()


def _samples_fed(watch: WatchProcess) -> int:
    import urllib.error

    started = next((e for e in watch.entries() if e.get("event") == "started"), None)
    if started is None:
        return 0
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(started["admin"] + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return 0
    line = next((x for x in text.splitlines()
                 if x.startswith("paystab_watch_samples_total")), "x 0")
    return int(float(line.split()[-1]))


@pytest.mark.slow
def test_fault_in_otel_spans_drains_by_webhook(tmp_path: Path, recorder: Recorder) -> None:
    watch, drain = _run_fault(tmp_path, recorder, [])
    try:
        assert drain["provider"] == "psp-a.example"
        wait_for(lambda: "/routes/psp-a.example/drain" in recorder.paths(), 20, "the webhook call")
        assert not any("psp-b.example" in p for p in recorder.paths())
    finally:
        watch.stop()


@pytest.mark.slow
def test_dry_run_decides_and_logs_but_calls_nothing(tmp_path: Path, recorder: Recorder) -> None:
    watch, would = _run_fault(tmp_path, recorder, ["--dry-run"])
    try:
        assert would["provider"] == "psp-a.example" and would["dry_run"] is True
        decision = watch.wait_entry(lambda e: e.get("event") == "decision", 10, "the decision")
        assert decision["dry_run"] is True
    finally:
        assert watch.stop() == 0
    assert recorder.calls == []
    assert not any(e.get("event", "").startswith("action_") for e in watch.entries())


# -- fast: decoding and mapping -------------------------------------------------------------
def _receiver(preset: str) -> OtlpReceiver:
    config = config_from_text(f"sources: [{{kind: otlp, listen: '127.0.0.1:0', preset: {preset}}}]")
    receiver = OtlpReceiver(config.sources[0])  # type: ignore[arg-type]
    receiver.start()
    return receiver


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return int(response.status)


def test_paystab_preset_counts_errors_not_declines_from_protobuf() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def span(provider: str, code: str, ms: int) -> Span:
        return Span(name="charge", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=1_000_000_000,
                    end_time_unix_nano=1_000_000_000 + ms * 1_000_000, attributes=[
                        KeyValue(key="paystab.payment.provider", value=AnyValue(string_value=provider)),
                        KeyValue(key="paystab.payment.code", value=AnyValue(string_value=code))])

    spans = [span("alpha", "approved", 20), span("alpha", "declined.insufficient_funds", 30),
             span("alpha", "error.timeout", 2000), span("beta", "approved", 10)]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[
        ScopeSpans(spans=spans)])])
    receiver = _receiver("paystab")
    try:
        assert _post(receiver.url + "/v1/traces", request.SerializeToString(),
                     "application/x-protobuf") == 200
        samples = {s.provider: s for s in receiver.poll(1.0)}
    finally:
        receiver.stop()
    assert samples["alpha"].attempts == 3
    assert samples["alpha"].failures == 1 and samples["alpha"].timeouts == 1
    assert samples["beta"].attempts == 1 and samples["beta"].failures == 0
    # the shared percentile (numpy's linear) of 20, 30 and 2000 ms, not the nearest rank
    assert samples["alpha"].p99_ms == pytest.approx(30.0 + 0.98 * 1970.0)


def test_semconv_preset_reads_otlp_json_and_metrics() -> None:
    spans = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"name": "POST", "kind": 3, "startTimeUnixNano": "1000000000",
         "endTimeUnixNano": "1050000000",
         "attributes": [{"key": "server.address", "value": {"stringValue": "pay.example"}},
                        {"key": "error.type", "value": {"stringValue": "500"}}]},
        {"name": "POST", "kind": 3, "startTimeUnixNano": "1000000000",
         "endTimeUnixNano": "1010000000",
         "attributes": [{"key": "server.address", "value": {"stringValue": "pay.example"}},
                        {"key": "error.type", "value": {"stringValue": "402"}}]},
        {"name": "GET", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [{"key": "server.address", "value": {"stringValue": "pay.example"}}]},
    ]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "http.client.active_requests", "gauge": {"dataPoints": [
            {"asInt": "7", "attributes": [
                {"key": "server.address", "value": {"stringValue": "pay.example"}}]}]}}]}]}]}
    receiver = _receiver("otel_semconv")
    try:
        assert _post(receiver.url + "/v1/traces", json.dumps(spans).encode(),
                     "application/json") == 200
        assert _post(receiver.url + "/v1/metrics", json.dumps(metrics).encode(),
                     "application/json") == 200
        (sample,) = receiver.poll(1.0)
    finally:
        receiver.stop()
    assert (sample.provider, sample.attempts, sample.failures) == ("pay.example", 2, 1)
    assert sample.inflight == 7.0


def test_receiver_that_hears_nothing_is_an_error() -> None:
    config = config_from_text("sources: [{kind: otlp, listen: '127.0.0.1:0', stale_after_s: 1ms}]")
    receiver = OtlpReceiver(config.sources[0])  # type: ignore[arg-type]
    receiver.start()
    try:
        wait_for(lambda: _raises(receiver), 5, "the receiver to call its silence an error")
    finally:
        receiver.stop()


def _raises(receiver: OtlpReceiver) -> bool:
    from paystab.watch.sources import SourceError

    try:
        receiver.poll(0.0)
    except SourceError as exc:
        return "nothing received" in exc.message
    return False


def test_token_required_and_histogram_counts_as_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1.metrics_pb2 import (
        AGGREGATION_TEMPORALITY_CUMULATIVE,
        Histogram,
        HistogramDataPoint,
        Metric,
        ResourceMetrics,
        ScopeMetrics,
    )

    monkeypatch.setenv("WATCH_OTLP_TOKEN", "s3cret")
    config = config_from_text("sources: [{kind: otlp, listen: '127.0.0.1:0', "
                              "token_env: WATCH_OTLP_TOKEN}]")
    receiver = OtlpReceiver(config.sources[0])  # type: ignore[arg-type]
    receiver.start()

    def request(ok: int, failed: int) -> bytes:
        def point(count: int, error: str | None) -> HistogramDataPoint:
            attrs = [KeyValue(key="server.address", value=AnyValue(string_value="pay.example"))]
            if error:
                attrs.append(KeyValue(key="error.type", value=AnyValue(string_value=error)))
            return HistogramDataPoint(count=count, attributes=attrs)

        metric = Metric(name="http.client.request.duration", histogram=Histogram(
            aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE,
            data_points=[point(ok, None), point(failed, "timeout")]))
        return bytes(ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(
            scope_metrics=[ScopeMetrics(metrics=[metric])])]).SerializeToString())

    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(receiver.url + "/v1/metrics", request(100, 1), "application/x-protobuf")
        assert refused.value.code == 401

        def send(body: bytes) -> None:
            req = urllib.request.Request(receiver.url + "/v1/metrics", data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf",
                                                  "Authorization": "Bearer s3cret"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(req, timeout=5) as response:
                assert response.status == 200

        send(request(100, 1))  # the first cumulative point is the base
        send(request(250, 11))
        (sample,) = receiver.poll(1.0)
    finally:
        receiver.stop()
    assert (sample.attempts, sample.failures) == (160, 10)
