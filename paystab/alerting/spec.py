"""What the generated rules watch and how fast: the SLO, the burn-rate windows, thresholds.

:class:`AlertingConfig` is the one input of every generator in this package. Its defaults
are the production values committed under ``dashboards/`` (a 99.99 % availability SLO over
30 days, the SRE Workbook's multi-window multi-burn-rate pairs, the seeds' 1 % / 5 %
provider thresholds). :meth:`AlertingConfig.fast` is the profile tests use against a real
Prometheus: the same expressions with ``for:`` durations of zero and a lower traffic guard,
so an alert fires within seconds instead of minutes. Windows are Prometheus durations
(``5m``, ``1h30m``) and are validated here, so a typo fails at export time with exit 2, not
later inside Prometheus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from paystab.exceptions import InvalidInput

# A Prometheus duration as model.ParseDuration accepts it: units in decreasing order, each once.
_PROM_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_SECONDS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


def prom_duration_s(text: str, *, source: str = "duration", allow_zero: bool = False) -> float:
    """Seconds in a Prometheus duration (``"1h30m"`` → 5400). Raises :class:`InvalidInput`."""
    match = _PROM_DURATION.match(text.strip()) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        if allow_zero and text == "0":
            return 0.0
        raise InvalidInput(
            f"{text!r} is not a Prometheus duration",
            source=source,
            expected="a duration such as 5m, 1h, 6h, 3d or 1h30m (units y w d h m s ms)",
        )
    seconds = sum(float(g) * unit for g, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if g)
    if seconds <= 0 and not allow_zero:
        raise InvalidInput(f"{text!r} is zero", source=source, expected="a positive duration")
    return seconds


def format_prom_duration(seconds: float) -> str:
    """The shortest Prometheus duration for whole seconds (``5400`` → ``"1h30m"``)."""
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_slo_target(text: str, source: str = "--slo") -> float:
    """An SLO target such as ``0.9999``; anything outside (0, 1) is invalid input."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise InvalidInput(
            f"{text!r} is not an SLO target",
            source=source,
            expected="a ratio strictly between 0 and 1, e.g. 0.9999 for 99.99 %",
        )
    return value


