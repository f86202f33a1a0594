"""Average run lengths of the Bernoulli CUSUM, computed numerically, and thresholds from them.

The CUSUM for a failure rate moving from ``p0`` to ``p1`` adds ``a = ln(p1/p0)`` on a failure
and ``-b = ln((1-p1)/(1-p0))`` on a success, floors at 0 and alarms at ``h``. Its average run
length (ARL) for a true rate ``p`` — the mean number of attempts to an alarm starting from 0 —
answers both questions a user asks: with ``p = p0`` it is the mean time between false alarms,
with ``p = p1`` the detection delay (Lorden's worst case, since the statistic starts at its
floor). Lorden/Moustakides: for known ``p0, p1`` no test detects faster at the same false-alarm
rate, which is why this is the yardstick of the detection benchmark.

We compute the ARL with the Brook–Evans Markov chain: the statistic on a grid whose step
divides ``b`` exactly (so successes move it exactly) with a failure's jump ``a`` split between
the two neighbouring cells so that its mean is exact; ``(I - P) L = 1`` is a sparse banded
system. :func:`threshold_for` inverts it by bisection: the smallest ``h`` whose in-control ARL
reaches the target (the ARL is a step function of ``h`` when failures are rare and decisive).
``p1 = 1`` (a dead provider) makes the CUSUM a run counter with exact closed forms.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_TARGET_STATES = 1000  # <0.1 % error on h; ~1 ms a solve


def llr_steps(p0: float, p1: float) -> tuple[float, float]:
    """``(a, b)``: the CUSUM's increment on a failure and decrement on a success (``b=inf``
    when ``p1 == 1``)."""
    if not 0.0 < p0 < p1 <= 1.0:
        raise ValueError(f"need 0 < p0 < p1 <= 1, got p0={p0}, p1={p1}")
    a = math.log(p1 / p0)
    b = math.inf if p1 >= 1.0 else math.log((1.0 - p0) / (1.0 - p1))
    return a, b


def run_arl(n: int, p: float) -> float:
    """Mean attempts until ``n`` consecutive failures when each fails with probability ``p``."""
    if p >= 1.0:
        return float(n)
    if p <= 0.0:
        return math.inf
    return float((1.0 - p**n) / ((1.0 - p) * p**n))


def _grid(h: float, b: float, states: int) -> tuple[int, float]:
    """A grid step dividing ``b`` exactly (successes move exactly), ~``states`` cells below h."""
    m = max(1, round(b / (h / states)))
    return m, b / m


def cusum_arl(p: float, p0: float, p1: float, h: float, states: int = _TARGET_STATES) -> float:
    """Mean attempts to an alarm of the ``p0 -> p1`` CUSUM with threshold ``h``, started at 0,
    when the true failure rate is ``p``."""
    a, b = llr_steps(p0, p1)
    if h <= 0:
        return 1.0
    if math.isinf(b):
        return run_arl(max(1, math.ceil(h / a - 1e-12)), p)
    m, delta = _grid(h, b, states)
    n = math.ceil(h / delta - 1e-12)  # cells 0..n-1 hold S = i*delta < h
    jump = a / delta
    i = np.arange(n)
    rows, cols, vals = [i], [np.maximum(i - m, 0)], [np.full(n, 1.0 - p)]
    target = i + jump
    lo = np.floor(target).astype(np.int64)
    w_hi = target - lo
    keep_lo = lo < n
    rows.append(i[keep_lo])
    cols.append(lo[keep_lo])
    vals.append(p * (1.0 - w_hi[keep_lo]))
    keep_hi = (lo + 1) < n
    rows.append(i[keep_hi])
    cols.append(lo[keep_hi] + 1)
    vals.append(p * w_hi[keep_hi])
    # scipy is imported here, not at module top: only a threshold missing from the shipped
    # table needs a solve, and its ~0.2 s import would otherwise be in every start-up.
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import spsolve

    transition = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    identity = csr_matrix((np.ones(n), (i, i)), shape=(n, n))
    arl = spsolve((identity - transition).tocsc(), np.ones(n))
    return float(arl[0])


def threshold_for(
    p0: float, p1: float, arl0: float, states: int = _TARGET_STATES, tolerance: float = 4e-3
) -> float:
    """Smallest threshold ``h`` whose in-control ARL (true rate ``p0``) is at least ``arl0``."""
    a, b = llr_steps(p0, p1)
    if math.isinf(b):
        n = 1
        while run_arl(n, p0) < arl0:
            n += 1
        return n * a - 1e-9 * a  # alarm on the n-th consecutive failure
    # Lorden's bound ARL0 >= e^h puts the answer at or below ln(arl0); the overshoot and
    # the drift keep it within a few units of it
    hi = max(math.log(arl0), a)
    lo = max(0.0, hi - 12.0)
    while cusum_arl(p0, p0, p1, hi, states) < arl0:
        lo, hi = hi, hi * 2.0
    while hi - lo > tolerance:
        mid = 0.5 * (lo + hi)
        if cusum_arl(p0, p0, p1, mid, states) >= arl0:
            hi = mid
        else:
            lo = mid
    # The grid smears each step of the ARL (at sums of jumps) over about one cell: a root
    # found within that smear may sit just below a step that the real statistic reaches.
    # Two cells up is past the smear and still within the tolerance of the delay.
    return hi + 2.0 * _grid(hi, b, states)[1]


@lru_cache(maxsize=4096)
def cached_threshold(p0: float, p1: float, arl0: float) -> float:
    """:func:`threshold_for` memoised: callers quantise ``p0`` and ``arl0`` to hit it."""
    return threshold_for(p0, p1, arl0)


def optimal_delay(
    p0: float, p1: float, arl0: float, states: int = 8000, tolerance: float = 1e-4
) -> tuple[float, float]:
    """``(h, mean delay in attempts)`` of the known-parameter CUSUM with in-control ARL
    ``arl0``: the benchmark's yardstick."""
    h = threshold_for(p0, p1, arl0, states=states, tolerance=tolerance)
    a, b = llr_steps(p0, p1)
    if math.isinf(b):
        return h, float(math.ceil(h / a - 1e-12))
    return h, cusum_arl(p1, p0, p1, h, states=states)
