"""The watch views render the service's snapshot: rich tables on a terminal, JSON lines
otherwise (every decision log entry exactly once, however many there were)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from paystab.collector.series import Sample
from paystab.watch.config import config_from_text
from paystab.watch.service import WatchService
from paystab.watch.view import LiveView, PlainView

CONFIG = """\
sources: [{kind: otlp, listen: '127.0.0.1:0'}]
detectors: {failure_rate: {}, streaming: {feature: p95_ms}}
dry_run: true
"""


def test_plain_view_prints_each_entry_once(capsys: pytest.CaptureFixture[str]) -> None:
    service = WatchService(config_from_text(CONFIG))
    view = PlainView(service)
    for i in range(250):  # more than the service keeps in memory
        service.record({"event": "note", "i": i})
        if i % 100 == 0:
            view.update()
    view.close()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["i"] for x in lines] == list(range(250))


def test_live_view_renders_providers_sources_and_decisions() -> None:
    service = WatchService(config_from_text(CONFIG))
    service.feed([Sample(1000.0, "psp-a", attempts=10, failures=1, p95_ms=120.0)])
    service.source_status["otlp"] = "nothing received for 12s"
    service.record({"event": "would_drain", "provider": "psp-a"})
    view = LiveView.__new__(LiveView)
    view.service = service
    console = Console(record=True, width=160)
    console.print(view._render())
    text = console.export_text()
    assert "paystab watch (dry run)" in text
    assert "psp-a" in text and "120" in text
    assert "nothing received for 12s" in text
    assert "would_drain" in text