def parse_window_pair(text: str, source: str) -> tuple[str, str]:
    """``"1h,5m"`` → ``("1h", "5m")``: a long and a short burn-rate window."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise InvalidInput(
            f"{text!r} is not a window pair", source=source, expected="LONG,SHORT such as 1h,5m"
        )
    long_s = prom_duration_s(parts[0], source=source)
    short_s = prom_duration_s(parts[1], source=source)
    if short_s >= long_s:
        raise InvalidInput(
            f"the short window {parts[1]} is not shorter than the long window {parts[0]}",
            source=source,
            expected="LONG,SHORT with SHORT < LONG, such as 1h,5m",
        )
    return parts[0], parts[1]


@dataclass(frozen=True)
class BurnRateAlert:
    """One multi-window burn-rate alert: fire when both windows burn ``factor``× too fast."""

    name: str  # alert name, e.g. PaystabErrorBudgetBurnFast
    runbook: str  # slug of runbooks/alerts/<runbook>.md
    severity: str  # page | ticket
    factor: float  # burn rate: 1.0 spends the whole budget in exactly one SLO period
    long_window: str
    short_window: str
    for_: str = "0s"


# SRE Workbook, "Alerting on SLOs", multiwindow multi-burn-rate: 2 % of a 30-day budget in 1 h
# (14.4×) and 5 % in 6 h (6×) page; 10 % in 3 d (1×) opens a ticket.
DEFAULT_BURN_ALERTS = (
    BurnRateAlert("PaystabErrorBudgetBurnFast", "error-budget-burn-fast", "page", 14.4,
                  "1h", "5m", "2m"),
    BurnRateAlert("PaystabErrorBudgetBurnSlow", "error-budget-burn-slow", "page", 6.0,
                  "6h", "30m", "15m"),
    BurnRateAlert("PaystabErrorBudgetBurnTicket", "error-budget-burn-ticket", "ticket", 1.0,
                  "3d", "6h", "1h"),
)

# Where the committed rules point on-call engineers; override with --runbook-url-base.
# A path to the runbook shipped with paystab; set --runbook-url-base to your wiki or repository.
DEFAULT_RUNBOOK_URL_BASE = "runbooks/alerts/"


@dataclass(frozen=True)
class AlertingConfig:
    """Everything the rule, test and dashboard generators need to know."""

    slo_target: float = 0.9999
    slo_period: str = "30d"
    sli_windows: tuple[str, ...] = ("5m", "30m", "1h", "6h", "1d", "3d")
    burn_alerts: tuple[BurnRateAlert, ...] = DEFAULT_BURN_ALERTS
    # provider failure rate (errors / non-declined attempts): seeds say alert at 1 %, break at 5 %
    provider_window: str = "5m"
    provider_warn_ratio: float = 0.01
    provider_page_ratio: float = 0.05
    provider_min_attempts: int = 100  # in provider_window: below this the ratio is noise
    provider_warn_for: str = "5m"
    provider_page_for: str = "1m"
    hang_threshold_s: float = 2.0  # oldest in-flight attempt older than this …
    hang_for: str = "1m"  # … continuously for this long
    detector_window: str = "5m"
    scrape_down_for: str = "1m"
    absent_for: str = "5m"
    gateway_job: str = "paystab-gateway"
    providers_job: str = "paystab-providers"
    runbook_url_base: str = DEFAULT_RUNBOOK_URL_BASE
    extra_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fast(cls) -> AlertingConfig:
        """The drill/test profile: zero ``for:`` and a small traffic guard.

        Windows (and so recording-rule names) stay the production ones, so the committed
        dashboards work unchanged against a Prometheus loaded with these rules.
        """
        base = cls()
        return replace(
            base,
            burn_alerts=tuple(replace(b, for_="0s") for b in base.burn_alerts),
            provider_min_attempts=10,
            provider_warn_for="0s",
            provider_page_for="0s",
            hang_for="0s",
            scrape_down_for="0s",
            absent_for="0s",
        )

    @property
    def error_budget(self) -> float:
        return 1.0 - self.slo_target

    def recorded_windows(self) -> tuple[str, ...]:
        """Every SLI window a rule or dashboard reads, shortest first, each once."""
        names = set(self.sli_windows)
        for alert in self.burn_alerts:
            names.update((alert.long_window, alert.short_window))
        return tuple(sorted(names, key=lambda w: prom_duration_s(w)))

    def runbook_url(self, slug: str) -> str:
        return f"{self.runbook_url_base}{slug}.md"

    def validate(self) -> AlertingConfig:
        """Raise :class:`InvalidInput` naming the option that is wrong; return self."""
        parse_slo_target(repr(self.slo_target))
        prom_duration_s(self.slo_period, source="--slo-period")
        for window in self.sli_windows:
            prom_duration_s(window, source="sli window")
        for alert in self.burn_alerts:
            source = f"burn-rate alert {alert.name}"
            if prom_duration_s(alert.short_window, source=source) >= prom_duration_s(
                alert.long_window, source=source
            ):
                raise InvalidInput(
                    f"short window {alert.short_window} is not shorter than {alert.long_window}",
                    source=source,
                )
            prom_duration_s(alert.for_, source=source, allow_zero=True)
            if alert.factor * self.error_budget >= 1.0:
                raise InvalidInput(
                    f"burn rate {alert.factor}× of a {self.error_budget:g} budget is ≥ 100 % errors",
                    source=source,
                    expected="a lower SLO target or a smaller burn factor",
                )
        for name in ("provider_window", "detector_window"):
            prom_duration_s(getattr(self, name), source=f"--{name.replace('_', '-')}")
        for name in ("provider_warn_for", "provider_page_for", "hang_for", "scrape_down_for",
                     "absent_for"):
            prom_duration_s(getattr(self, name), source=name, allow_zero=True)
        if not 0 < self.provider_warn_ratio < self.provider_page_ratio < 1:
            raise InvalidInput(
                "provider thresholds out of order",
                source="provider ratios",
                expected="0 < warn < page < 1",
            )
        return self
