"""The one percentile every paystab number is computed with.

Drill reports, load-test summaries, SLO verdicts, harness health and the detection
benchmarks all quote p50/p95/p99; they must agree on the same data, so there is one
definition here. It is numpy's default (``method="linear"``): the value at rank
``(n - 1) * q / 100`` of the sorted data, interpolated linearly between the two closest
ranks. ``q`` is in PERCENT (95, not 0.95): a fraction passed by mistake gives a value near
the minimum, which is the bug the drill recorder once had, so a caller holding fractions
multiplies by 100 at the call site where the unit is visible.

Empty input: ``None``. There is no latency of no request; a caller that needs a float
(the load summary's NaN, a JSON null) maps ``None`` itself, where the meaning is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (``q`` in [0, 100]) of ``values``; None when empty.

    ``values`` need not be sorted (sorting already-sorted data is linear). ValueError for
    ``q`` outside [0, 100] or NaN.
    """
    if not 0.0 <= q <= 100.0:  # also false for NaN
        raise ValueError(f"percentile q must be in [0, 100] (percent), got {q!r}")
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    low, high = float(ordered[lo]), float(ordered[hi])
    # a + (b - a) * f rather than a * (1 - f) + b * f: exact when a == b, and at f == 0
    return low if frac == 0.0 else low + (high - low) * frac
