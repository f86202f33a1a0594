"""promtool unit tests for the alerts: synthetic series that make each alert fire and not fire.

For every alert :func:`test_groups` builds input series whose SLI value is known by
construction (a constant error ratio, a provider's failure share with declines mixed in, an
in-flight age that grows once a provider hangs) and the alerts promtool must see at a given
evaluation time — including the exact annotations, which promtool compares as text. The few
template forms the rules use are rendered by :func:`render_template` the way Prometheus
does (``humanizePercentage`` is Go's ``%.4g`` of the value × 100).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from paystab.alerting.alerts import (
    burn_rate_alert,
    burn_threshold_expr,
    detector_alert,
    hang_alert,
    provider_failure_alerts,
    telemetry_alerts,
)
from paystab.alerting.recording import error_ratio_name, provider_failure_ratio_name
from paystab.alerting.rules import AlertRule
from paystab.alerting.spec import AlertingConfig, BurnRateAlert, format_prom_duration, prom_duration_s
from paystab.collector.names import (
    ATTEMPTS_TOTAL,
    DETECTIONS_TOTAL,
    PAYMENTS_TOTAL,
    PROVIDER_HEALTH_SCORE,
    PROVIDER_OLDEST_INFLIGHT_AGE,
)

_ROUND_TO = "1e-09"


def _round_like_promql(value: float) -> float:
    # PromQL round(v, t): floor(v / t + 0.5) * t, computed with the inverse as Prometheus does
    inverse = 1.0 / float(_ROUND_TO)
    return math.floor(value * inverse + 0.5) / inverse


_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def render_template(text: str, labels: dict[str, str], value: float) -> str:
    """Expand the template forms :class:`AlertRule` allows, as Prometheus would."""

    def expand(match: re.Match[str]) -> str:
        action = match.group(1)
        if action.startswith("$labels."):
            return labels.get(action.removeprefix("$labels."), "")
        if action == "$value | humanizePercentage":
            return f"{_go_g4(value * 100)}%"
        printf = re.fullmatch(r'\$value \| printf "(%\.\d+f)"', action)
        if printf:
            return printf.group(1) % value
        raise ValueError(f"template form {{{{ {action} }}}} is not supported by promtests")

    return _TEMPLATE.sub(expand, text)


def _go_g4(value: float) -> str:
    # Go's %.4g drops trailing zeros like C's; Python's matches for the magnitudes used here.
    return "%.4g" % value  # noqa: UP031 - the Go verb, spelled the same


@dataclass(frozen=True)
class Firing:
    """An alert instance expected to fire: the labels its expression yields and its value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class AlertCheck:
    eval_time: str
    rule: AlertRule
    firing: tuple[Firing, ...] = ()  # empty: the alert must not fire at eval_time

    def to_dict(self, config: AlertingConfig) -> dict[str, Any]:
        exp = []
        for f in self.firing:
            annotations = {
                k: render_template(v, f.labels, f.value)
                for k, v in self.rule.annotations(config).items()
            }
            exp.append({"exp_labels": {**f.labels, **self.rule.all_labels(config)},
                        "exp_annotations": annotations})
        return {"eval_time": self.eval_time, "alertname": self.rule.alert, "exp_alerts": exp}


@dataclass(frozen=True)
class ExprCheck:
    """A PromQL expression and the samples it must return (a recording rule's value)."""

    eval_time: str
    expr: str
    samples: tuple[tuple[str, float], ...]  # (labels text such as '{provider="a"}', value)

    def to_dict(self) -> dict[str, Any]:
        # promtool compares floats exactly: round both sides to 1e-9 (PromQL round() drops
        # __name__, so the expected labels are the series labels only)
        return {
            "expr": f"round({self.expr}, {_ROUND_TO})",
            "eval_time": self.eval_time,
            "exp_samples": [
                {"labels": lbl, "value": _round_like_promql(v)} for lbl, v in self.samples
            ],
        }


