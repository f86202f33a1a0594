"""What ``paystab up`` shows, and the optional Prometheus/Alertmanager next to the stack.

This is tooling started around the system under test, so it lives with the command, not
under ``paystab/stack/``: the stack never imports the alerting, chaos, load, drill or
detection tooling (tests/test_layering.py checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from paystab.cli.plain import show
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.supervisor import RunningStack


def show_endpoints(endpoints: StackEndpoints) -> None:
    """The stack's endpoints: a table on a terminal, ``key=value`` lines in a pipe."""
    table = Table(title="paystab reference stack", title_justify="left")
    table.add_column("part")
    table.add_column("url")
    table.add_column("methods / notes")
    table.add_row("gateway", endpoints.gateway_url, "POST /v1/payments, /metrics, /admin/providers")
    if endpoints.provider_admin_url:
        table.add_row("provider admin", endpoints.provider_admin_url, "runtime faults, /metrics")
    for name, p in endpoints.providers.items():
        table.add_row(name, p.url, f"{', '.join(p.methods)} ({p.dialect})")
    if endpoints.prometheus_url:
        table.add_row("prometheus", endpoints.prometheus_url, "scrapes gateway and providers")
    if endpoints.alertmanager_url:
        table.add_row("alertmanager", endpoints.alertmanager_url, "")
    show(table)
    if endpoints.data_dir:
        click.echo(f"ledgers and logs: {endpoints.data_dir}   (Ctrl-C stops everything)")


def start_monitoring(stack: RunningStack, alertmanager: bool) -> list[Any]:
    """Prometheus (and Alertmanager) on loopback with paystab's rules; returns handles.

    If one fails to start, those already started are stopped before the error goes up.
    """
    handles: list[Any] = []
    try:
        _start_monitoring(stack, alertmanager, handles)
    except BaseException:
        for handle in reversed(handles):  # the ones that did start: stop them now
            handle.stop()
        raise
    return handles


def _start_monitoring(stack: RunningStack, alertmanager: bool, handles: list[Any]) -> None:
    import paystab.alerting.runtime as runtime

    assert stack.endpoints is not None
    endpoints = stack.endpoints
    data = Path(stack.data_dir)
    am_url = None
    failover_url = None
    if alertmanager:
        # Alertmanager → paystab's receiver (webhook + failover controller) → gateway admin API.
        receiver = runtime.start_receiver(endpoints.gateway_url, data / "receiver",
                                          token=endpoints.admin_token)
        handles.append(receiver)
        am = runtime.start_alertmanager(webhook_url=receiver.url + "/alerts",
                                        data_dir=data / "alertmanager")
        handles.append(am)
        am_url = am.url
        endpoints.extra["webhook_url"] = receiver.url + "/alerts"
        failover_url = receiver.url
    from paystab.alerting.serverconfig import scrape_targets_for

    prom = runtime.start_prometheus(scrape_targets=scrape_targets_for(endpoints, failover_url=failover_url),
                                    data_dir=data / "prometheus",
                                    alertmanager_url=am_url)
    handles.append(prom)
    endpoints.prometheus_url = prom.url
    endpoints.alertmanager_url = am_url
