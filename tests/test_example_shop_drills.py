"""paystab drills the example shop (examples/shop/) through its stack file, as a user would.

``paystab drill RUNBOOK --stack examples/shop/stack.yaml`` starts the PSP simulators the
file names and the shop (``python -m shop``) pointed at them; the load goes through the
shop's own checkout API (order, then pay), the fault through the simulators, detection
reads the shop's own metric names from a real Prometheus (Debian's, scraping the shop with
examples/shop/prometheus.yml), failover goes through the shop's own switch, and the
reconciliation reads the shop's orders table in a real PostgreSQL. Each drill runs at its
runbook's shortest judgeable duration and must pass (exit 0) with every hypothesis judged:
none may be "not applicable", since the stack file provides everything. provider-timeout
runs once more with a CPU burner on every core: still only the hung PSP is switched off.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.report.schema import schema_problems
from paystab.stack.providers import read_ledger
from tests.conftest_alerting import need_binary
from tests.conftest_postgres import PostgresServer, postgres_server  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
STACK_FILE = SHOP / "stack.yaml"
# The shop is one Python process: ~3 ms of CPU per checkout (two requests, an SDK call,
# three statements). The runbooks' own rates (100/s; a flash sale 30/s rising tenfold) are
# the reference gateway's; the stack file says what the shop takes (``load: max_rps``), and
# the drills run as a user types them, without --rps: each runbook's shape is scaled down
# to peak there, as the report's notes say.
MAX_RPS = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """Debian's prometheus with examples/shop/prometheus.yml, its target the test's port."""

    def __init__(self, workdir: Path, metrics_port: int) -> None:
        from paystab import httpclient
        from paystab.children import spawn

        binary = need_binary("prometheus", "prometheus")
        config = workdir / "prometheus.yml"
        text = (SHOP / "prometheus.yml").read_text()
        assert "127.0.0.1:9464" in text
        config.write_text(text.replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}"))
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = spawn([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                          what="test prometheus", death_signal=signal.SIGTERM, stdout=self.log,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while httpclient.get_status(self.url + "/-/ready", 1.0) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("prometheus did not start: "
                                     + (workdir / "prometheus.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        from paystab.children import forget

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        forget(self.proc)
        self.log.close()


@pytest.fixture
def shop_env(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[dict[str, str]]:  # noqa: F811
    """What stack.yaml asks of its environment: ports, a fresh database, a Prometheus."""
    for module in ("stripe", "Adyen", "psycopg"):  # what the shop imports
        pytest.importorskip(module) if os.environ.get("CI") != "true" else __import__(module)
    metrics_port = _free_port()
    prometheus = Prometheus(tmp_path, metrics_port)
    try:
        yield dict(os.environ,
                   # `python` in the service command is the interpreter running the tests
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   PAYSTAB_STATE_DIR=str(tmp_path / "state"),
                   SHOP_PORT=str(_free_port()), SHOP_METRICS_PORT=str(metrics_port),
                   SHOP_DATABASE_URL=postgres_server.create_database("shop"),
                   SHOP_PROMETHEUS_URL=prometheus.url)
    finally:
        prometheus.stop()


def drill(runbook: str, env: dict[str, str], out: Path, *extra: str
          ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    from paystab.chaos.bundled import find_runbook
    from paystab.chaos.runbook import load_runbook

    shortest = max(20.0, load_runbook(find_runbook(runbook)).load.min_duration_s)
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", runbook, "--stack", str(STACK_FILE),
                           "--duration", f"{shortest:g}", "--no-live", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=240, env=env, cwd=out.parent)
    path = out / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    return done, report


def orders(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT reference, amount_minor, currency, state, psp, "
                                 "psp_reference FROM orders").fetchall())


def explain(done: subprocess.CompletedProcess[str], report: dict[str, Any], out: Path) -> str:
    failed = [h for h in report.get("hypotheses", []) if h.get("ok") is not True]
    log = out / "stack" / "service.log"
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    return f"{failed}\n{done.stdout[-2500:]}\n{done.stderr[-2500:]}\nservice log:\n{tail}"


def check_common(report: dict[str, Any], env: dict[str, str], out: Path) -> list[dict[str, Any]]:
    """What both drills must show: the report is whole, every hypothesis was judged, and the
    reconciliation read the shop's own table against the simulators."""
    assert schema_problems(report) == []
    assert report["verdict"] == "pass"
    assert all(h["ok"] is True for h in report["hypotheses"]), report["hypotheses"]
    assert report["reconciliation"]["double_charges"] == 0
    assert report["reconciliation"]["lost_payments"] == 0
    assert report["reconciliation"]["orphans"] == 0
    rows = orders(env["SHOP_DATABASE_URL"])
    paid = [r for r in rows if r["state"] == "paid"]
    # the load went through the shop's API: one paid order per approved checkout (and per
    # checkout the stop cut off, which the shop still finished)
    cut = [int(m.group(1)) for n in report["notes"] if (m := re.match(r"(\d+) checkout\(s\) cut off", n))]
    assert report["traffic"]["approved"] <= len(paid) <= report["traffic"]["approved"] + sum(cut)
    assert len(paid) > 0
    assert all(r["psp"] in ("card-alpha", "card-bravo") and r["psp_reference"] for r in paid)
    # and the PSP side is the simulators' ledgers, which hold the shop's order references
    captured: dict[str, set[str]] = {}
    for name in ("card-alpha", "card-bravo"):
        ledger = out / "stack" / "simulators" / f"{name}.sqlite3"
        captured[name] = {row.payment_id for row in read_ledger(ledger) if row.status == "captured"} \
            if ledger.exists() else set()
    for row in paid:
        assert row["reference"] in captured[row["psp"]], row
    return rows


