"""CUSUM thresholds without solving anything on the hot path: a shipped table, a fallback.

The failure-rate detector needs, at every change of its learned baseline ``p0`` or traffic
rate, the threshold of each CUSUM of its bank for an in-control ARL. Solving the Markov
chain (``arl.threshold_for``) costs 10–70 ms a threshold; done inside ``observe()`` it cost
up to 0.26 s on the sampler thread of a live drill and 6–10 µs per observation over the
first 200k observations of a fresh process. So:

* **the table** (``thresholds.npz`` beside this module, built by
  ``python -m paystab.anomaly.threshold_table``): for the default bank (shifts 2 %, 5 %,
  20 %, dead; alternatives ``max(shift, 2 p0)``) the threshold at every baseline of the 5 %
  grid from 0.01 % to 50 % and every in-control ARL ``2^10 .. 2^36`` attempts in steps of
  2. An ARL between two rows takes the threshold of the row above: never more false alarms
  than asked, at most ``ln 2 = 0.69`` more in ``h`` (a few % of delay; a finer grid costs
  proportionally more to build: ~4 CPU-minutes for this one, 600-state chains).
  Linear interpolation was tried and rejected: when failures are rare and decisive the ARL
  is a step function of ``h`` and interpolation came out up to 0.38 too low (a dead-provider
  CUSUM one failure short). A look-up is a few microseconds, once per block.
* **anything else** (custom shifts, a baseline or ARL off the table): Lorden's bound
  ``ARL0 >= e^h`` makes ``h = ln(ARL)`` always safe (never more false alarms than asked,
  a little slower to detect), and a background thread computes the exact threshold; the
  detector picks it up at its next block. The hot path never waits for it.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paystab.anomaly.arl import _grid, cusum_arl, llr_steps, threshold_for

P0_GRID = 0.05  # relative step of the baseline grid (ln p0 in steps of 0.05)
P1_CAP = 0.995  # a "dead provider" alternative; p1 = 1 would make one success decisive
DEFAULT_SHIFTS = (0.02, 0.05, 0.2, 1.0)
DEFAULT_MIN_RATIO = 2.0
P0_INDEX_RANGE = (math.ceil(math.log(1e-4) / P0_GRID), math.floor(math.log(0.5) / P0_GRID))
ARL_LOG2_RANGE = (10, 36)
ARL_STEPS_PER_OCTAVE = 1
TABLE_PATH = Path(__file__).with_name("thresholds.npz")
_TABLE_STATES = 600
_TOLERANCE = 2e-3


def alternatives(p0: float, shifts: Sequence[float], min_ratio: float) -> list[float]:
    """The bank's alternatives for baseline ``p0``: ``max(shift, min_ratio x p0)``, capped."""
    out = sorted({min(P1_CAP, max(s, min_ratio * p0)) for s in shifts})
    return [p1 for p1 in out if p1 > p0]


def grid_p0(index: int) -> float:
    return math.exp(index * P0_GRID)


class ThresholdTable:
    """The shipped table: ``h[i, j, k]`` for baseline index ``i`` (``P0_INDEX_RANGE``),
    alternative slot ``j`` (``p1[i, j]``, NaN when absent) and ARL ``2^log2_arl[k]``."""

    def __init__(self, p1: np.ndarray[Any, Any], h: np.ndarray[Any, Any],
                 log2_arl: np.ndarray[Any, Any]) -> None:
        self.p1 = p1
        self.h = h
        self.log2_arl = log2_arl
        rows: list[list[list[float]]] = h.tolist()
        self._rows: dict[tuple[int, float], list[float]] = {
            (i, x): rows[i][j] for i, xs in enumerate(p1.tolist())
            for j, x in enumerate(xs) if x == x  # NaN: no such alternative at this baseline
        }
        self._lo = float(log2_arl[0])
        self._per_octave = round(1.0 / float(log2_arl[1] - log2_arl[0]))

    def lookup(self, p0: float, p1: float, arl0: float) -> float | None:
        """The threshold for ``p0`` (a grid value) → ``p1`` at ``arl0``; None off the table."""
        i = round(math.log(p0) / P0_GRID) - P0_INDEX_RANGE[0]
        hs = self._rows.get((i, p1))
        if hs is None or abs(grid_p0(i + P0_INDEX_RANGE[0]) / p0 - 1) > 1e-9:
            return None
        # the row at or above: h grows with the ARL, so this never under-calibrates
        k = max(0, math.ceil((math.log2(max(arl0, 2.0)) - self._lo) * self._per_octave - 1e-9))
        if k >= len(hs):
            return None
        return hs[k]


_table: ThresholdTable | None = None
_table_loaded = False


