"""Checkout records, the sink, SLO arithmetic and windows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from paystab.loadtest.records import CSV_COLUMNS, CheckoutRecord, RecordSink, write_csv
from paystab.loadtest.stats import span_summary, summarize, window_bounds, windows
from paystab.stats_math import percentile

T0 = 1_700_000_000.0


def rec(t: float, outcome: str = "approved", latency_ms: float = 10.0,
        attempts: int = 1) -> CheckoutRecord:
    return CheckoutRecord(T0 + t, "wallet", "KRW", outcome, outcome, "", latency_ms, attempts,
                          200 if outcome != "failed" else 503, 0.5, 1, int(t * 100))


def test_row_round_trip_and_derived_fields() -> None:
    r = rec(1.5, "failed", attempts=3)
    assert CheckoutRecord.from_row(r.to_row()) == r
    assert r.retries == 2 and not r.answered
    assert rec(0, "pending").answered


def test_summary_counts_pending_as_answered() -> None:
    records = [rec(0, "approved"), rec(0.1, "declined"), rec(0.2, "pending"),
               rec(0.3, "failed", attempts=3)]
    s = summarize(records, dropped=1, start_s=0, end_s=2)
    assert (s.requests, s.approved, s.declined, s.pending, s.failed) == (4, 1, 1, 1, 1)
    assert s.failure_rate == pytest.approx(0.25)
    assert s.availability == pytest.approx(0.75)
    assert s.dropped_rate == pytest.approx(0.2)
    assert s.rps == pytest.approx(2.0)
    assert (s.attempts, s.retries) == (6, 2)
    data = s.to_json()
    assert "latencies_ms" not in data and data["retries"] == 2


def test_percentiles_interpolate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_window_bounds_merge_a_short_tail() -> None:
    assert window_bounds(30, 10) == [(0, 10), (10, 20), (20, 30)]
    assert window_bounds(34, 10) == [(0, 10), (10, 20), (20, 34)]
    assert window_bounds(36, 10) == [(0, 10), (10, 20), (20, 30), (30, 36)]
    assert window_bounds(4, 10) == [(0, 4)]


def test_windows_place_records_and_drops_by_start_time() -> None:
    records = [rec(t) for t in (0.1, 4.9, 5.0, 9.99, 10.5)]  # the last started late: tail
    dropped = {int((T0 + 6.0) / 0.1): 3, int((T0 - 0.05) / 0.1): 1}
    series = windows(records, dropped, T0, 10, 5)
    assert [w.summary.requests for w in series] == [2, 3]
    assert [w.summary.dropped for w in series] == [1, 3]
    s = span_summary(records, dropped, T0, 5, 10)
    assert s.requests == 2 and s.dropped == 3


def test_csv_has_one_line_per_checkout_and_no_card_data(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    assert write_csv([rec(0), rec(1, "failed", attempts=2)], path) == 2
    rows = list(csv.reader(path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[2][CSV_COLUMNS.index("retries")] == "1"
    assert "4242" not in path.read_text()


def test_sink_watermark_done_and_callback_errors() -> None:
    seen: list[CheckoutRecord] = []

    def consumer(r: CheckoutRecord) -> None:
        seen.append(r)
        if len(seen) == 2:
            raise RuntimeError("consumer bug")

    sink = RecordSink(on_record=consumer)
    assert sink.watermark() == 0.0
    sink.add_rows([rec(0).to_row(), rec(1).to_row(), rec(2).to_row()])
    assert len(seen) == 3 and len(sink.records) == 3 and sink.callback_errors == 1
    a, b = sink.source("a"), sink.source("b")
    a.watermark, b.watermark = T0 + 5, T0 + 3
    assert sink.watermark() == T0 + 3
    a.done = True
    assert sink.all_done(1) and not sink.all_done(2)
    sink.add_dropped(5, 2)
    sink.add_dropped(5, 1)
    assert sink.dropped_total == 3
    assert [r.started_at for r in sink.recent(2.5, now=T0 + 3)] == [T0 + 2, T0 + 1]
