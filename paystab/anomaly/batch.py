"""Batch detection for ``paystab detect``: CSV and Prometheus range-query inputs.

Formats (ARCHITECTURE.md): ``generic`` = CSV ``timestamp,value``; ``payments`` = CSV
``timestamp,provider,attempts,failures[,p95_ms]`` (failures exclude customer declines).
Timestamps are unix seconds or ISO 8601. Every problem names the CSV line: missing,
unparsable, duplicate or unsorted timestamps, NaN/negative/non-integer counts, failures >
attempts, an empty file. With ``repair=True`` the documented repairs apply instead and are
listed: rows with an unparsable timestamp or value are dropped, duplicates keep the first
row, unsorted rows are sorted, failures > attempts are clamped to attempts.

Results are episodes: detections of one provider by one detector closer than ``merge_s``
apart are one episode, reported as ``{"provider", "start", "detected_at", "detector",
"score", "reason"}`` with times in the input's style (ISO in, ISO out).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from paystab.anomaly import base
from paystab.anomaly.base import Detection
from paystab.anomaly.pyod_models import MODELS, PyodDetector
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput

GENERIC_COLUMNS = ("timestamp", "value")
PAYMENTS_COLUMNS = ("timestamp", "provider", "attempts", "failures")


@dataclass
class Table:
    """Parsed input: per series (provider) name, its rows in time order."""

    iso: bool = False
    samples: dict[str, list[Sample]] = field(default_factory=dict)  # payments
    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # generic
    repairs: list[str] = field(default_factory=list)


def parse_timestamp(text: str) -> tuple[float, bool]:
    """``(unix seconds, was_iso)``; raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp(), True
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a time")
    return value, False


def format_time(t: float | None, iso: bool) -> str | float | None:
    if t is None:
        return None
    if iso:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    return round(t, 3)


class _Reader:
    def __init__(self, path: str, repair: bool) -> None:
        self.path, self.repair = path, repair
        self.repairs: list[str] = []

    def fail_or_note(self, line: int, field_name: str, problem: str, expected: str,
                     repaired: str) -> None:
        if not self.repair:
            raise InvalidInput(problem, source=self.path, line=line, field=field_name,
                               expected=expected, hint="fix the row, or pass --repair")
        self.repairs.append(f"line {line}: {problem}: {repaired}")


def _rows(path: str, required: Sequence[str]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(fh))
                    if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise InvalidInput("file not found", source=path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"cannot read the CSV: {exc}", source=path) from None
    if not rows:
        raise InvalidInput("the file is empty", source=path, expected="a header and data rows")
    line, header = rows[0]
    header = [h.strip().lower() for h in header]
    for column in required:
        if column not in header:
            raise InvalidInput(f"missing column '{column}'", source=path, line=line,
                               expected="a header with " + ",".join(required))
    if len(rows) == 1:
        raise InvalidInput("no data rows", source=path, line=line, expected="at least one row")
    return header, rows[1:]


def _cell(header: list[str], row: list[str], name: str) -> str:
    i = header.index(name)
    return row[i].strip() if i < len(row) else ""


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def read_generic(path: str, repair: bool = False) -> Table:
    header, rows = _rows(path, GENERIC_COLUMNS)
    r = _Reader(path, repair)
    table = Table()
    points: list[tuple[float, float, int]] = []
    for line, row in rows:
        try:
            t, iso = parse_timestamp(_cell(header, row, "timestamp"))
        except ValueError as exc:
            r.fail_or_note(line, "timestamp", f"cannot read the timestamp: {exc}",
                           "unix seconds or ISO 8601", "row dropped")
            continue
        table.iso = table.iso or iso
        try:
            value = _number(_cell(header, row, "value"))
        except ValueError:
            r.fail_or_note(line, "value", f"not a number: {_cell(header, row, 'value')!r}",
                           "a finite number", "row dropped")
            continue
        points.append((t, value, line))
    table.points["series"] = [(t, v) for t, v, _ in _ordered(r, points, "timestamp")]
    table.repairs = r.repairs
    return table


def _ordered(r: _Reader, points: list[Any], what: str) -> list[Any]:
    """Check time order and duplicates per series (sorted by the first element)."""
    out: list[Any] = []
    seen: set[float] = set()
    unsorted = False
    for item in points:
        t, line = item[0], item[-1]
        if t in seen:
            r.fail_or_note(line, what, "duplicate timestamp", "one row per timestamp",
                           "row dropped (first kept)")
            continue
        if out and t < out[-1][0] and not unsorted:
            r.fail_or_note(line, what, "timestamps are not in order",
                           "rows sorted by time", "rows sorted")
            unsorted = True
        seen.add(t)
        out.append(item)
    return sorted(out, key=lambda p: p[0]) if unsorted else out


