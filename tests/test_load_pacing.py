"""Open-model pacing and the checkout's retry rules, without Locust.

The pacer runs on gevent greenlets here (gevent is imported, never monkey-patched); fake
users take arrivals and "work" by sleeping. The rate must not depend on how long they
work; when no user is free the arrival is dropped and counted.
"""

from __future__ import annotations

import time

import gevent
import pytest

from paystab.loadtest.checkout import backoff_s, judge, retry_after_s
from paystab.loadtest.pacing import ArrivalPacer, UserSlot
from paystab.loadtest.plan import RetryPolicy


def run_pool(pacer: ArrivalPacer, users: int, work_s: float) -> list[tuple[int, float]]:
    """Fake users: take an arrival, work, report done. Returns (seq, start time)."""
    taken: list[tuple[int, float]] = []

    def user() -> None:
        slot = UserSlot()
        while True:
            pacer.wait_for_arrival(slot)
            taken.append((slot.seq, time.time()))
            gevent.sleep(work_s)
            pacer.done(slot.seq, 0.0)

    pool = [gevent.spawn(user) for _ in range(users)]
    pacer.start_at = time.time() + 0.05
    pacer.start()
    pacer.arrivals_done.wait(timeout=pacer.duration_s + 5)
    deadline = time.monotonic() + 5
    while pacer.inflight and time.monotonic() < deadline:
        gevent.sleep(0.01)
    gevent.killall(pool)
    return taken


@pytest.mark.parametrize("work_s", [0.001, 0.2])
def test_rate_does_not_depend_on_response_time(work_s: float) -> None:
    pacer = ArrivalPacer(lambda t: 100.0, 1.0)
    taken = run_pool(pacer, users=50, work_s=work_s)
    assert pacer.issued == 100 and len(taken) == 100 and pacer.dropped_total == 0
    starts = sorted(t for _, t in taken)
    # open model: 100 arrivals evenly over one second, however slow the "responses" are
    assert starts[-1] - starts[0] == pytest.approx(0.99, abs=0.05)
    assert sorted(s for s, _ in taken) == list(range(100))
    assert pacer.drained and pacer.cpu_end_s is not None


def test_busy_users_mean_dropped_arrivals_not_a_lower_rate() -> None:
    pacer = ArrivalPacer(lambda t: 100.0, 1.0)
    taken = run_pool(pacer, users=5, work_s=0.25)
    assert pacer.issued == 100
    # 5 users × 4 checkouts/s each can serve ~20; the rest are counted as dropped
    assert 15 <= len(taken) <= 30
    assert pacer.dropped_total == 100 - len(taken)
    assert sum(pacer.dropped_by_tick.values()) == pacer.dropped_total


@pytest.mark.parametrize("tick_when_idle", [False, True])
def test_a_slower_clock_while_all_users_are_busy_still_drops_what_they_missed(
        tick_when_idle: bool) -> None:
    pacer = ArrivalPacer(lambda t: 100.0, 1.0)
    pacer.tick_when_idle = tick_when_idle  # users tick the pacer when they fall idle
    taken = run_pool(pacer, users=5, work_s=0.25)
    assert pacer.issued == 100
    # the same open model either way: what no idle user could take is dropped, not queued
    assert 15 <= len(taken) <= 30
    assert pacer.dropped_total == 100 - len(taken)
    assert sum(pacer.dropped_by_tick.values()) == pacer.dropped_total


@pytest.mark.parametrize("late_s", [0.005, 2.0])
def test_a_late_wall_clock_reading_does_not_make_fresh_arrivals_stale(
        monkeypatch: pytest.MonkeyPatch, late_s: float) -> None:
    """An idle user ticking the pacer takes the newest due arrival, however long the host
    held the process between the pacer's monotonic reading and its wall-clock one (or if
    the wall clock was stepped). Judged on the wall clock, every due arrival looked older
    than the staleness cut-off and all were dropped with the user idle: without the
    pacer's own clock greenlet, the user waited for ever (seen once in CI)."""
    import paystab.loadtest.pacing as pacing

    real = time.time
    for path in ("take_now", "tick"):
        pacer = ArrivalPacer(lambda t: 1e6, 3600.0)
        pacer.tick_when_idle = True
        pacer._begin()
        monkeypatch.setattr(pacing, "_wall_clock", lambda: real() + late_s)
        for _ in range(50):
            slot = UserSlot()
            if path == "take_now":
                assert pacer._take_now(slot), "a fresh arrival was due"
            else:
                pacer.idle.append(slot)
                pacer.tick(stale_s=pacing.MIN_SLEEP_S)
                assert not pacer.idle
            assert slot.seq >= 0
            pacer.done(slot.seq, 0.0)
        monkeypatch.undo()
        assert pacer.issued > 50 and not pacer.inflight


def test_two_pacers_sharing_a_rate_interleave() -> None:
    a = ArrivalPacer(lambda t: 100.0, 0.5, share=0.5, phase=0.0)
    b = ArrivalPacer(lambda t: 100.0, 0.5, share=0.5, phase=0.5)
    times: list[float] = []
    slots = []
    for pacer in (a, b):
        def user(p: ArrivalPacer = pacer) -> None:
            slot = UserSlot()
            slots.append(slot)
            while True:
                p.wait_for_arrival(slot)
                times.append(slot.scheduled_at)
                p.done(slot.seq, 0.0)
        gevent.spawn(user)
    start = time.time() + 0.05
    for pacer in (a, b):
        pacer.start_at = start
        pacer.start()
    a.arrivals_done.wait(3)
    b.arrivals_done.wait(3)
    assert a.issued == b.issued == 25
    gaps = [y - x for x, y in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert statistics_mean(gaps) == pytest.approx(0.01, abs=0.001)
    assert min(gaps) > 0.004  # interleaved, not pairs at the same instant


def statistics_mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_varying_rate_is_integrated() -> None:
    pacer = ArrivalPacer(lambda t: 50.0 if t < 0.5 else 150.0, 1.0)
    run_pool(pacer, users=20, work_s=0.001)
    assert pacer.issued == pytest.approx(100, abs=1)


def test_judge_classifies_attempts() -> None:
    ok = judge(200, b'{"status":"approved","code":"approved"}', None)
    assert (ok.outcome, ok.retryable) == ("approved", False)
    pending = judge(200, b'{"status":"pending","code":"pending"}', None)
    assert pending.outcome == "pending"
    declined = judge(200, b'{"status":"declined","code":"declined.fraud"}', None)
    assert (declined.outcome, declined.code) == ("declined", "declined.fraud")
    for status in (500, 502, 503, 504, 409, 429):
        v = judge(status, b"{}", None)
        assert (v.outcome, v.retryable, v.status) == ("failed", True, f"http_{status}")
    for status in (400, 413, 422):
        assert judge(status, b"{}", None).retryable is False
    assert judge(200, b"not json", None).status == "malformed"
    assert judge(0, b"", TimeoutError()).status == "timeout"
    assert judge(0, b"", ConnectionRefusedError()).status == "connect_error"
    assert judge(0, b"", ConnectionResetError()).status == "connection_error"


def test_retry_after_and_backoff() -> None:
    assert retry_after_s("2") == 2.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10)
    policy = RetryPolicy(backoff_s=0.2, max_backoff_s=1.0)
    assert backoff_s(policy, 1, None, rand=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_s(policy, 3, None, rand=lambda: 1.0) == pytest.approx(0.8)
    assert backoff_s(policy, 6, None, rand=lambda: 1.0) == pytest.approx(1.0)
    assert backoff_s(policy, 1, 3.0, rand=lambda: 0.5) == pytest.approx(3.0)
