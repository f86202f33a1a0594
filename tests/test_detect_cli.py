"""``paystab detect``: CSV formats, bad input naming the row (exit 2), --repair, JSON output,
and a Prometheus range query (exit 4 when it does not answer)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from paystab.anomaly.batch import episodes, read_generic, read_payments
from paystab.exceptions import InvalidInput
from tests.conftest_anomaly import Exporter, free_port, start_prometheus, wait_for

HEADER = "timestamp,provider,attempts,failures,p95_ms\n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paystab", "detect", *args],
                          capture_output=True, text=True, timeout=120)


def _payments_csv(path: Path, change_at: int = 1500, seconds: int = 1800) -> Path:
    rng = np.random.default_rng(0)
    lines = [HEADER]
    for i in range(seconds):
        for provider in ("acme", "zeta"):
            n = int(rng.poisson(100))
            p = 0.05 if provider == "acme" and i >= change_at else 0.005
            lines.append(f"{1_700_000_000 + i},{provider},{n},{rng.binomial(n, p)},"
                         f"{rng.normal(200, 10):.1f}\n")
    path.write_text("".join(lines))
    return path


def test_payments_csv_json_output(tmp_path: Path) -> None:
    result = _run("--input", str(_payments_csv(tmp_path / "p.csv")), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["provider"] for r in rows] == ["acme"]
    row = rows[0]
    assert set(row) >= {"provider", "start", "detected_at", "detector", "score"}
    assert row["detector"] == "failure_rate"
    assert 1_700_001_500 <= row["detected_at"] <= 1_700_001_505
    assert 1_700_001_490 <= row["start"] <= row["detected_at"]


def test_table_output_and_iso_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text(HEADER + "".join(
        f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z,acme,100,{0 if i < 300 else 100},\n"
        for i in range(400)))
    result = _run("--input", str(path))
    assert result.returncode == 0 and "acme" in result.stdout and "failure_rate" in result.stdout
    rows = json.loads(_run("--input", str(path), "--json").stdout)
    assert rows[0]["detected_at"].startswith("2026-01-01T00:05:0")


def test_generic_series_with_pyod(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = list(rng.normal(50, 2, 300)) + list(rng.normal(90, 2, 30))
    path = tmp_path / "g.csv"
    path.write_text("timestamp,value\n" + "".join(f"{i},{v:.3f}\n" for i, v in enumerate(values)))
    # IForest here: ECOD and HBOS JIT-compile with numba on first use in a fresh process
    result = _run("--input", str(path), "--format", "generic", "--detector", "iforest",
                  "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and rows[0]["detector"] == "iforest" and 300 <= rows[0]["detected_at"] <= 310


@pytest.mark.parametrize(("body", "line", "field"), [
    ("1,acme,10,1\nx,acme,10,1\n", 3, "timestamp"),
    ("1,acme,10,1\n1,acme,10,2\n", 3, "timestamp"),  # duplicate
    ("2,acme,10,1\n1,acme,10,1\n", 3, "timestamp"),  # unsorted
    ("1,acme,nan,1\n", 2, "attempts"),
    ("1,acme,10,-1\n", 2, "failures"),
    ("1,acme,10,11\n", 2, "failures"),  # failures > attempts
    (",acme,10,1\n", 2, "timestamp"),  # missing
])
def test_bad_rows_are_named(tmp_path: Path, body: str, line: int, field: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,provider,attempts,failures\n" + body)
    with pytest.raises(InvalidInput) as info:
        read_payments(str(path))
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.source == str(path)


def test_bad_input_exits_2_and_repair_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,provider,attempts,failures\n3,acme,10,1\n1,acme,10,12\n"
                    "1,acme,5,0\nnope,acme,1,1\n2,acme,10,0\n")
    result = _run("--input", str(path))
    assert result.returncode == 2 and f"{path}:3" in result.stderr and "failures" in result.stderr
    result = _run("--input", str(path), "--repair", "--json")
    assert result.returncode == 0, result.stderr
    assert "repaired" in result.stderr and "clamped" in result.stderr
    table = read_payments(str(path), repair=True)
    assert [s.time for s in table.samples["acme"]] == [1.0, 2.0, 3.0]
    assert table.samples["acme"][0].failures == 10  # clamped
    for empty in ("", "timestamp,value\n"):
        (tmp_path / "e.csv").write_text(empty)
        with pytest.raises(InvalidInput):
            read_generic(str(tmp_path / "e.csv"))
    assert _run("--input", str(tmp_path / "missing.csv")).returncode == 2
    assert _run("--input", str(path), "--detector", "nope").returncode == 2


def test_unanswering_prometheus_exits_4() -> None:
    result = _run("--prometheus", f"http://127.0.0.1:{free_port()}", "--query", "up")
    assert result.returncode == 4 and "does not answer" in result.stderr


def test_episodes_merge_repeated_alarms() -> None:
    from paystab.anomaly.base import Detection

    found = [Detection("a", "failure_rate", t, 1.0 + t / 100, "r", t - 1) for t in (10, 20, 200)]
    rows = episodes(found, iso=False, merge_s=60)
    assert [r["detected_at"] for r in rows] == [10, 200] and rows[0]["score"] == 1.2


@pytest.mark.prometheus
def test_prometheus_range_query(tmp_path: Path) -> None:
    exporter = Exporter()
    proc, url = start_prometheus(tmp_path, [exporter.url.split("/")[2]])
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            exporter.record("acme", approved=10, errors=1)
            time.sleep(0.05)

    threading.Thread(target=traffic, daemon=True).start()
    try:
        def enough() -> bool:
            result = _run("--prometheus", url, "--query",
                          "sum by (provider) (paystab_provider_attempts_total)",
                          "--start", "-30s", "--step", "1s", "--json")
            assert result.returncode == 0, result.stderr
            return isinstance(json.loads(result.stdout), list)

        wait_for(enough, timeout_s=20, every_s=1.0)
        bad = _run("--prometheus", url, "--query", "sum(", "--json")
        assert bad.returncode == 2 and "rejected" in bad.stderr
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=10)
        exporter.close()
