"""End to end with the reference stack: 100 card payments/s, one card provider starts failing
20 % with 5xx -> detected within 2 s, drained within 1 s after that, customers see no
failures; the fault clears -> restored after a successful half-open probe, no flapping.

The failing provider is card-delta, the primary acquirer for JCB (half of the load): the
gateway cannot route JCB around it by itself, which is when a drain matters. (For a
provider the router can route around, its best-first choice moves traffic away after ~4
failures and the detector then sees only the 2 % exploration trickle: measured detection
0.5-2.5 s when 5+ failures land before the switch, 15-18 s otherwise; see docs/detection.md.)"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from paystab.anomaly import base
from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.controller import ControllerConfig, FailoverController, watch
from paystab.anomaly.ensemble import EnsemblePolicy
from paystab.collector.sampler import metrics_url_source
from tests.conftest_anomaly import wait_for

CARDS = ("4242424242424242", "3530111333300000")  # visa, JCB (card-delta is JCB's primary)
TARGET = "card-delta"


def _payment(i: int) -> bytes:
    return json.dumps({"amount": 1999, "currency": "JPY", "method": "card", "country": "JP",
                       "card": {"number": CARDS[i % 2], "exp_month": 12, "exp_year": 2030,
                                "cvc": "123"}}).encode()


class Load:
    """Open-model card payments at ``rate``/s until stopped; keeps (time, HTTP status)."""

    def __init__(self, gateway_url: str, rate: float) -> None:
        self.url = gateway_url + "/v1/payments"
        self.rate = rate
        self.results: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _one(self, i: int) -> None:
        request = urllib.request.Request(
            self.url, data=_payment(i), method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except OSError:
            code = 599
        with self._lock:
            self.results.append((time.time(), code))

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=24) as pool:
            start, sent = time.monotonic(), 0
            while not self.stop.is_set() and time.monotonic() - start < 300:
                due = start + sent / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                pool.submit(self._one, sent)
                sent += 1

    def failures_after(self, t: float) -> int:
        with self._lock:
            return sum(1 for at, code in self.results if at >= t and code >= 500)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=30)


def _provider_admin(url: str, method: str, path: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


@pytest.mark.slow
def test_failing_card_provider_is_drained_and_restored(fresh_stack: Any) -> None:
    ep = fresh_stack.endpoints
    assert ep.metrics_url and ep.provider_admin_url
    # a test-sized warm-up (500 attempts instead of 2000) so the test takes seconds
    detectors = {"failure_rate": base.create("failure_rate", {"warmup_attempts": 500}),
                 "hang": base.create("hang"), "latency": base.create("latency")}
    policy = EnsemblePolicy(detectors, [("failure_rate",), ("hang",)])
    controller = FailoverController(
        GatewayAdmin(ep.gateway_url, ep.admin_token), policy,
        ControllerConfig(cooldown_s=4.0, probation_s=4.0, min_probe_attempts=10, stable_s=30.0))
    seen: dict[str, int] = {}

    def count(samples: list[Any]) -> None:
        for s in samples:
            seen[s.provider] = seen.get(s.provider, 0) + s.attempts

    source = metrics_url_source(ep.metrics_url)
    stop = threading.Event()

    class Tee:
        def poll(self, now: float) -> list[Any]:
            samples = source.poll(now)
            count(samples)
            return samples

    watcher = threading.Thread(target=watch, args=(Tee(), controller, stop, 0.1, 240.0),
                               daemon=True)
    load = Load(ep.gateway_url, 100.0)
    watcher.start()
    try:
        # warm up until the provider under test has a learned baseline
        wait_for(lambda: seen.get(TARGET, 0) >= 600, timeout_s=60, every_s=0.2)
        target = TARGET
        assert controller.events == [], controller.events
        injected = time.time()
        assert _provider_admin(ep.provider_admin_url, "POST", f"/admin/providers/{target}/faults",
                               {"type": "error_burst", "ratio": 0.2,
                                "error": "server_error"}) == 201
        before = dict(seen)
        try:
            drain = wait_for(lambda: next((e for e in controller.events if e.provider == target
                                           and e.action == "drain"), None), timeout_s=20)
        except AssertionError:
            raise AssertionError(f"no drain of {target}: before={before} after={seen} "
                                 f"detections={controller.detections} errors={controller.errors}"
                                 f" events={controller.events}") from None
        detection = next(d for d in controller.detections
                         if d.provider == target and d.at >= injected)
        print(f"\ne2e: {target} detected {detection.at - injected:.2f}s after the fault "
              f"({detection.detector}), drained {drain.time - detection.at:.2f}s later")
        assert detection.at - injected <= 2.0, (detection, injected)
        assert drain.time - detection.at <= 1.0
        states = {p["name"]: p["state"] for p in
                  GatewayAdmin(ep.gateway_url, ep.admin_token).providers()}
        assert states[target] == "drained"
        drained_at = drain.time + 0.5  # attempts already in flight on the old route may end
        assert _provider_admin(ep.provider_admin_url, "DELETE",
                               f"/admin/providers/{target}/faults") == 204
        wait_for(lambda: any(e.provider == target and e.action == "probe_ok"
                             for e in controller.events), timeout_s=40, every_s=0.2)
        settled = time.time()
        restore = [e for e in controller.events if e.provider == target]
        print(f"e2e: fault cleared; restore {restore[1].time - drain.time:.1f}s after the drain,"
              f" probe_ok {restore[2].time - restore[1].time:.1f}s later")
        wait_for(lambda: time.time() - settled > 5.0, timeout_s=10, every_s=0.2)
        actions = [e.action for e in controller.events if e.provider == target]
        assert actions == ["drain", "restore", "probe_ok"], controller.events
        assert load.failures_after(drained_at) == 0
        assert not [e for e in controller.events if e.provider != target], controller.events
    finally:
        load.close()
        stop.set()
        watcher.join(timeout=10)
