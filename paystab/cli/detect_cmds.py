"""``paystab detect``: batch anomaly detection on a CSV or a Prometheus range query.

Parse, call :mod:`paystab.anomaly.batch`, render (a table, or JSON with ``--json``).
Bad input is exit 2 naming the CSV line; a Prometheus that does not answer is exit 4.
"""

from __future__ import annotations

import time
from typing import Any

import click

from paystab.cli.conventions import check_json_dest, emit_json, json_option


def _when(text: str, flag: str) -> float:
    """``now``, ``-1h`` (relative to now), unix seconds or ISO 8601."""
    from paystab.anomaly.batch import parse_timestamp
    from paystab.exceptions import InvalidInput
    from paystab.units import parse_duration_s

    text = text.strip()
    if text == "now":
        return time.time()
    try:
        if text.startswith("-"):
            return time.time() - parse_duration_s(text[1:])
        return parse_timestamp(text)[0]
    except ValueError as exc:
        raise InvalidInput(str(exc), source=flag, expected="now, -30m, unix seconds or ISO 8601"
                           ) from None


@click.command("detect")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help="CSV file.")
@click.option("--format", "fmt", type=click.Choice(["generic", "payments"]), default="payments",
              show_default=True, help="generic: timestamp,value; payments: "
              "timestamp,provider,attempts,failures[,p95_ms].")
@click.option("--detector", "detector_names", multiple=True,
              help="Detector name (repeatable). Default: failure_rate (+latency with p95_ms) "
              "for payments, streaming for generic series (ecod, hbos, iforest on request).")
@json_option("JSON instead of a table: on stdout (--json, --json -) or into FILE.")
@click.option("--repair", is_flag=True, help="Drop/sort/clamp bad rows instead of failing.")
@click.option("--false-alarm-every", default="24h", show_default=True,
              help="failure_rate: at most one false alarm per this much traffic.")
@click.option("--merge", "merge_s", default="60s", show_default=True,
              help="Detections closer than this form one episode.")
@click.option("--prometheus", help="Prometheus base URL (range query input).")
@click.option("--query", help="PromQL expression (with --prometheus).")
@click.option("--start", default="-1h", show_default=True, help="Range start.")
@click.option("--end", default="now", show_default=True, help="Range end.")
@click.option("--step", default="15s", show_default=True, help="Range step.")
def detect(input_path: str | None, fmt: str, detector_names: tuple[str, ...],
           json_dest: str | None,
           repair: bool, false_alarm_every: str, merge_s: str, prometheus: str | None,
           query: str | None, start: str, end: str, step: str) -> None:
    """Find anomalies in a CSV of per-provider counts, any metric series, or a PromQL range."""
    from paystab.anomaly import batch
    from paystab.exceptions import InvalidInput
    from paystab.units import parse_duration_s

    check_json_dest(json_dest)
    try:
        merge = parse_duration_s(merge_s)
        step_s = parse_duration_s(step)
    except ValueError as exc:
        raise InvalidInput(str(exc), source="--merge/--step", expected="a duration like 15s"
                           ) from None
    if (input_path is None) == (prometheus is None):
        raise InvalidInput("give either --input FILE or --prometheus URL --query EXPR",
                           source="command line")
    if prometheus is not None:
        if not query:
            raise InvalidInput("--prometheus needs --query", source="--query")
        from paystab.collector.sampler import query_range

        t0, t1 = _when(start, "--start"), _when(end, "--end")
        if t1 <= t0 or step_s <= 0:
            raise InvalidInput("the range is empty", source="--start/--end/--step")
        points: dict[str, list[tuple[float, float]]] = {}
        for labels, series in query_range(prometheus, query, t0, t1, step_s):
            name = labels.get("provider") or ",".join(f"{k}={v}" for k, v in
                                                      sorted(labels.items())) or query
            points[name] = series
        table = batch.Table(iso=True, points=points)
        fmt = "generic"
    else:
        assert input_path is not None
        reader = batch.read_generic if fmt == "generic" else batch.read_payments
        table = reader(input_path, repair)
    options: dict[str, dict[str, Any]] = {
        "failure_rate": {"false_alarm_every_h": false_alarm_every}
    }
    if fmt == "generic":
        # streaming wins the labelled generic corpus (benchmarks/generic_detectors.py, NAB
        # score on the held-out seed: 67 against ecod 24, hbos 5, iforest 0; a detector that
        # never fires scores 0), so it is the default
        names = detector_names or ("streaming",)
        found = []
        for name in names:
            if name == "streaming":
                from paystab.anomaly.streaming import StreamingDetector

                detector = StreamingDetector()
                for key, series in sorted(table.points.items()):
                    found.extend(detector.detect_series(key, [t for t, _ in series],
                                                         [v for _, v in series]))
                continue
            found.extend(batch.detect_points(table.points, name, options.get(name)))
    else:
        has_p95 = any(s.p95_ms is not None for ss in table.samples.values() for s in ss)
        names = detector_names or (("failure_rate", "latency") if has_p95 else ("failure_rate",))
        found = batch.detect_payments(table, names, options)
    rows = batch.episodes(found, table.iso, merge)
    for note in table.repairs:
        click.echo(f"paystab: repaired {note}", err=True)
    if json_dest:
        emit_json(rows, json_dest)
        return
    _render(rows, names)


def _render(rows: list[dict[str, Any]], names: tuple[str, ...]) -> None:
    from rich.table import Table

    from paystab.cli.plain import show

    if not rows:
        click.echo(f"no anomalies found (detectors: {', '.join(names)})")
        return
    table = Table(title=f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'}")
    for column in ("provider", "start", "detected at", "detector", "score", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row["provider"]), str(row["start"]), str(row["detected_at"]),
                      row["detector"], f"{row['score']:.2f}", row["reason"])
    show(table)  # a table on a terminal, key=value lines in a pipe


def register(group: click.Group) -> None:
    group.add_command(detect)
