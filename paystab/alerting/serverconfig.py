"""Prometheus and Alertmanager configuration files, generated.

One generator serves both places they are used: :mod:`.runtime` writes them for servers it
starts on loopback (targets from a ready file, seconds-long intervals for drills and tests),
and :mod:`.export` writes the ones in ``deploy/`` for the compose stack (service names as
hosts, production intervals). Job names are those the alerts select on
(:attr:`AlertingConfig.gateway_job`), so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from paystab.alerting.spec import AlertingConfig, format_prom_duration
from paystab.exceptions import InvalidInput
from paystab.stack.endpoints import StackEndpoints


@dataclass(frozen=True)
class ScrapeTarget:
    """A ``/metrics`` URL and the Prometheus job it belongs to."""

    job: str
    url: str
    credentials_file: str | None = None  # bearer token file, for endpoints behind a token

    @classmethod
    def parse(cls, text: str, default_job: str = "paystab-gateway") -> ScrapeTarget:
        """``"job=http://host:port/metrics"`` or a bare URL (``default_job``)."""
        job, sep, url = text.partition("=")
        if not sep:
            job, url = default_job, text
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not job:
            raise InvalidInput(
                f"{text!r} is not a scrape target", source="scrape target",
                expected="[JOB=]http://HOST:PORT/metrics",
            )
        return cls(job, url)

    @property
    def address(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def metrics_path(self) -> str:
        return urlsplit(self.url).path or "/metrics"


FAILOVER_JOB = "paystab-failover"


def scrape_targets_for(
    endpoints: StackEndpoints, config: AlertingConfig | None = None, failover_url: str | None = None,
) -> list[ScrapeTarget]:
    """The gateway and provider ``/metrics`` of a running stack (from its ready file), and
    the failover receiver's (``failover_url``, its base URL) when one runs."""
    config = config or AlertingConfig()
    targets = []
    gateway = endpoints.metrics_url or endpoints.gateway_url.rstrip("/") + "/metrics"
    targets.append(ScrapeTarget(config.gateway_job, gateway))
    if endpoints.provider_metrics_url:
        targets.append(ScrapeTarget(config.providers_job, endpoints.provider_metrics_url))
    if failover_url:
        targets.append(ScrapeTarget(FAILOVER_JOB, failover_url.rstrip("/") + "/metrics"))
    return targets


def prometheus_config(
    targets: list[ScrapeTarget],
    rule_files: list[str],
    *,
    scrape_interval_s: float,
    evaluation_interval_s: float,
    alertmanagers: list[str] | None = None,
    external_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ``prometheus.yml`` document. ``alertmanagers`` are ``host:port`` addresses."""
    interval = _prom_duration(scrape_interval_s)
    jobs: dict[tuple[str, str, str, str | None], list[str]] = {}
    for target in targets:
        key = (target.job, target.scheme, target.metrics_path, target.credentials_file)
        jobs.setdefault(key, [])
        if target.address not in jobs[key]:
            jobs[key].append(target.address)
    scrape_configs = []
    for (job, scheme, path, credentials_file), addresses in jobs.items():
        entry: dict[str, Any] = {"job_name": job, "scrape_interval": interval}
        # a scrape may not take longer than its interval
        entry["scrape_timeout"] = _prom_duration(scrape_interval_s * 0.8)
        if path != "/metrics":
            entry["metrics_path"] = path
        if scheme != "http":
            entry["scheme"] = scheme
        if credentials_file:
            entry["authorization"] = {"type": "Bearer", "credentials_file": credentials_file}
        entry["static_configs"] = [{"targets": addresses}]
        scrape_configs.append(entry)
    global_cfg: dict[str, Any] = {
        "scrape_interval": interval,
        "evaluation_interval": _prom_duration(evaluation_interval_s),
    }
    if external_labels:
        global_cfg["external_labels"] = dict(external_labels)
    doc: dict[str, Any] = {"global": global_cfg, "rule_files": list(rule_files)}
    if alertmanagers:
        doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
    doc["scrape_configs"] = scrape_configs
    return doc


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait_s: float = 10.0,
    group_interval_s: float = 60.0,
    repeat_interval: str = "4h",
) -> dict[str, Any]:
    """An ``alertmanager.yml`` that sends every paystab alert to one webhook.

    Grouped by alert and provider, so the failover controller receives one notification per
    provider it may have to drain; the page-level provider alert inhibits the warning for the
    same provider, and a target that cannot be scraped inhibits its metric-absent alert.
    """
    return {
        "route": {
            "receiver": "paystab",
            "group_by": ["alertname", "provider"],
            "group_wait": format_prom_duration(group_wait_s),
            "group_interval": format_prom_duration(group_interval_s),
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "paystab",
                "webhook_configs": [
                    {"url": webhook_url, "send_resolved": True, "max_alerts": 0},
                ],
            }
        ],
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="PaystabProviderFailureRateCritical"'],
                "target_matchers": ['alertname="PaystabProviderFailureRateHigh"'],
                "equal": ["provider"],
            },
            {
                "source_matchers": ['alertname="PaystabScrapeDown"'],
                "target_matchers": ['alertname="PaystabMetricsAbsent"'],
                "equal": ["job"],
            },
        ],
    }


def _prom_duration(seconds: float) -> str:
    """A Prometheus duration, in milliseconds when not whole seconds (``0.2`` → ``200ms``:
    a sub-second scrape, as drills use, must not round to ``0s``, which Prometheus refuses)."""
    if seconds >= 1 and float(seconds).is_integer():
        return format_prom_duration(seconds)
    return f"{max(1, round(seconds * 1000))}ms"
