"""The alerting rules: SLO burn rate, provider failure rate, hang, detector, telemetry gaps.

Each alert is built from :class:`AlertingConfig` and carries ``severity`` (page: wake
someone; ticket: next working day; warning: look during the day), a ``summary``, a
``description`` and a ``runbook_url`` to ``runbooks/alerts/<slug>.md``. The burn-rate
alerts follow the SRE Workbook's multi-window multi-burn-rate scheme: a long window proves
the burn is significant, a short one proves it is still happening, so the alert resets
minutes after a fix instead of hours.
"""

from __future__ import annotations

from paystab.alerting.recording import (
    error_ratio_name,
    payment_sli_rules,
    provider_counted_attempts_name,
    provider_failure_ratio_name,
    provider_sli_rules,
)
from paystab.alerting.rules import AlertRule, RecordingRule, RuleGroup
from paystab.alerting.spec import AlertingConfig, BurnRateAlert, format_prom_duration, prom_duration_s
from paystab.collector.names import DETECTIONS_TOTAL, PROVIDER_HEALTH_SCORE, PROVIDER_OLDEST_INFLIGHT_AGE


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g} %"


def burn_threshold_expr(config: AlertingConfig, burn: BurnRateAlert) -> str:
    """``(14.4 * 0.0001)``: the error ratio at which the budget burns ``factor``× too fast."""
    return f"({burn.factor:g} * {round(config.error_budget, 12)!r})"


def burn_rate_alert(config: AlertingConfig, burn: BurnRateAlert) -> AlertRule:
    threshold = burn_threshold_expr(config, burn)
    exhausted_in = format_prom_duration(prom_duration_s(config.slo_period) / burn.factor)
    return AlertRule(
        alert=burn.name,
        expr=(
            f"{error_ratio_name(burn.long_window)} > {threshold}\n"
            f"and\n{error_ratio_name(burn.short_window)} > {threshold}"
        ),
        severity=burn.severity,
        for_=burn.for_,
        labels={"slo": "payments-availability", "long_window": burn.long_window,
                "short_window": burn.short_window},
        summary=(
            f"Payments spend the {_pct(config.slo_target)} availability error budget at "
            f"{burn.factor:g}x the sustainable rate"
        ),
        description=(
            f"{{{{ $value | humanizePercentage }}}} of payments failed over the last "
            f"{burn.long_window} (and still over {burn.short_window}) against an error budget "
            f"of {_pct(config.error_budget)}. At this rate the {config.slo_period} budget is "
            f"gone in {exhausted_in}. Failed = no provider could answer (502/503/504); "
            f"declines are not failures."
        ),
        runbook=burn.runbook,
    )


def provider_failure_alerts(config: AlertingConfig) -> list[AlertRule]:
    window = config.provider_window
    guard = (
        f"and on (provider)\n{provider_counted_attempts_name(window)} "
        f">= {config.provider_min_attempts}"
    )
    alerts = []
    for name, slug, severity, ratio, for_, consequence in (
        ("PaystabProviderFailureRateHigh", "provider-failure-rate-high", "warning",
         config.provider_warn_ratio, config.provider_warn_for,
         "paystab's detector should already be watching it"),
        ("PaystabProviderFailureRateCritical", "provider-failure-rate-critical", "page",
         config.provider_page_ratio, config.provider_page_for,
         "the provider should be drained or its circuit open; check that traffic moved"),
    ):
        alerts.append(
            AlertRule(
                alert=name,
                expr=f"{provider_failure_ratio_name(window)} > {ratio:g}\n{guard}",
                severity=severity,
                for_=for_,
                summary=(
                    "Provider {{ $labels.provider }} fails {{ $value | humanizePercentage }} "
                    "of its attempts"
                ),
                description=(
                    "{{ $value | humanizePercentage }} of the attempts sent to provider "
                    f"{{{{ $labels.provider }}}} over the last {window} ended in an error "
                    "(timeout, connect, 5xx, rate limit, malformed answer; customer declines "
                    f"excluded), above the {_pct(ratio)} threshold: {consequence}."
                ),
                runbook=slug,
            )
        )
    return alerts