@pytest.mark.slow
@pytest.mark.prometheus
def test_provider_timeout_drill_of_the_shop(tmp_path: Path, shop_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    done, report = drill("provider-timeout", shop_env, out)
    assert done.returncode == 0, explain(done, report, out)
    assert report["load"]["rate_per_s"] == MAX_RPS
    assert any("load.max_rps" in note for note in report["notes"]), report["notes"]
    rows = check_common(report, shop_env, out)
    # detected from the shop's metrics via Prometheus, drained through the shop's switch
    assert [d["provider"] for d in report["detections"]][:1] == ["card-alpha"]
    drains = [f for f in report["failovers"] if f["action"] == "drain"]
    assert [d["provider"] for d in drains][:1] == ["card-alpha"]
    decisions = [json.loads(line) for line in (out / "stack" / "decisions.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "action_ok" and e.get("actuator") == "shop-switch"
               and e.get("provider") == "card-alpha" and e.get("action") == "drain" for e in decisions)
    # while card-alpha hung, customers were paid through card-bravo
    assert any(r["state"] == "paid" and r["psp"] == "card-bravo" for r in rows)
    assert report["traffic"]["failed"] == 0


@pytest.mark.slow
@pytest.mark.prometheus
def test_flash_sale_drill_of_the_shop(tmp_path: Path, shop_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    done, report = drill("flash-sale", shop_env, out)
    assert done.returncode == 0, explain(done, report, out)
    assert report["load"]["rate_per_s"] == pytest.approx(MAX_RPS / 10)  # a tenfold sale
    rows = check_common(report, shop_env, out)
    assert report["detections"] == [] and report["failovers"] == []
    decisions = [json.loads(line) for line in (out / "stack" / "decisions.jsonl").read_text().splitlines()]
    assert not [e for e in decisions if e.get("event") in ("decision", "action_ok")]  # switch untouched
    # nothing broke, so the primary kept the orders (a payment the shop's own timeout moved
    # to card-bravo while the host stalled is the shop's business, not a failover)
    decided = [r["psp"] for r in rows if r["state"] in ("paid", "declined")]
    assert decided.count("card-alpha") >= 0.9 * len(decided), decided.count("card-bravo")


@pytest.mark.slow
@pytest.mark.prometheus
def test_provider_timeout_drill_of_the_shop_with_every_core_busy(
        tmp_path: Path, shop_env: dict[str, str],
        cpu_burners: list[subprocess.Popen[bytes]]) -> None:
    """The same drill with every core busy: the hung PSP is still the only one switched off
    (a stall of the whole host is the shop's loop lag, not a PSP failure), and the verdict is
    a pass, or inconclusive when the drill says its own load could not keep up."""
    out = tmp_path / "out"
    done, report = drill("provider-timeout", shop_env, out)
    assert all(b.poll() is None for b in cpu_burners), "a burner stopped before the drill ended"
    assert schema_problems(report) == [], explain(done, report, out)
    assert report["false_failovers"]["count"] == 0, explain(done, report, out)
    assert report["verdict"] in ("pass", "inconclusive"), explain(done, report, out)
    assert done.returncode == (0 if report["verdict"] == "pass" else 4)
    drains = [f["provider"] for f in report["failovers"] if f["action"] == "drain"]
    assert drains[:1] == ["card-alpha"] and set(drains) == {"card-alpha"}, report["failovers"]
    assert report["reconciliation"]["double_charges"] == 0
    assert report["reconciliation"]["lost_payments"] == 0
