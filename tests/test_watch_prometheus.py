"""watch with real parts: Debian's Prometheus scraping a stand-in stack with OTel names.

A provider fault is detected from Prometheus' HTTP API through the ``otel_http_client``
preset and the webhook actuator is called for that provider only (customer declines on the
other provider are not failures); SIGKILL and a restart keep the decision; a query that
matches nothing is an error the user sees.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.alerting import runtime
from paystab.watch.config import config_from_text
from paystab.watch.sources import SourceError
from paystab.watch.sources.prometheus import PromqlSource
from tests.conftest_alerting import need_binary, prom_query, wait_for
from tests.watch_support import Recorder, StandInStack, WatchProcess, get_json

PROVIDERS = ["psp-a.example", "psp-b.example"]


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_binary("prometheus", "prometheus")
    stack = StandInStack(PROVIDERS, rate_per_s=150.0)
    recorder = Recorder()
    prometheus = None
    try:
        prometheus = runtime.start_prometheus([f"shop={stack.url}/metrics"], tmp_path / "prom",
                                              scrape_interval_s=1, evaluation_interval_s=1)
        wait_for(lambda: prom_query(prometheus.url, "http_client_request_duration_seconds_count"),
                 30, "Prometheus to scrape the stand-in stack")
        yield {"stack": stack, "recorder": recorder, "prometheus": prometheus}
    finally:
        if prometheus is not None:
            prometheus.stop()
        recorder.stop()
        stack.stop()


def _config(tmp_path: Path, prometheus_url: str, recorder_url: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(f"""\
interval_s: 500ms
providers:
  - {{name: psp-a.example, methods: [card]}}
  - {{name: psp-b.example, methods: [card]}}
sources:
  - kind: prometheus
    url: {prometheus_url}
    preset: otel_http_client
    window_s: 5s
detectors:
  failure_rate: {{}}
failover:
  when: [[failure_rate]]
  cooldown_s: 1h
actuators:
  - kind: webhook
    url: {recorder_url}/flags/{{provider}}
    method: PUT
    body: '{{{{"enabled": {{enabled}}, "reason": "{{reason}}"}}}}'
admin:
  listen: 127.0.0.1:0
state_file: state.json
decision_log: decisions.jsonl
""")
    return path


@pytest.mark.prometheus
@pytest.mark.slow
def test_fault_seen_through_prometheus_drains_by_webhook_and_survives_sigkill(
        tmp_path: Path, monitored: dict[str, Any]) -> None:
    stack, recorder = monitored["stack"], monitored["recorder"]
    config = _config(tmp_path, monitored["prometheus"].url, recorder.url)
    log = tmp_path / "decisions.jsonl"
    watch = WatchProcess(config, log)
    try:
        watch.started()
        # healthy rounds first: the detector learns both providers
        wait_for(lambda: len([e for e in watch.entries() if e.get("event") == "source_error"]) == 0
                 and (tmp_path / "state.json").exists(), 30, "a first saved state")
        stack.decline_ratio["psp-b.example"] = 0.3  # declines: never a provider failure
        stack.fail_ratio["psp-a.example"] = 0.4
        fault_at = time.time()
        drain = watch.wait_entry(lambda e: e.get("event") == "decision"
                                 and e.get("action") == "drain", 60, "a drain decision")
        assert drain["provider"] == "psp-a.example"
        print(f"detection delay through Prometheus: {drain['time'] - fault_at:.2f} s")
        wait_for(lambda: "/flags/psp-a.example" in recorder.paths(), 20, "the webhook call")
        method, _, body = next(c for c in recorder.calls if c[1] == "/flags/psp-a.example")
        assert method == "PUT" and '"enabled": false' in body
        ok = watch.wait_entry(lambda e: e.get("event") == "action_ok", 20, "the action result")
        assert ok["actuator"] == "webhook"
        assert "/flags/psp-b.example" not in recorder.paths()
        wait_for(lambda: "psp-a.example" in _saved_out(tmp_path), 20, "the saved decision")

        watch.kill()
        calls_before = len(recorder.calls)
        watch = WatchProcess(config, log)
        restored = watch.wait_entry(lambda e: e.get("event") == "state_restored", 30,
                                    "the state restored after SIGKILL")
        assert restored["out"] == ["psp-a.example"]
        assert "failure_rate" in restored["baselines"]
        started = watch.started()
        state = get_json(started["admin"] + "/state")
        assert state["providers"]["psp-a.example"]["phase"] == "drained"
        assert state["providers"]["psp-a.example"]["out"] is True
        assert len(recorder.calls) == calls_before  # the restart itself acts on nothing
    except AssertionError as exc:  # the decision log says what happened
        tail = "\n".join(log.read_text().splitlines()[-40:]) if log.exists() else "no log"
        raise AssertionError(f"{exc}\n--- decision log ---\n{tail}") from None
    finally:
        watch.stop()


def _saved_out(tmp_path: Path) -> list[str]:
    import json

    try:
        return list(json.loads((tmp_path / "state.json").read_text())["out"])
    except (OSError, ValueError, KeyError):
        return []


@pytest.mark.prometheus
@pytest.mark.slow
def test_query_matching_nothing_is_an_error(monitored: dict[str, Any]) -> None:
    config = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {monitored["prometheus"].url}
    provider_label: server_address
    queries:
      attempts: sum by (server_address) (no_such_metric_total)
      failures: sum by (server_address) (no_such_metric_total)
""")
    source = PromqlSource(config.sources[0])  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="query 'attempts' matched no series"):
        source.poll(time.time())
    wrong_label = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {monitored["prometheus"].url}
    provider_label: provider
    queries:
      attempts: sum by (server_address) (http_client_request_duration_seconds_count)
      failures: sum by (server_address) (http_client_request_duration_seconds_count)