def table() -> ThresholdTable | None:
    """The shipped table (loaded once), or None when the file is missing."""
    global _table, _table_loaded
    if not _table_loaded:
        _table_loaded = True
        if TABLE_PATH.exists():
            with np.load(TABLE_PATH) as data:
                log2_arl = (data["log2_arl"] if "log2_arl" in data else
                            np.arange(ARL_LOG2_RANGE[0], ARL_LOG2_RANGE[1] + 1, dtype=float))
                _table = ThresholdTable(data["p1"], data["h"], log2_arl)
    return _table


class BackgroundCalibrator:
    """Exact thresholds for what the table lacks, solved on a daemon thread.

    ``get`` answers the exact threshold when known, else queues the solve (once) and answers
    None; the caller uses the safe ``ln(ARL)`` meanwhile."""

    def __init__(self) -> None:
        self._done: dict[tuple[float, float, float], float] = {}
        self._queued: set[tuple[float, float, float]] = set()
        self._queue: queue.Queue[tuple[float, float, float]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def get(self, p0: float, p1: float, arl0: float) -> float | None:
        key = (p0, p1, arl0)
        h = self._done.get(key)
        if h is not None:
            return h
        with self._lock:
            if key not in self._queued:
                self._queued.add(key)
                self._queue.put(key)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, daemon=True,
                                                    name="paystab-cusum-calibration")
                    self._thread.start()
        return None

    def _work(self) -> None:
        while True:
            p0, p1, arl0 = self._queue.get()
            self._done[(p0, p1, arl0)] = threshold_for(p0, p1, arl0)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """For tests and benchmarks: True once every queued solve is done."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(k in self._done for k in self._queued):
                    return True
            time.sleep(0.01)
        return False


calibrator = BackgroundCalibrator()


def threshold(p0: float, p1: float, arl0: float) -> tuple[float, bool]:
    """``(h, exact)``: from the table, else from the background solver, else Lorden's safe
    ``ln(arl0)`` with ``exact=False`` (ask again at the next block)."""
    t = table()
    if t is not None:
        h = t.lookup(p0, p1, arl0)
        if h is not None:
            return h, True
    h = calibrator.get(p0, p1, arl0)
    if h is not None:
        return h, True
    return max(math.log(max(arl0, 2.0)), 1e-6), False


# -- building the table ------------------------------------------------------------------


def _row(index: int) -> tuple[list[float], list[list[float]]]:
    p0 = grid_p0(index)
    p1s = alternatives(p0, DEFAULT_SHIFTS, DEFAULT_MIN_RATIO)
    rows = []
    for p1 in p1s:
        hs: list[float] = []
        lo = 0.0
        for log2_arl in _log2_arl():
            # h grows by about ln 2 per doubling of the ARL: bisect from the previous root
            hs.append(_bisect(p0, p1, 2.0 ** float(log2_arl), lo))
            lo = hs[-1] - 2.0 * _grid(hs[-1], llr_steps(p0, p1)[1], _TABLE_STATES)[1]
        rows.append(hs)
    return p1s, rows


def _log2_arl() -> np.ndarray[Any, Any]:
    lo, hi = ARL_LOG2_RANGE
    return np.arange(lo * ARL_STEPS_PER_OCTAVE, hi * ARL_STEPS_PER_OCTAVE + 1) / ARL_STEPS_PER_OCTAVE


def _bisect(p0: float, p1: float, arl0: float, lo: float) -> float:
    """:func:`arl.threshold_for` with a bracket starting at ``lo`` (a root below)."""
    if lo <= 0.0:
        return threshold_for(p0, p1, arl0, _TABLE_STATES, _TOLERANCE)
    step = 1.0
    hi = lo + step
    while cusum_arl(p0, p0, p1, hi, _TABLE_STATES) < arl0:
        lo, hi = hi, hi + step
    while hi - lo > _TOLERANCE:
        mid = 0.5 * (lo + hi)
        if cusum_arl(p0, p0, p1, mid, _TABLE_STATES) >= arl0:
            hi = mid
        else:
            lo = mid
    return hi + 2.0 * _grid(hi, llr_steps(p0, p1)[1], _TABLE_STATES)[1]


def build(processes: int = 2) -> ThresholdTable:
    import multiprocessing

    indices = list(range(P0_INDEX_RANGE[0], P0_INDEX_RANGE[1] + 1))
    width = len(_log2_arl())
    p1 = np.full((len(indices), len(DEFAULT_SHIFTS)), np.nan)
    h = np.full((len(indices), len(DEFAULT_SHIFTS), width), np.nan)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for n, (p1s, rows) in enumerate(pool.imap(_row, indices)):
            for j, (value, hs) in enumerate(zip(p1s, rows, strict=True)):
                p1[n, j] = value
                h[n, j] = hs
    return ThresholdTable(p1, h, _log2_arl())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m paystab.anomaly.threshold_table")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default=str(TABLE_PATH))
    args = parser.parse_args()
    built = build(args.processes)
    np.savez_compressed(args.out, p1=built.p1, h=built.h, log2_arl=built.log2_arl)
    print(f"wrote {args.out}: {built.h.shape}")


if __name__ == "__main__":
    main()
