"""`paystab drill --watch FILE`: the drill detects and fails over with `paystab watch`'s parts.

A stack described by its ready file, a watch config whose source is the gateway's /metrics
and whose actuators are the gateway admin API and a webhook (a stand-in feature-flag
service recording what it is told): the provider-timeout drill's hang is detected through
watch, drained through both actuators, and the report says which path detected it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from paystab.report.schema import schema_problems
from tests.conftest import RunningStack


class FlagService:
    """Records every call it gets, like a feature-flag service would apply them."""

    def __init__(self) -> None:
        calls: list[dict[str, Any]] = []
        self.calls = calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                calls.append({"path": self.path, "body": json.loads(self.rfile.read(length) or b"{}")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flags() -> Iterator[FlagService]:
    service = FlagService()
    try:
        yield service
    finally:
        service.close()


@pytest.mark.slow
def test_drill_detects_and_drains_through_a_watch_config(tmp_path: Path, fresh_stack: RunningStack,
                                                         flags: FlagService) -> None:
    endpoints = fresh_stack.endpoints
    providers = "\n".join(f"  - {{name: {name}, methods: [{', '.join(p.methods)}]}}"
                          for name, p in sorted(endpoints.providers.items()))
    config = tmp_path / "watch.yaml"
    config.write_text(f"""\
interval_s: 200ms
providers:
{providers}
sources:
  - kind: metrics_url
    url: {endpoints.metrics_url or endpoints.gateway_url + '/metrics'}
    token_env: DRILL_TEST_TOKEN
actuators:
  - kind: gateway
    url: {endpoints.gateway_url}
    token_env: DRILL_TEST_TOKEN
  - kind: webhook
    url: {flags.url}/flags/{{provider}}
    method: POST
    body: '{{{{"enabled": {{enabled}}, "reason": "{{reason}}"}}}}'
admin: {{listen: '127.0.0.1:0'}}
decision_log: decisions.jsonl
""")
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"),
               DRILL_TEST_TOKEN=endpoints.admin_token or "")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", "provider-timeout", "--no-live",
                           "--duration", "30", "--ready-file", str(fresh_stack.ready_file),
                           "--watch", str(config), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert schema_problems(report) == []
    assert any("detection and failover: watch config" in note for note in report["notes"])
    drains = [f for f in report["failovers"] if f["action"] == "drain"]
    assert [d["provider"] for d in drains][:1] == ["card-alpha"], (drains, done.stderr[-2000:])
    assert report["false_failovers"]["count"] == 0
    assert any(c["path"] == "/flags/card-alpha" and c["body"]["enabled"] is False for c in flags.calls)
    log = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "action_ok" and e.get("actuator") == "gateway"
               and e.get("provider") == "card-alpha" for e in log)
    # The verdict's latency checks depend on how busy the machine is; detection must not.
    judged = {h["expr"]: h["ok"] for h in report["hypotheses"]}
    assert judged["drains >= 1"] and judged["max_ttd_s <= 1"] and judged["false_failovers == 0"], judged
    assert done.returncode in (0, 1, 4), done.stderr[-3000:]


def test_a_bad_watch_config_exits_2_before_any_stack_starts(tmp_path: Path) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text("interval_s: soon\nsources: []\n")
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", "--no-live", "--watch", str(config),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{config}:1" in done.stderr and "Traceback" not in done.stderr
    assert "starting the stack" not in done.stderr