""")
    with pytest.raises(SourceError, match="without label 'provider'"):
        PromqlSource(wrong_label.sources[0]).poll(time.time())  # type: ignore[arg-type]
    paystab = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {monitored["prometheus"].url}
    preset: paystab
""")
    # every query of the paystab preset parses (Prometheus would answer 400, an InvalidInput);
    # this stack has none of paystab's names, so it is the "no series" error
    with pytest.raises(SourceError, match="query 'attempts' matched no series"):
        PromqlSource(paystab.sources[0]).poll(time.time())  # type: ignore[arg-type]
    from paystab.collector.sampler import query_instant

    for expr in PromqlSource(paystab.sources[0]).queries.values():  # type: ignore[arg-type]
        assert query_instant(monitored["prometheus"].url, expr, time.time()) == []
    preset = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {monitored["prometheus"].url}
    preset: otel_http_client
""")
    source = PromqlSource(preset.sources[0])  # type: ignore[arg-type]
    assert source.poll(time.time()) == []  # the first reading is the counters' base
    samples = wait_for(lambda: source.poll(time.time()), 20, "a second reading with traffic")
    assert {s.provider for s in samples} == set(PROVIDERS)


def test_loop_lag_is_the_largest_stack_wide_value_in_every_sample(
        monitored: dict[str, Any]) -> None:
    """``loop_lag`` needs no provider label: the largest of its series goes into every
    provider's sample (where the hang and latency detectors and the controller read it); a
    query that matches nothing is 0 and a note, never an error."""
    stack = monitored["stack"]
    stack.loop_lag.labels("w1").set(0.1)
    stack.loop_lag.labels("w2").set(0.6)
    url = monitored["prometheus"].url
    wait_for(lambda: prom_query(url, "max(stack_event_loop_lag_seconds) > 0.5"), 20,
             "Prometheus to scrape the loop lag")
    config = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {url}
    preset: otel_http_client
    queries:
      loop_lag: stack_event_loop_lag_seconds
""")
    source = PromqlSource(config.sources[0])  # type: ignore[arg-type]
    source.poll(time.time())
    samples = wait_for(lambda: source.poll(time.time()), 20, "a second reading with traffic")
    assert {s.provider for s in samples} == set(PROVIDERS)
    assert {s.loop_lag_s for s in samples} == {0.6}
    assert source.notes == []
    unmatched = config_from_text(f"""\
sources:
  - kind: prometheus
    url: {url}
    preset: otel_http_client
    queries:
      loop_lag: max(no_such_lag_seconds)
""")
    quiet = PromqlSource(unmatched.sources[0])  # type: ignore[arg-type]
    quiet.poll(time.time())
    samples = wait_for(lambda: quiet.poll(time.time()), 20, "a second reading with traffic")
    assert {s.loop_lag_s for s in samples} == {0.0}
    assert "loop_lag matched nothing" in quiet.notes
