"""``paystab rules export DIR`` and ``paystab dashboards export DIR``.

Both write generated files (see :mod:`paystab.alerting.export`) for the SLO and windows
given on the command line. A bad ``--slo`` or window is invalid input (exit 2); a directory
that cannot be written is an environment problem (exit 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

_F = Callable[..., Any]


def _alerting_options(func: _F) -> _F:
    options = [
        click.option("--slo", "slo", default="0.9999", show_default=True,
                     help="Availability SLO target, a ratio in (0, 1)."),
        click.option("--slo-period", default="30d", show_default=True,
                     help="SLO period the error budget covers (Prometheus duration)."),
        click.option("--fast-burn-windows", default="1h,5m", show_default=True,
                     help="LONG,SHORT windows of the 14.4x page."),
        click.option("--slow-burn-windows", default="6h,30m", show_default=True,
                     help="LONG,SHORT windows of the 6x page."),
        click.option("--ticket-windows", default="3d,6h", show_default=True,
                     help="LONG,SHORT windows of the 1x ticket."),
        click.option("--provider-window", default="5m", show_default=True,
                     help="Window of the provider failure-rate alerts."),
        click.option("--hang-threshold", default="2s", show_default=True,
                     help="Oldest in-flight attempt age that counts as a hang."),
        click.option("--runbook-url-base", default=None,
                     help="URL prefix of runbooks/alerts/ (default: the paystab repository)."),
        click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="YAML alert spec (schema: `paystab schema show alert-spec`); "
                          "replaces the flags above."),
        click.option("--profile", type=click.Choice(["production", "fast"]),
                     default="production", show_default=True,
                     help="fast: zero `for:` durations and a small traffic guard (drills, tests)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _config(options: dict[str, Any]) -> Any:
    from paystab.alerting.spec import (
        AlertingConfig,
        parse_slo_target,
        parse_window_pair,
        prom_duration_s,
    )

    if options.get("spec") is not None:
        from paystab.alerting.spec_file import load_alert_spec

        return load_alert_spec(options["spec"])
    slo = parse_slo_target(options["slo"], "--slo")
    period = options["slo_period"]
    prom_duration_s(period, source="--slo-period")
    provider_window = options["provider_window"]
    prom_duration_s(provider_window, source="--provider-window")
    hang_s = prom_duration_s(options["hang_threshold"], source="--hang-threshold")
    pairs = {
        "fast": parse_window_pair(options["fast_burn_windows"], "--fast-burn-windows"),
        "slow": parse_window_pair(options["slow_burn_windows"], "--slow-burn-windows"),
        "ticket": parse_window_pair(options["ticket_windows"], "--ticket-windows"),
    }
    base = AlertingConfig.fast() if options["profile"] == "fast" else AlertingConfig()
    burns = []
    for burn, (long_w, short_w) in zip(base.burn_alerts, pairs.values(), strict=True):
        burns.append(replace(burn, long_window=long_w, short_window=short_w))
    url = options["runbook_url_base"] or base.runbook_url_base
    return replace(base, slo_target=slo, slo_period=period, burn_alerts=tuple(burns),
                   hang_threshold_s=hang_s, provider_window=provider_window,
                   runbook_url_base=url if url.endswith("/") else url + "/").validate()


def _write(directory: Path, files: dict[str, str]) -> None:
    from paystab.alerting.export import write_files

    written = write_files(directory, files)
    for path in written:
        click.echo(str(path))
    click.echo(f"wrote {len(written)} files to {directory}", err=True)


@click.group("rules")
def rules_group() -> None:
    """Prometheus recording and alerting rules for paystab's SLOs."""


@rules_group.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@_alerting_options
def rules_export(directory: Path, **options: Any) -> None:
    """Write recording rules, alerting rules and promtool tests to DIRECTORY.

    Check them with `promtool check rules DIRECTORY/*.rules.yml` and
    `promtool test rules DIRECTORY/tests/*.test.yml`.
    """
    from paystab.alerting.export import render_rules

    _write(directory, render_rules(_config(options)))


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards (JSON models for Grafana 10 and 11)."""


@dashboards_group.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@_alerting_options
def dashboards_export(directory: Path, **options: Any) -> None:
    """Write the Grafana dashboard JSON models to DIRECTORY (import them as they are)."""
    from paystab.alerting.export import render_dashboards

    _write(directory, render_dashboards(_config(options)))


def register(group: click.Group) -> None:
    group.add_command(rules_group)
    group.add_command(dashboards_group)
