"""Dashboards and alerting as code: rules, Grafana dashboards, Prometheus/Alertmanager runtime.

Everything a payment team puts in Prometheus and Grafana to watch the SLOs paystab's drills
verify is generated here from plain dataclasses: recording rules for the SLIs
(:mod:`.recording`), multi-window multi-burn-rate and provider alerts (:mod:`.alerts`),
promtool unit tests that show each alert firing and not firing (:mod:`.promtests`), Grafana
dashboard models (:mod:`.grafana` and one module per dashboard under :mod:`.boards`), the
Prometheus and Alertmanager server configs (:mod:`.serverconfig`) and the processes
themselves (:mod:`.runtime`). :mod:`.export` writes the files that are committed under
``dashboards/`` and ``deploy/``. Metric names come from :mod:`paystab.collector.names` only.
"""

from __future__ import annotations

from paystab.alerting.spec import AlertingConfig, BurnRateAlert

__all__ = ["AlertingConfig", "BurnRateAlert"]