@dataclass(frozen=True)
class TestGroup:
    name: str
    interval: str
    series: tuple[tuple[str, str], ...]
    alerts: tuple[AlertCheck, ...]
    exprs: tuple[ExprCheck, ...] = field(default=())

    def to_dict(self, config: AlertingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "interval": self.interval,
            "input_series": [{"series": s, "values": v} for s, v in self.series],
            "alert_rule_test": [a.to_dict(config) for a in self.alerts],
        }
        if self.exprs:
            out["promql_expr_test"] = [e.to_dict() for e in self.exprs]
        return out


def _series(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def _counter(per_step: float, steps: int, start: float = 0.0) -> str:
    return f"{_num(start)}+{_num(per_step)}x{steps}"


def _num(value: float) -> str:
    text = repr(round(value, 9))
    return text.removesuffix(".0")


def _d(seconds: float) -> str:
    return format_prom_duration(seconds)


# -- SLO burn rate ---------------------------------------------------------------------------

def _piecewise(segments: list[tuple[float, int]]) -> str:
    """A counter in promtool's expanding notation: per-step increase for so many steps."""
    parts = [f"0+{_num(segments[0][0])}x{segments[0][1]}"]
    value = segments[0][0] * segments[0][1]
    for per_step, count in segments[1:]:
        if count <= 0:
            continue
        value += per_step
        parts.append(f"{_num(value)}+{_num(per_step)}x{count - 1}")
        value += per_step * (count - 1)
    return " ".join(parts)


def _burn_groups(config: AlertingConfig, burn: BurnRateAlert) -> list[TestGroup]:
    rule = burn_rate_alert(config, burn)
    long_s, short_s = prom_duration_s(burn.long_window), prom_duration_s(burn.short_window)
    for_s = prom_duration_s(burn.for_, allow_zero=True)
    step_s = max(60.0, short_s / 6)
    eval_s = long_s + for_s + 5 * step_s
    recover_at = int(long_s / step_s)
    recover_eval_s = recover_at * step_s + 2 * short_s
    steps = int(max(eval_s, recover_eval_s) / step_s) + 2
    threshold = burn.factor * config.error_budget
    per_step, declined = 1000.0, 50.0

    def payments(ratio: float, failing_steps: int) -> tuple[tuple[str, str], ...]:
        failed = round(ratio * per_step, 9)
        approved = per_step - failed - declined
        rest = steps - failing_steps
        return (
            (_series(PAYMENTS_TOTAL, method="card", outcome="approved"),
             _piecewise([(approved, failing_steps), (approved + failed, rest)])),
            (_series(PAYMENTS_TOTAL, method="card", outcome="declined"), _counter(declined, steps)),
            (_series(PAYMENTS_TOTAL, method="card", outcome="failed"),
             _piecewise([(failed, failing_steps), (0.0, rest)])),
        )

    high, low = 2 * threshold, 0.5 * threshold
    high_value = round(high * per_step, 9) / per_step
    return [
        TestGroup(
            f"{burn.name} fires at twice its burn rate over {burn.long_window} and "
            f"{burn.short_window}",
            _d(step_s),
            payments(high, steps),
            (AlertCheck(_d(eval_s), rule, (Firing({}, high_value),)),),
            (ExprCheck(_d(eval_s), error_ratio_name(burn.short_window),
                       (("{}", high_value),)),),
        ),
        TestGroup(
            f"{burn.name} stays quiet at half its burn rate",
            _d(step_s),
            payments(low, steps),
            (AlertCheck(_d(eval_s), rule),),
        ),
        TestGroup(
            f"{burn.name} resets once the {burn.short_window} window is clean, "
            f"though the {burn.long_window} window still burns",
            _d(step_s),
            payments(high, recover_at),
            (AlertCheck(_d(recover_eval_s), rule),),
            (ExprCheck(_d(recover_eval_s),
                       f"{error_ratio_name(burn.long_window)} > bool "
                       f"{burn_threshold_expr(config, burn)}",
                       (("{}", 1.0),)),),
        ),
    ]


def _ops_step_s(config: AlertingConfig) -> float:
    """One sample step for every operational test: a fifth of the shortest rate window."""
    shortest = min(prom_duration_s(config.provider_window),
                   prom_duration_s(config.detector_window))
    return max(1.0, round(shortest / 5))


# -- providers -----------------------------------------------------------------------------

def _provider_group(config: AlertingConfig) -> TestGroup:
    high, critical = provider_failure_alerts(config)
    window_s = prom_duration_s(config.provider_window)
    step_s = _ops_step_s(config)
    for_s = max(prom_duration_s(r.for_, allow_zero=True) for r in (high, critical))
    eval_s = window_s + for_s + 2 * step_s
    steps = int(eval_s / step_s) + 2
    counted = float(max(100, config.provider_min_attempts))  # per step: well above the guard
    # per step: a quarter of the guard over the whole window
    quiet = config.provider_min_attempts / (4 * round(window_s / step_s))
    below = config.provider_warn_ratio / 2
    warn = (config.provider_warn_ratio + config.provider_page_ratio) / 2
    page = min(2 * config.provider_page_ratio, 0.9)
    series: list[tuple[str, str]] = []
    # (provider, errors per step, approved per step, declined per step)
    plan = [
        ("healthy", 0.0, counted, counted / 4),  # many declines, no error series at all
        ("below", below * counted, (1 - below) * counted, counted / 10),
        ("warned", warn * counted, (1 - warn) * counted, counted / 10),
        ("paged", page * counted, (1 - page) * counted, counted / 10),
        ("quiet", quiet / 2, quiet / 2, 0.0),  # 50 % errors, but too few attempts to judge
    ]
    for provider, errors, approved, declined in plan:
        series.append((_series(ATTEMPTS_TOTAL, provider=provider, outcome="approved",
                               error_type="none"), _counter(approved, steps)))
        if declined:
            series.append((_series(ATTEMPTS_TOTAL, provider=provider, outcome="declined",
                                   error_type="none"), _counter(declined, steps)))
        if errors:
            series.append((_series(ATTEMPTS_TOTAL, provider=provider, outcome="error",
                                   error_type="timeout"), _counter(errors, steps)))
    at = _d(eval_s)
    ratio_name = provider_failure_ratio_name(config.provider_window)
    return TestGroup(
        "provider failure rate: declines never count, the traffic guard holds",
        _d(step_s),
        tuple(series),
        (
            AlertCheck(at, high, (Firing({"provider": "paged"}, page),
                                  Firing({"provider": "warned"}, warn))),
            AlertCheck(at, critical, (Firing({"provider": "paged"}, page),)),
            AlertCheck("0s", high),  # no rate before a second sample: nothing fires
            AlertCheck("0s", critical),
        ),
        (ExprCheck(at, f'{ratio_name}{{provider=~"healthy|below"}}',
                   (('{provider="below"}', below), ('{provider="healthy"}', 0.0))),),
    )


def _hang_group(config: AlertingConfig) -> TestGroup:
    rule = hang_alert(config)
    step_s = _ops_step_s(config)
    for_s = prom_duration_s(config.hang_for, allow_zero=True)
    healthy_steps = 8
    hang_steps = int((for_s + 60) / step_s) + 2
    ages = f"0.1+0x{healthy_steps} {_num(step_s)}+{_num(step_s)}x{hang_steps}"
    eval_steps = healthy_steps + hang_steps
    age_at_eval = step_s * (hang_steps + 1)
    return TestGroup(
        "a provider that stops answering is flagged by its oldest in-flight age",
        _d(step_s),
        (
            (_series(PROVIDER_OLDEST_INFLIGHT_AGE, provider="stuck"), ages),
            (_series(PROVIDER_OLDEST_INFLIGHT_AGE, provider="busy"),
             f"0.3+0x{eval_steps + 1}"),
        ),
        (
            AlertCheck(_d(step_s * healthy_steps), rule),
            AlertCheck(_d(step_s * (eval_steps + 1)), rule,
                       (Firing({"provider": "stuck"}, age_at_eval),)),
        ),
    )


def _detector_group(config: AlertingConfig) -> TestGroup:
    rule = detector_alert(config)
    step_s = _ops_step_s(config)
    window_steps = int(prom_duration_s(config.detector_window) / step_s)
    before, after = 10, window_steps + 5
    labels = {"provider": "flaky", "detector": "cusum"}
    return TestGroup(
        "a detection raises a warning that clears once the window has passed",
        _d(step_s),
        (
            (_series(DETECTIONS_TOTAL, **labels), f"0+0x{before} 1+0x{after}"),
            (_series(DETECTIONS_TOTAL, provider="steady", detector="cusum"),
             f"0+0x{before + after}"),
        ),
        (
            AlertCheck(_d(step_s * (before - 1)), rule),
            AlertCheck(_d(step_s * (before + 2)), rule, (Firing(labels, 1.0),)),
            AlertCheck(_d(step_s * (before + after)), rule),
        ),
    )


def _telemetry_groups(config: AlertingConfig) -> list[TestGroup]:
    scrape_down, absent = telemetry_alerts(config)
    step_s = _ops_step_s(config)
    down_for_s = prom_duration_s(config.scrape_down_for, allow_zero=True)
    absent_for_s = prom_duration_s(config.absent_for, allow_zero=True)
    up_steps = 8
    down_steps = int((down_for_s + 60) / step_s) + 2
    gateway = {"job": config.gateway_job, "instance": "127.0.0.1:8080"}
    providers = {"job": config.providers_job, "instance": "127.0.0.1:9101"}
    absent_steps = int((absent_for_s + 60) / step_s) + 2
    absent_at = _d(step_s * absent_steps)
    return [
        TestGroup(
            "a target that stops answering scrapes pages",
            _d(step_s),
            (
                (_series("up", **gateway), f"1+0x{up_steps} 0+0x{down_steps}"),
                (_series("up", **providers), f"1+0x{up_steps + down_steps}"),
            ),
            (
                AlertCheck(_d(step_s * (up_steps - 1)), scrape_down),
                AlertCheck(_d(step_s * (up_steps + down_steps)), scrape_down,
                           (Firing(gateway, 0.0),)),
            ),
        ),
        TestGroup(
            "no gateway target at all fires metric-absent",
            _d(step_s),
            ((_series("up", **providers), f"1+0x{absent_steps}"),),
            (AlertCheck(absent_at, absent, (Firing({"job": config.gateway_job}, 1.0),)),),
        ),
        TestGroup(
            "a scraped gateway with its metrics does not fire metric-absent",
            _d(step_s),
            (
                (_series("up", **gateway), f"1+0x{absent_steps}"),
                (_series(PROVIDER_HEALTH_SCORE, provider="card_a", **gateway),
                 f"1+0x{absent_steps}"),
            ),
            (AlertCheck(absent_at, absent),),
        ),
    ]


def operational_groups(config: AlertingConfig) -> list[TestGroup]:
    return [_provider_group(config), _hang_group(config), _detector_group(config),
            *_telemetry_groups(config)]


def test_files(config: AlertingConfig, rule_files: list[str]) -> dict[str, dict[str, Any]]:
    """promtool ``test rules`` documents by file name; ``rule_files`` relative to them.

    One file per burn-rate alert plus one for the rest, because promtool has one evaluation
    interval per file: stepping a 3-day test by the minute would take promtool ~15 s.
    """
    files: dict[str, dict[str, Any]] = {}
    for burn in config.burn_alerts:
        groups = _burn_groups(config, burn)
        files[f"{burn.runbook}.test.yml"] = {
            "rule_files": list(rule_files),
            "evaluation_interval": groups[0].interval,
            "tests": [g.to_dict(config) for g in groups],
        }
    files["providers-and-telemetry.test.yml"] = {
        "rule_files": list(rule_files),
        "evaluation_interval": format_prom_duration(_ops_step_s(config)),
        "tests": [g.to_dict(config) for g in operational_groups(config)],
    }
    return files
