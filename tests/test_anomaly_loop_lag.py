"""The gateway's event-loop lag: measured by a periodic timer, exposed on /metrics, carried
by the sampler into every provider's samples (with the peer context)."""

from __future__ import annotations

import asyncio
import time
import urllib.request

from paystab.collector import names
from paystab.collector.sampler import metrics_url_source
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.loop_lag import LoopLagMonitor
from tests.conftest_anomaly import stack, wait_for

__all__ = ["stack"]  # fixture


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_blocked_loop_shows_as_lag_then_ages_out() -> None:
    async def scenario() -> tuple[float, float, float]:
        monitor = LoopLagMonitor(interval_s=0.02, window_s=0.5)
        monitor.start()
        await _until(lambda: len(monitor._recent) >= 3)
        quiet = monitor.lag_s()
        time.sleep(0.3)  # the stimulus: block the loop the way a CPU-bound call would
        during = monitor.lag_s()  # read before the late timer runs: the overdue tick counts
        await _until(lambda: monitor._recent and monitor._recent[-1][1] >= 0.25)
        await _until(lambda: monitor.lag_s() < 0.1, timeout_s=3.0)
        after = monitor.lag_s()
        await monitor.stop()
        return quiet, during, after

    quiet, during, after = asyncio.run(scenario())
    assert quiet < 0.1
    assert during >= 0.25
    assert after < 0.1


def test_gateway_exposes_the_lag_and_the_sampler_carries_it(stack: StackEndpoints) -> None:
    url = stack.metrics_url or stack.gateway_url + "/metrics"
    source = metrics_url_source(url, token=stack.admin_token)
    source.poll(time.time())  # the base
    samples = wait_for(lambda: source.poll(time.time()), timeout_s=10.0)
    assert len(samples) >= 3
    for sample in samples:
        assert 0.0 <= sample.loop_lag_s < 5.0
    assert len({s.loop_lag_s for s in samples}) == 1  # one gateway, one loop
    headers = {"Authorization": f"Bearer {stack.admin_token}"} if stack.admin_token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        text = r.read().decode()
    assert f"# TYPE {names.GATEWAY_LOOP_LAG} gauge" in text
