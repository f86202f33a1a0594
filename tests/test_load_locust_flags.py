"""Locust's own flags on ``paystab load``: a stock Locust command line runs, and runs the same.

``-f``, ``-u``, ``-t``/``--run-time``, ``-r``/``--spawn-rate``, ``--headless`` and ``--host``
mean what they mean to Locust: the user's locustfile, the users, the run time, users started
per second, no UI (paystab: no live view), the target. ``-r`` is real: paystab starts the
pool at that rate and the arrivals (t=0) begin when the last user has started, so the
users' ``on_start`` is paced as under Locust. Each run is a real ``paystab load`` subprocess
against the stand-in shop (tests/shop_standin.py), which is not paystab's API.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_load import run_paystab
from tests.shop_standin import Shop, ShopServer

# on_start leaves the time each user started in SPAWN_LOG: how -r paced them is then visible.
LOCUSTFILE = """\
import os, time
from locust import FastHttpUser, task


class Shopper(FastHttpUser):
    def on_start(self):
        with open(os.environ["SPAWN_LOG"], "a") as log:
            log.write(f"{time.time()}\\n")

    @task
    def buy(self):
        self.client.post("/api/checkout", json={"card": "4242424242424242", "amount": 100})
"""


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = ShopServer()
    yield server.start()
    server.stop()


def _run(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[dict[str, object], list[float], list[float], str]:
    """One run: its JSON, the users' start times, the checkouts' start times, its output."""
    spawn_log = tmp_path / f"{name}.spawn"
    monkeypatch.setenv("SPAWN_LOG", str(spawn_log))
    out, rows = tmp_path / f"{name}.json", tmp_path / f"{name}.csv"
    proc = run_paystab("load", *args, "--json", str(out), "--csv", str(rows))
    output = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, output
    starts = sorted(float(x) for x in spawn_log.read_text().split())
    checkouts = sorted(float(r["started_at"]) for r in csv.DictReader(rows.open()))
    return json.loads(out.read_text()), starts, checkouts, proc.stderr


@pytest.mark.slow
def test_a_stock_locust_command_line_runs_as_the_paystab_spelling(
        shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    stock, stock_starts, stock_checkouts, stock_err = _run(
        tmp_path, "stock", monkeypatch,
        "-f", str(locustfile), "--headless", "-u", "10", "-r", "5", "-t", "3s",
        "--host", shop.url)
    ours, our_starts, _, _ = _run(
        tmp_path, "ours", monkeypatch,
        "--locustfile", str(locustfile), "--no-live", "--users", "10", "--duration", "3",
        "--target", shop.url)

    # The same run: 50/s (the default rate) for 3 s from 10 users, all answered, whatever
    # -r said about how the users started.
    for data in (stock, ours):
        summary = data["summary"]
        assert isinstance(summary, dict)
        assert summary["requests"] + summary["dropped"] == 150, summary
        assert summary["failed"] == 0 and summary["approved"] == summary["requests"], summary
        assert data["users"] == 10 and data["profile"]["profile"] == "steady"  # type: ignore[index]
    for key in ("target", "users", "profile", "seed", "processes", "window_s", "thresholds",
                "passed"):
        assert stock[key] == ours[key], key
    assert stock["generator"]["issued"] == ours["generator"]["issued"] == 150  # type: ignore[index]
    counted = [d["summary"]["requests"] for d in (stock, ours)]  # type: ignore[index]
    assert len(shop.checkouts) == sum(counted)
    assert len(stock_starts) == len(our_starts) == 10

    # -r 5 is real: Locust's dispatcher starts 5 users, waits 1 s, starts 5 more (a lower
    # bound: a busy host only makes it later), and the arrivals wait for the last user.
    assert stock_starts[-1] - stock_starts[0] >= 0.8, stock_starts
    assert stock_starts[-1] <= stock_checkouts[0], (stock_starts, stock_checkouts[:3])
    # --headless: no live view (a piped live view prints `elapsed=…` lines to stderr)
    assert "elapsed=" not in stock_err


def test_locust_flags_are_checked_before_any_load(shop: Shop, tmp_path: Path) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    base = ("load", "-f", str(locustfile), "--headless", "--host", shop.url)
    proc = run_paystab(*base, "-u", "4", "-r", "0", "--run-time", "2s")
    assert proc.returncode == 2, proc.stderr
    assert "--spawn-rate" in proc.stderr and "> 0" in proc.stderr
    proc = run_paystab(*base, "-u", "4", "--run-time", "soon")
    assert proc.returncode == 2, proc.stderr
    assert "--duration" in proc.stderr  # --run-time is -t/--duration under Locust's name
    assert not shop.checkouts
