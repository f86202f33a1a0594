"""Safety between watch's decisions and the stack: dry-run, pins, cap, last healthy provider,
retries with backoff, every action reported; the actuators against real listeners; the
state file (atomic, baselines taken back only when options match); the admin API pins."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.anomaly.controller import ControllerConfig, FailoverController
from paystab.anomaly.ensemble import EnsemblePolicy
from paystab.collector.series import Sample
from paystab.watch.actuators import ActionRequest, build_actuator, render
from paystab.watch.config import WatchConfig, config_from_text
from paystab.watch.safety import ActionExecutor, GuardedAdmin
from paystab.watch.service import WatchService, build_policy
from paystab.watch.state import load_state, save_state
from tests.conftest_alerting import wait_for
from tests.watch_support import Recorder

BASE = """\
sources: [{kind: otlp, listen: '127.0.0.1:0'}]
providers:
  - {name: a, methods: [card]}
  - {name: b, methods: [card]}
  - {name: d, methods: [card]}
  - {name: c, methods: [wallet]}
detectors: {failure_rate: {}}
failover: {when: [[failure_rate]], cooldown_s: 1h}
"""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.stop()


class Harness:
    """A controller deciding through GuardedAdmin, with a hand-driven clock."""

    def __init__(self, extra: str = "", recorder_url: str | None = None) -> None:
        text = BASE + extra
        if recorder_url:
            text += f"actuators: [{{kind: webhook, url: '{recorder_url}/{{provider}}/{{action}}'}}]\n"
        self.config: WatchConfig = config_from_text(text)
        self.now = 1000.0
        self.log: list[dict[str, Any]] = []
        self.sleeps: list[float] = []
        self.executor = ActionExecutor([build_actuator(a) for a in self.config.actuators],
                                       self.config.safety, self.log.append, self.sleeps.append)
        self.executor.start()
        self.admin = GuardedAdmin(self.config, self.executor, self.log.append, lambda: self.now)
        self.policy: EnsemblePolicy = build_policy(self.config)
        self.controller = FailoverController(self.admin, self.policy,
                                             ControllerConfig(cooldown_s=3600.0),
                                             clock=lambda: self.now)

    def rounds(self, n: int, bad: set[str], providers: tuple[str, ...] = ("a", "b", "c", "d")) -> None:
        for _ in range(n):
            self.now += 1.0
            self.controller.on_samples([
                Sample(self.now, p, attempts=200, failures=100 if p in bad else 0, interval_s=1.0)
                for p in providers])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log if e.get("event") == name]

    def settle(self) -> None:
        wait_for(lambda: self.executor.pending == 0, 10, "the executor to finish")


def test_drain_goes_to_actuator_and_is_reported(recorder: Recorder) -> None:
    h = Harness(recorder_url=recorder.url)
    h.rounds(10, set())
    h.rounds(5, {"a"})
    h.settle()
    assert recorder.paths() == ["/a/drain"]
    (ok,) = h.events("action_ok")
    assert ok["provider"] == "a" and ok["result"] == "HTTP 200"
    assert h.controller.state("a") == "drained"


def test_last_healthy_provider_of_a_method_is_degraded_not_drained(recorder: Recorder) -> None:
    h = Harness(recorder_url=recorder.url)
    h.rounds(10, set())
    h.rounds(5, {"c"})  # c alone serves wallet
    h.settle()
    assert recorder.calls == []
    assert any(e.action == "degrade" and e.provider == "c" for e in h.controller.events)


def test_dry_run_walks_the_states_without_calling(recorder: Recorder) -> None:
    h = Harness("dry_run: true\n", recorder_url=recorder.url)
    h.rounds(10, set())
    h.rounds(5, {"a"})
    h.settle()
    assert recorder.calls == []
    assert [e["provider"] for e in h.events("would_drain")] == ["a"]
    assert h.controller.state("a") == "drained"


def test_pins_and_the_action_cap(recorder: Recorder) -> None:
    h = Harness("safety: {max_actions: 1, per_s: 1h}\n", recorder_url=recorder.url)
    h.admin.pin("a", "in")
    h.rounds(10, set())
    h.rounds(5, {"a", "b"})
    h.settle()
    refused = h.events("refused")
    assert any(r["provider"] == "a" and "pinned in" in r["reason"] for r in refused)
    assert h.controller.state("a") == "active"
    assert recorder.paths() == ["/b/drain"]  # b drained: the one drain the cap allows
    h.admin.pin("c", "out")  # an operator's pin acts at once, past the cap
    h.settle()
    assert recorder.paths() == ["/b/drain", "/c/drain"]
    h.admin.pin("c", None)
    h.settle()
    assert recorder.paths()[-1] == "/c/restore"


def test_cap_refuses_a_second_drain_in_the_interval(recorder: Recorder) -> None:
    h = Harness("safety: {max_actions: 1, per_s: 1h}\n", recorder_url=recorder.url)
    h.rounds(10, set())
    h.rounds(5, {"a", "b"})
    h.settle()
    assert len([p for p in recorder.paths() if p.endswith("/drain")]) == 1
    assert any("action cap" in r["reason"] for r in h.events("refused"))


def test_failed_action_is_retried_with_backoff_and_reported(recorder: Recorder) -> None:
    recorder.status = 503
    h = Harness("safety: {retries: 2, backoff_s: 100ms}\n", recorder_url=recorder.url)
    h.rounds(10, set())
    h.rounds(5, {"a"})
    h.settle()
    assert recorder.paths() == ["/a/drain"] * 3
    assert h.sleeps == pytest.approx([0.1, 0.2])
    assert len(h.events("action_retry")) == 2
    (failed,) = h.events("action_failed")
    assert "HTTP 503" in failed["error"]


def test_command_and_alertmanager_actuators(tmp_path: Path, recorder: Recorder) -> None:
    out = tmp_path / "cmd.txt"
    config = config_from_text(f"""\