def hang_alert(config: AlertingConfig) -> AlertRule:
    threshold = f"{config.hang_threshold_s:g}"
    return AlertRule(
        alert="PaystabProviderHang",
        expr=f"max by (provider) ({PROVIDER_OLDEST_INFLIGHT_AGE}) > {threshold}",
        severity="page",
        for_=config.hang_for,
        summary=(
            "Provider {{ $labels.provider }} has held a request for "
            '{{ $value | printf "%.1f" }} s'
        ),
        description=(
            "The oldest attempt in flight to provider {{ $labels.provider }} is "
            '{{ $value | printf "%.1f" }} s old (threshold ' + threshold + " s): the provider "
            "accepts connections but does not answer. Outcomes of those payments are unknown "
            "until the status look-up or the void of a late success resolves them."
        ),
        runbook="provider-hang",
    )


def detector_alert(config: AlertingConfig) -> AlertRule:
    window = config.detector_window
    return AlertRule(
        alert="PaystabDetectorFired",
        expr=f"sum by (provider, detector) (increase({DETECTIONS_TOTAL}[{window}])) > 0",
        severity="warning",
        summary="Detector {{ $labels.detector }} flagged provider {{ $labels.provider }}",
        description=(
            "paystab's {{ $labels.detector }} detector flagged provider "
            f"{{{{ $labels.provider }}}} in the last {window}; the failover controller acts on "
            "its own (drain, probe, restore). Check the failover dashboard for what it did."
        ),
        runbook="detector-fired",
    )


def telemetry_alerts(config: AlertingConfig) -> list[AlertRule]:
    jobs = f"{config.gateway_job}|{config.providers_job}"
    gateway = f'job="{config.gateway_job}"'
    return [
        AlertRule(
            alert="PaystabScrapeDown",
            expr=f'up{{job=~"{jobs}"}} == 0',
            severity="page",
            for_=config.scrape_down_for,
            summary="Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}",
            description=(
                "The scrape of {{ $labels.job }} at {{ $labels.instance }} fails: the process "
                "is down, hung or unreachable. Every SLO alert on its metrics is blind."
            ),
            runbook="scrape-down",
        ),
        AlertRule(
            alert="PaystabMetricsAbsent",
            expr=f"absent(up{{{gateway}}})\nor\nabsent({PROVIDER_HEALTH_SCORE}{{{gateway}}})",
            severity="page",
            for_=config.absent_for,
            summary="No paystab gateway metrics in Prometheus",
            description=(
                f"Prometheus has no target for job {config.gateway_job} or the target exposes no "
                f"{PROVIDER_HEALTH_SCORE} series: the scrape config or the gateway's "
                "instrumentation is broken, and the SLO alerts cannot fire."
            ),
            runbook="metrics-absent",
        ),
    ]


def rule_groups(config: AlertingConfig) -> list[RuleGroup]:
    """The rule file: each group holds the SLI recording rules its alerts read, then them.

    Rules in one group run in order within one evaluation, so an alert never reads a ratio
    one evaluation old (or, with long intervals, none at all) — as it could if recording
    rules lived in a group of their own, evaluated on its own schedule.
    """
    return [
        RuleGroup(
            "paystab-slo",
            (*payment_sli_rules(config),
             *(burn_rate_alert(config, b) for b in config.burn_alerts)),
        ),
        RuleGroup(
            "paystab-providers",
            (*provider_sli_rules(config), *provider_failure_alerts(config), hang_alert(config),
             detector_alert(config)),
        ),
        RuleGroup("paystab-telemetry", tuple(telemetry_alerts(config))),
    ]


def all_alerts(config: AlertingConfig) -> list[AlertRule]:
    return [r for g in rule_groups(config) for r in g.rules if isinstance(r, AlertRule)]


def all_recording_rules(config: AlertingConfig) -> list[RecordingRule]:
    return [r for g in rule_groups(config) for r in g.rules if isinstance(r, RecordingRule)]
