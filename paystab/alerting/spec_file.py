"""The alert spec file: :class:`~paystab.alerting.spec.AlertingConfig` written as YAML.

``paystab rules export DIR --spec alerts.yaml`` (and ``dashboards export``) read the SLO,
the burn-rate alerts and the provider thresholds from a file instead of flags. Every key is
optional; what is not given is the ``profile``'s value (``production``: the committed rules;
``fast``: zero ``for:``, for drills and tests). Windows are Prometheus durations (``5m``,
``1h30m``), checked when the file loads. The file is YAML 1.2, validated by
:class:`AlertSpecModel` (shipped as ``alert-spec.schema.json``), every error at once::

    profile: production
    slo_target: 0.999
    slo_period: 28d
    burn_alerts:
      - {name: PaystabErrorBudgetBurnFast, runbook: error-budget-burn-fast, severity: page,
         factor: 14.4, long_window: 1h, short_window: 5m, for: 2m}
    provider_warn_ratio: 0.01
    hang_threshold: 2s
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator, Field, WithJsonSchema

from paystab.alerting.spec import AlertingConfig, BurnRateAlert, prom_duration_s
from paystab.config.problems import Problems
from paystab.config.types import Duration, Strict
from paystab.config.yaml12 import load_file_with_lines
from paystab.exceptions import InvalidInput

T = TypeVar("T")
_PROM_PATTERN = r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"


def _prom(allow_zero: bool) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the str type says what is wrong
        try:
            prom_duration_s(value, allow_zero=allow_zero)
        except InvalidInput as exc:
            raise ValueError(f"{exc.problem} (expected {exc.expected})") from None
        return value
    return check


PromWindow = Annotated[str, BeforeValidator(_prom(False)),
                       WithJsonSchema({"type": "string", "pattern": _PROM_PATTERN,
                                       "description": "a Prometheus duration: 5m, 1h, 1h30m"})]
PromFor = Annotated[str, BeforeValidator(_prom(True)),
                    WithJsonSchema({"type": "string", "pattern": _PROM_PATTERN + "|^0$",
                                    "description": "a Prometheus duration, 0s allowed"})]


class BurnAlertModel(Strict):
    """A multi-window burn-rate alert: fires when both windows burn ``factor``× too fast."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    runbook: str = Field(min_length=1, description="slug of runbooks/alerts/<runbook>.md")
    severity: Literal["page", "ticket"]
    factor: float = Field(gt=0)
    long_window: PromWindow
    short_window: PromWindow
    for_: PromFor = Field(default="0s", alias="for")


class AlertSpecModel(Strict):
    """What the generated rules and dashboards watch; a missing key is the profile's."""

    profile: Literal["production", "fast"] = "production"
    slo_target: float | None = Field(default=None, gt=0, lt=1)
    slo_period: PromWindow | None = None
    sli_windows: list[PromWindow] | None = None
    burn_alerts: list[BurnAlertModel] | None = None
    provider_window: PromWindow | None = None
    provider_warn_ratio: float | None = Field(default=None, gt=0, lt=1)
    provider_page_ratio: float | None = Field(default=None, gt=0, lt=1)
    provider_min_attempts: int | None = Field(default=None, ge=0)
    provider_warn_for: PromFor | None = None
    provider_page_for: PromFor | None = None
    hang_threshold: Duration | None = Field(default=None, gt=0)
    hang_for: PromFor | None = None
    detector_window: PromWindow | None = None
    scrape_down_for: PromFor | None = None
    absent_for: PromFor | None = None
    gateway_job: str | None = None
    providers_job: str | None = None
    runbook_url_base: str | None = None
    extra_labels: dict[str, str] | None = None

    def config(self) -> AlertingConfig:
        base = AlertingConfig.fast() if self.profile == "fast" else AlertingConfig()
        burns = base.burn_alerts if self.burn_alerts is None else tuple(
            BurnRateAlert(b.name, b.runbook, b.severity, b.factor, b.long_window,
                          b.short_window, b.for_) for b in self.burn_alerts)
        url = base.runbook_url_base if self.runbook_url_base is None else (
            self.runbook_url_base if self.runbook_url_base.endswith("/")
            else self.runbook_url_base + "/")

        return AlertingConfig(
            slo_target=pick(self.slo_target, base.slo_target),
            slo_period=pick(self.slo_period, base.slo_period),
            sli_windows=base.sli_windows if self.sli_windows is None
            else tuple(self.sli_windows),
            burn_alerts=burns,
            provider_window=pick(self.provider_window, base.provider_window),
            provider_warn_ratio=pick(self.provider_warn_ratio, base.provider_warn_ratio),
            provider_page_ratio=pick(self.provider_page_ratio, base.provider_page_ratio),
            provider_min_attempts=pick(self.provider_min_attempts, base.provider_min_attempts),
            provider_warn_for=pick(self.provider_warn_for, base.provider_warn_for),
            provider_page_for=pick(self.provider_page_for, base.provider_page_for),
            hang_threshold_s=pick(self.hang_threshold, base.hang_threshold_s),
            hang_for=pick(self.hang_for, base.hang_for),
            detector_window=pick(self.detector_window, base.detector_window),
            scrape_down_for=pick(self.scrape_down_for, base.scrape_down_for),
            absent_for=pick(self.absent_for, base.absent_for),
            gateway_job=pick(self.gateway_job, base.gateway_job),
            providers_job=pick(self.providers_job, base.providers_job),
            runbook_url_base=url,
            extra_labels=base.extra_labels if self.extra_labels is None
            else dict(self.extra_labels),
        )


def pick(value: T | None, default: T) -> T:
    """The file's value, or the profile's when the key is absent."""
    return default if value is None else value


def load_alert_spec(path: str | Path) -> AlertingConfig:
    """Read, validate and check an alert spec file; every problem at once (exit 2)."""
    value, lines = load_file_with_lines(path)
    problems = Problems(str(path), lines)
    model = problems.validated(AlertSpecModel, value)
    try:
        return model.config().validate()
    except InvalidInput as exc:  # the checks across fields: windows in order, budgets
        problems.add((), f"{exc.source}: {exc.problem}" if exc.source else exc.problem,
                     exc.expected)
        problems.raise_if_any()
        raise