def read_payments(path: str, repair: bool = False) -> Table:
    header, rows = _rows(path, PAYMENTS_COLUMNS)
    r = _Reader(path, repair)
    table = Table()
    has_p95 = "p95_ms" in header
    per: dict[str, list[tuple[float, Sample, int]]] = {}
    for line, row in rows:
        try:
            t, iso = parse_timestamp(_cell(header, row, "timestamp"))
        except ValueError as exc:
            r.fail_or_note(line, "timestamp", f"cannot read the timestamp: {exc}",
                           "unix seconds or ISO 8601", "row dropped")
            continue
        table.iso = table.iso or iso
        provider = _cell(header, row, "provider")
        if not provider:
            r.fail_or_note(line, "provider", "empty provider", "a provider name", "row dropped")
            continue
        counts = []
        for name in ("attempts", "failures"):
            text = _cell(header, row, name)
            try:
                value = _number(text)
                if value < 0 or value != int(value):
                    raise ValueError
                counts.append(int(value))
            except ValueError:
                r.fail_or_note(line, name, f"bad count {text!r}", "an integer >= 0",
                               "row dropped")
                break
        if len(counts) < 2:
            continue
        attempts, failures = counts
        if failures > attempts:
            r.fail_or_note(line, "failures", f"failures ({failures}) > attempts ({attempts})",
                           "failures <= attempts", "failures clamped to attempts")
            failures = attempts
        p95 = None
        if has_p95 and _cell(header, row, "p95_ms"):
            try:
                p95 = _number(_cell(header, row, "p95_ms"))
                if p95 < 0:
                    raise ValueError
            except ValueError:
                r.fail_or_note(line, "p95_ms", f"bad latency {_cell(header, row, 'p95_ms')!r}",
                               "milliseconds >= 0 or empty", "latency left out")
                p95 = None
        sample = Sample(time=t, provider=provider, attempts=attempts, failures=failures,
                        p95_ms=p95)
        per.setdefault(provider, []).append((t, sample, line))
    for provider, items in per.items():
        ordered = _ordered(r, items, "timestamp")
        samples = [s for _, s, _ in ordered]
        table.samples[provider] = [
            Sample(**{**s.to_json(), "interval_s": s.time - samples[i - 1].time if i else 0.0})
            for i, s in enumerate(samples)
        ]
    if not table.samples:
        raise InvalidInput("no usable rows", source=path)
    table.repairs = r.repairs
    return table


def detect_payments(table: Table, detectors: Sequence[str],
                    options: dict[str, dict[str, Any]] | None = None) -> list[Detection]:
    found: list[Detection] = []
    for name in detectors:
        for _, samples in sorted(table.samples.items()):
            detector = base.create(name, (options or {}).get(name))
            if isinstance(detector, PyodDetector):
                found.extend(detector.detect_samples(samples))
                continue
            for sample in samples:
                detection = detector.update(sample)
                if detection is not None:
                    found.append(detection)
    return found


def detect_points(points: dict[str, list[tuple[float, float]]], detector: str,
                  options: dict[str, Any] | None = None) -> list[Detection]:
    if detector not in MODELS:
        raise InvalidInput(f"detector '{detector}' does not work on a generic series",
                           field="--detector", expected="one of " + ", ".join(MODELS))
    model = base.create(detector, options)
    assert isinstance(model, PyodDetector)
    found = []
    for name, series in sorted(points.items()):
        found.extend(model.detect_series(name, [t for t, _ in series], [v for _, v in series]))
    return found


def episodes(found: Sequence[Detection], iso: bool, merge_s: float = 60.0) -> list[dict[str, Any]]:
    """Detections merged into episodes, in time order, as ``paystab detect --json`` rows."""
    out: list[dict[str, Any]] = []
    last: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for d in sorted(found, key=lambda d: (d.at, d.provider, d.detector)):
        key = (d.provider, d.detector)
        previous = last.get(key)
        if previous is not None and d.at - previous[0] <= merge_s:
            last[key] = (d.at, previous[1])
            previous[1]["score"] = round(max(previous[1]["score"], d.score), 3)
            continue
        row = {"provider": d.provider, "start": format_time(d.start if d.start is not None
                                                             else d.at, iso),
               "detected_at": format_time(d.at, iso), "detector": d.detector,
               "score": round(d.score, 3), "reason": d.reason}
        out.append(row)
        last[key] = (d.at, row)
    return out
