"""The sampler against real parts: a prometheus_client registry in-process, the same registry
over HTTP on 127.0.0.1, and the real Prometheus server's HTTP API."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paystab.collector.sampler import (
    CounterSource,
    PrometheusApiSource,
    RegistryReader,
    metrics_url_source,
    query_range,
    registry_source,
    run_sampler,
)
from paystab.collector.series import Sample, histogram_quantile
from paystab.exceptions import EnvironmentProblem, InvalidInput
from tests.conftest_anomaly import Exporter, free_port, start_prometheus, wait_for


@pytest.fixture
def exporter() -> Exporter:
    exp = Exporter()
    yield exp
    exp.close()


def _by_provider(samples: list[Sample]) -> dict[str, Sample]:
    return {s.provider: s for s in samples}


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.35)
    assert histogram_quantile(0.5, [(float("inf"), 0.0)]) is None


@pytest.mark.parametrize("via", ["registry", "url"])
def test_deltas_per_interval_exclude_declines(exporter: Exporter, via: str) -> None:
    source = (registry_source(exporter.registry) if via == "registry"
              else metrics_url_source(exporter.url))
    exporter.record("acme", approved=10)
    exporter.inflight.labels("acme").set(3)
    assert source.poll(1000.0) == []  # the first poll only sets the base
    exporter.record("acme", approved=80, declined=15, errors=4, timeouts=1, latency_s=0.12)
    exporter.record("zeta", approved=5)  # first seen now: no sample for zeta yet
    exporter.inflight.labels("acme").set(7)
    exporter.oldest.labels("acme").set(0.8)
    acme = _by_provider(source.poll(1000.5))["acme"]
    assert (acme.attempts, acme.failures, acme.timeouts) == (100, 5, 1)
    assert acme.inflight == 7 and acme.oldest_inflight_age_s == pytest.approx(0.8)
    assert acme.interval_s == pytest.approx(0.5)
    assert 100.0 <= acme.p50_ms <= 150.0 and 100.0 <= acme.p99_ms <= 150.0
    exporter.record("zeta", approved=20, errors=20)
    samples = _by_provider(source.poll(1001.0))
    assert samples["acme"].attempts == 0 and samples["acme"].p95_ms is None
    assert (samples["zeta"].attempts, samples["zeta"].failures) == (40, 20)


def test_counter_reset_counts_from_zero_again(exporter: Exporter) -> None:
    reader = RegistryReader(exporter.registry)
    source = CounterSource(reader)
    exporter.record("acme", approved=500, errors=5)
    source.poll(1.0)
    exporter.record("acme", approved=10)
    assert _by_provider(source.poll(2.0))["acme"].attempts == 10
    restarted = Exporter(serve=False)  # the gateway restarted: counters start over
    restarted.record("acme", approved=30, errors=3)
    reader.registry = restarted.registry
    acme = _by_provider(source.poll(3.0))["acme"]
    assert (acme.attempts, acme.failures) == (33, 3)
    assert acme.p50_ms is not None


def test_unreachable_metrics_url_is_an_environment_problem() -> None:
    source = metrics_url_source(f"http://127.0.0.1:{free_port()}/metrics", timeout_s=0.5)
    with pytest.raises(EnvironmentProblem):
        source.poll(0.0)


def test_run_sampler_polls_until_stopped(exporter: Exporter) -> None:
    got: list[list[Sample]] = []
    stop = threading.Event()
    source = metrics_url_source(exporter.url)

    def feed() -> None:
        while not stop.is_set():
            exporter.record("acme", approved=1)
            time.sleep(0.01)

    threading.Thread(target=feed, daemon=True).start()
    thread = threading.Thread(target=run_sampler, args=(source, 0.1, got.append, stop),
                              daemon=True)
    thread.start()
    wait_for(lambda: sum(s.attempts for batch in got for s in batch) > 5, timeout_s=10)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    with pytest.raises(InvalidInput):
        run_sampler(source, 0.001, got.append, stop)


@pytest.mark.slow
@pytest.mark.prometheus
def test_prometheus_api_source_against_real_prometheus(tmp_path: Path,
                                                        exporter: Exporter) -> None:
    host = exporter.url.split("/")[2]
    proc, url = start_prometheus(tmp_path, [host])
    try:
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                exporter.record("acme", approved=9, declined=2, errors=1, latency_s=0.2)
                exporter.inflight.labels("acme").set(4)
                time.sleep(0.05)

        threading.Thread(target=traffic, daemon=True).start()
        source = PrometheusApiSource(url, window_s=4.0)

        def sampled() -> Sample | None:
            acme = _by_provider(source.poll(time.time())).get("acme")
            return acme if acme is not None and acme.attempts > 0 and acme.failures > 0 else None

        acme = wait_for(sampled, timeout_s=20, every_s=0.5)
        stop.set()
        assert 0.05 <= acme.failures / acme.attempts <= 0.15  # 1 in 12; declines excluded
        assert acme.p95_ms is not None and 150.0 <= acme.p95_ms <= 300.0
        assert acme.inflight == 4
        now = time.time()
        series = query_range(url, 'sum(paystab_provider_attempts_total{provider="acme"})',
                             now - 10, now, 1.0)
        assert series and len(series[0][1]) >= 2
        with pytest.raises(InvalidInput):
            query_range(url, "sum(", now - 10, now, 1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with pytest.raises(EnvironmentProblem):
        PrometheusApiSource(url, window_s=2.0, timeout_s=0.5).poll(time.time())
