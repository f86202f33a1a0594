"""A user's locustfile under paystab: its requests are counted into Locust's statistics in
batches (the same figures as Locust's own per-request listener), attributed to the checkout
that made them, and the pacer's fast hand-off gives the same arrivals as the general path."""

from __future__ import annotations

import math

import pytest

from paystab.loadtest import pacing
from paystab.loadtest.pacing import ArrivalPacer, UserSlot
from tests.conftest_load import run_script


def test_batched_statistics_of_a_users_requests_equal_locusts_own_listener() -> None:
    code = r"""
import random
from unittest import mock
from locust.env import Environment
from paystab.loadtest import userfile

rng = random.Random(7)
t = 1_700_000_000.3
events = []
for i in range(3000):
    t += rng.expovariate(1500.0)
    if i == 1700:
        t -= 0.4  # the wall clock steps back once
    method, name = rng.choice([("POST", "/api/orders"), ("GET", "/api/orders/{id}"),
                               ("POST", "/api/pay")])
    ms = rng.lognormvariate(2.5, 1.5)  # mostly < 100 ms, some in every Locust bucket range
    if i % 500 == 250:
        ms = None  # Locust counts these as "none" requests
    error = RuntimeError(f"HTTP {rng.choice([500, 503])}") if rng.random() < 0.03 else None
    events.append((t, dict(request_type=method, name=name, response_time=ms,
                           response_length=rng.randrange(0, 400), exception=error, context={},
                           start_time=t, url=name, response=None)))

def run(batched):
    env = Environment()
    env.create_local_runner()
    if batched:
        userfile.install(env)
        env.events.test_start.fire(environment=env)
        handlers = env.events.request._handlers
        assert len(handlers) == 1 and isinstance(handlers[0], userfile._RequestWatch), handlers
    for when, kwargs in events:
        with mock.patch("time.time", return_value=when), \
                mock.patch.object(userfile, "_wall_clock", return_value=when):
            env.events.request.fire(**kwargs)
    with mock.patch("time.time", return_value=t + 1), \
            mock.patch.object(userfile, "_wall_clock", return_value=t + 1):
        env.events.test_stop.fire(environment=env)
    return env.stats

def view(stats):
    out = {}
    for key, entry in [(("total", ""), stats.total), *sorted(stats.entries.items())]:
        s = entry.serialize()
        s["total_response_time"] = round(s["total_response_time"], 6)
        s.pop("start_time")
        out[str(key)] = s
    errors = {k: (e.occurrences, e.method, e.name) for k, e in stats.errors.items()}
    return out, errors

direct, batched = view(run(False)), view(run(True))
assert direct == batched, (direct, batched)
print("OK", direct[0]["('total', '')"]["num_requests"], len(direct[1]))
"""
    proc = run_script(code)
    assert proc.returncode == 0 and "OK 3000" in proc.stdout, proc.stderr[-3000:]


class _Clock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, s: float) -> None:
        self.mono += s
        self.wall += s


@pytest.mark.parametrize("rate", [30_000.0, 1e6])
def test_fast_hand_off_gives_the_same_arrivals_as_the_general_path(
        monkeypatch: pytest.MonkeyPatch, rate: float) -> None:
    clock = _Clock()
    monkeypatch.setattr(pacing, "_monotonic", lambda: clock.mono)
    monkeypatch.setattr(pacing, "_wall_clock", lambda: clock.wall)

    def drive(fast: bool) -> tuple[list[tuple[int, float]], int, dict[int, int], int]:
        clock.__init__()  # type: ignore[misc]
        pacer = ArrivalPacer(lambda t: rate * (1.0 + 0.5 * math.sin(t)), 0.5)
        pacer.tick_when_idle = True
        if not fast:
            pacer._take_now = lambda slot: False  # type: ignore[method-assign]
        pacer._begin()
        pacer.started_epoch, pacer._mono0 = clock.wall, clock.mono  # t=0 on the fake clock
        slot = UserSlot()
        taken: list[tuple[int, float]] = []
        for step in range(2000):
            clock.advance(0.0001 + (step % 7) * 0.00013)  # a checkout's time, then idle
            if pacer.arrivals_done.is_set():
                break
            slot.seq = -1
            pacer.idle.clear()
            # what wait_for_arrival does up to the point where it would block
            if not pacer._take_now(slot):
                pacer.idle.append(slot)
                pacer.tick(stale_s=pacing.MIN_SLEEP_S)
            if slot.seq >= 0:
                taken.append((slot.seq, slot.scheduled_at))
                pacer.done(slot.seq, 0.0)
        return taken, pacer.issued, dict(pacer.dropped_by_tick), pacer.dropped_total

    fast, general = drive(True), drive(False)
    assert len(fast[0]) > 100
    assert fast == general
    issued, dropped = fast[1], fast[3]
    assert issued == len(fast[0]) + dropped  # every arrival handed over or counted dropped