sources: [{{kind: otlp}}]
actuators:
  - kind: command
    argv: [{sys.executable}, -c, "import sys; open(sys.argv[1], 'a').write(sys.argv[2])",
           {out}, "{{action}} {{provider}};"]
  - kind: alertmanager
    url: {recorder.url}
    labels: {{team: payments}}
""")
    request = ActionRequest("psp x", "drain", "5 failures", "failure_rate", 1_700_000_000.0)
    command, alertmanager = (build_actuator(a) for a in config.actuators)
    assert command.act(request).startswith("exit 0")
    assert out.read_text() == "drain psp x;"
    assert alertmanager.act(request) == "HTTP 200"
    method, path, body = recorder.calls[-1]
    (alert,) = json.loads(body)
    assert (method, path) == ("POST", "/api/v2/alerts")
    assert alert["labels"] == {"alertname": "PaystabProviderDrained", "provider": "psp x",
                               "source": "paystab-watch", "team": "payments"}
    assert alert["endsAt"] > alert["startsAt"]


def test_templates_escape_for_where_they_go() -> None:
    request = ActionRequest('a/"b"', "drain", "x", "d", 0.0)
    assert render("http://h/{provider}", request, "url") == "http://h/a%2F%22b%22"
    assert json.loads(render('{{"p": "{provider}", "on": {enabled}}}', request, "json")) == {
        "p": 'a/"b"', "on": False}


def test_state_file_atomic_and_baselines_only_with_same_options(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.json"
    h = Harness()
    h.rounds(30, set())
    bank = h.policy.detectors["failure_rate"].banks["a"]  # type: ignore[attr-defined]
    save_state(path, {"a"}, {"b": "in"}, [{"event": "decision"}], h.policy.detectors)
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o600
    saved = load_state(path)
    assert saved.out == ["a"] and saved.pins == {"b": "in"} and not saved.problems
    assert saved.detectors["failure_rate"].banks["a"].n_total == bank.n_total  # type: ignore[attr-defined]
    path.write_text("{not json")
    assert load_state(path).problems


def test_service_restores_decisions_and_pins_via_admin_api(tmp_path: Path) -> None:
    config = config_from_text(BASE + f"state_file: {tmp_path}/state.json\n"
                              "admin: {listen: '127.0.0.1:0'}\n")
    service = WatchService(config)
    service.start()
    try:
        url = service.server.url
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(url + "/pins/b", data=b'{"pin": "out"}', method="PUT")
        with opener.open(request, timeout=5) as response:
            assert json.loads(response.read()) == {"provider": "b", "pin": "out"}
        with opener.open(url + "/healthz", timeout=5) as response:
            assert json.loads(response.read())["ok"] is True
        with opener.open(url + "/metrics", timeout=5) as response:
            assert b"paystab_watch_up 1.0" in response.read()
    finally:
        service.stop()
    again = WatchService(config)
    assert again.admin.pins == {"b": "out"}
    assert "b" in again.admin.out
    assert again.controller.state("b") == "drained"


def test_admin_api_with_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    monkeypatch.setenv("WATCH_ADMIN_TOKEN", "t0ken")
    service = WatchService(config_from_text(
        BASE + "admin: {listen: '127.0.0.1:0', token_env: WATCH_ADMIN_TOKEN}\n"))
    service.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(path: str, method: str = "GET", token: str | None = None) -> int:
        request = urllib.request.Request(service.server.url + path, method=method,
                                         data=b'{"pin": "in"}' if method == "PUT" else None)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with opener.open(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert call("/healthz") == 200
        assert call("/state") == 401
        assert call("/pins/a", "PUT") == 401
        assert call("/pins/a", "PUT", "wrong") == 401
        assert call("/pins/a", "PUT", "t0ken") == 200
        assert call("/state", token="t0ken") == 200
        assert service.admin.pins == {"a": "in"}
    finally:
        service.stop()


def test_alertmanager_webhook_drains_through_safety_and_actuators(recorder: Recorder) -> None:
    config = config_from_text(BASE + "admin: {listen: '127.0.0.1:0'}\n"
                              f"actuators: [{{kind: webhook, url: '{recorder.url}/{{provider}}/"
                              "{action}'}]\n")
    service = WatchService(config)
    service.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(status: str) -> dict[str, Any]:
        payload = {"version": "4", "status": status, "alerts": [
            {"status": status, "labels": {"alertname": "PaystabProviderFailureRateCritical",
                                          "provider": "a"},
             "annotations": {"summary": "a fails"}},
            {"status": status, "labels": {"alertname": "Other"}}]}
        request = urllib.request.Request(service.server.url + "/alerts", method="POST",
                                         data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with opener.open(request, timeout=5) as response:
            return dict(json.loads(response.read()))

    try:
        answer = post("firing")
        assert answer == {"drained": [{"provider": "a", "action": "drain"}], "resolved": [],
                          "ignored": 1}
        wait_for(lambda: "/a/drain" in recorder.paths(), 10, "the webhook actuator")
        assert service.controller.state("a") == "drained"
        assert post("resolved")["resolved"] == ["a"]
    finally:
        service.stop()
