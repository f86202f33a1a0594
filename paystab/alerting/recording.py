"""Recording rules for the SLIs: payment error ratio per window, provider failure ratio.

Availability SLI (ARCHITECTURE.md): a payment counts as good when the customer got an
answer — approved, declined or pending; only ``outcome="failed"`` (502/503/504, no provider
could answer) spends error budget. The provider SLI excludes customer declines from both
numerator and denominator: a provider that correctly declines a stolen card is healthy.

Each list goes first in the rule group of the alerts that read it (:mod:`.alerts`): rules of
one group run in order, so an alert always sees the ratios of the same evaluation.

Ratios are written so that they exist as soon as there is traffic, even before the first
failure creates the ``failed``/``error`` series (``or 0 * …``); with no traffic at all they
are absent, which is what the metric-absent alert is for.
"""

from __future__ import annotations

from paystab.alerting.rules import RecordingRule
from paystab.alerting.spec import AlertingConfig
from paystab.collector.names import ATTEMPTS_TOTAL, PAYMENTS_TOTAL


def error_ratio_name(window: str) -> str:
    return f"paystab:payments_error_ratio:rate{window}"


def provider_failure_ratio_name(window: str) -> str:
    return f"paystab:provider_failure_ratio:rate{window}"


def provider_counted_attempts_name(window: str) -> str:
    return f"paystab:provider_counted_attempts:increase{window}"


def budget_remaining_name(period: str) -> str:
    return f"paystab:error_budget_remaining:ratio{period}"


def payment_error_ratio_expr(window: str) -> str:
    """failed / all payments over ``window``."""
    every = f"sum(rate({PAYMENTS_TOTAL}[{window}]))"
    failed = f'sum(rate({PAYMENTS_TOTAL}{{outcome="failed"}}[{window}]))'
    return f"(\n  {failed}\n  or\n  0 * {every}\n)\n/\n{every}"


def provider_failure_ratio_expr(window: str, by: str = "provider") -> str:
    """errors / (attempts − declines) per provider over ``window``."""
    counted = f'sum by ({by}) (rate({ATTEMPTS_TOTAL}{{outcome!="declined"}}[{window}]))'
    errors = f'sum by ({by}) (rate({ATTEMPTS_TOTAL}{{outcome="error"}}[{window}]))'
    return f"(\n  {errors}\n  or\n  0 * {counted}\n)\n/\n{counted}"


def payment_sli_rules(config: AlertingConfig) -> list[RecordingRule]:
    """Error ratio per window (every burn-rate window, the SLO period) and budget left."""
    budget = _number(config.error_budget)
    period = config.slo_period
    windows = list(config.recorded_windows())
    if period not in windows:
        windows.append(period)
    rules = [RecordingRule(error_ratio_name(w), payment_error_ratio_expr(w)) for w in windows]
    rules.append(
        RecordingRule(
            budget_remaining_name(period),
            f"1 - {error_ratio_name(period)} / {budget}",
            {"slo": "payments-availability"},
        )
    )
    return rules


def provider_sli_rules(config: AlertingConfig) -> list[RecordingRule]:
    """Failure ratio (declines excluded) and counted attempts per provider."""
    window = config.provider_window
    return [
        RecordingRule(provider_failure_ratio_name(window), provider_failure_ratio_expr(window)),
        RecordingRule(
            provider_counted_attempts_name(window),
            f'sum by (provider) (increase({ATTEMPTS_TOTAL}{{outcome!="declined"}}[{window}]))',
        ),
    ]


def _number(value: float) -> str:
    """A float as PromQL text without binary noise (1 - 0.9999 → "0.0001")."""
    return repr(round(value, 12))
