"""Where a drill's detection reads from and how its failover acts.

Two ways, one shape (:class:`DrillDetection`): a source the drill polls beside the load, and
the :class:`~paystab.anomaly.controller.FailoverController` whose detections and drains the
report records.

* **Built in** (:func:`builtin_detection`): the gateway's own ``/metrics`` sampled every
  100 ms, drains through paystab's gateway admin API — the reference stack's path.
* **A watch config** (:func:`watch_detection`, ``paystab drill --watch FILE``): the same
  parts ``paystab watch`` runs in production — its sources (Prometheus with PromQL
  templates, an OTLP receiver, a /metrics scrape), detectors, safety rules and actuators
  (gateway admin API, webhook, command, Alertmanager) — so a drill of another stack detects
  from that stack's telemetry and acts through that stack's own switch, and the drill
  judges the very configuration that will watch production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paystab.anomaly.controller import FailoverController, FailoverEvent
from paystab.collector.series import Sample
from paystab.stack.endpoints import StackEndpoints


class _WatchRounds:
    """A watch service seen as a series source: each poll is one watch round (every source
    polled, the controller fed), and answers the samples for the drill's own plots."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def poll(self, now: float) -> list[Sample]:
        samples: list[Sample] = self.service.poll_once(now)
        return samples


@dataclass
class DrillDetection:
    controller: FailoverController
    source: Any  # poll(now) -> list[Sample]
    interval_s: float
    feeds_controller: bool  # True: polling the source already fed the controller
    describe: str
    close: Callable[[], None] = lambda: None


def builtin_detection(endpoints: StackEndpoints, on_event: Callable[[FailoverEvent], None],
                      interval_s: float) -> DrillDetection:
    from paystab.anomaly.admin_client import GatewayAdmin
    from paystab.collector.sampler import metrics_url_source

    url = endpoints.metrics_url or endpoints.gateway_url + "/metrics"
    controller = FailoverController(GatewayAdmin(endpoints.gateway_url, endpoints.admin_token),
                                    on_event=on_event)
    return DrillDetection(controller, metrics_url_source(url, token=endpoints.admin_token),
                          interval_s, False, f"built in: {url} every {interval_s:g} s, gateway admin API")


def load_watch(path: Path) -> Any:
    """Read and validate a watch config now (exit 2 before any stack starts)."""
    from paystab.watch.config import load_config

    return load_config(path)


def watch_detection(config: Any, source_file: Path,
                    on_event: Callable[[FailoverEvent], None]) -> DrillDetection:
    from paystab.watch.service import WatchService

    service = WatchService(config)
    own = service.controller.on_event

    def both(event: FailoverEvent) -> None:
        if own is not None:
            own(event)  # watch's decision log and state
        on_event(event)

    service.controller.on_event = both
    service.start()
    names = ", ".join(s.name for s in service.sources)
    return DrillDetection(service.controller, _WatchRounds(service), config.interval_s, True,
                          f"watch config {source_file}: sources {names}"
                          + (" (dry run: nothing acted on)" if config.dry_run else ""),
                          close=service.stop)
