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


# A run_script preamble: a User class under paystab's pacing, in a local session at 10^6
# arrivals/s whose pacer has begun without its clock greenlet (the users tick it).
PACED_SESSION = r"""
from locust.env import Environment
from paystab.loadtest import userfile
from paystab.loadtest.plan import LoadPlan
from paystab.loadtest.session import attach

class Resp:
    status_code = 200

def paced_session(cls):
    Paced = userfile.paced(cls)
    env = Environment(user_classes=[Paced])
    userfile.install(env)
    env.create_local_runner()
    env.events.test_start.fire(environment=env)
    session = attach(env, LoadPlan("steady", 1e6, 3600.0, 1))
    session._new_pacer(0, 1)
    session.pacer._begin()
    return Paced, env, session
"""


def test_locusts_control_flow_from_a_task_steers_the_paced_user() -> None:
    """``StopUser`` stops the user, ``RescheduleTask`` moves on, and neither is a failed
    checkout: a task that made requests before raising is recorded by them, one that made
    none used its arrival for nothing (counted as dropped). An error is a failed checkout
    and the user goes on; a task the user scheduled runs before the random pick, as a
    checkout too; a user being stopped is stopped while it waits, as under Locust's loop."""
    code = PACED_SESSION + r"""
import gevent
from locust import User, constant, task
from locust.exception import RescheduleTask, StopUser
import time

seen = []

class Shopper(User):
    wait_time = constant(0)
    host = "http://127.0.0.1:9"

    def on_start(self):
        self._taskset_instance.schedule_task(type(self).first)

    def first(self):
        seen.append("first")
        self.environment.events.request.fire(request_type="GET", name="/first",
            response_time=1.0, response_length=1, response=Resp(), context={},
            exception=None, start_time=0.0, url="/first")

    @task
    def buy(self):
        n = len(seen)
        seen.append(n)
        if n == 3:
            raise RescheduleTask()  # no request: not a checkout
        if n == 5:
            raise ValueError("broken task")
        self.environment.events.request.fire(request_type="POST", name="/pay",
            response_time=1.0, response_length=1, response=Resp(), context={},
            exception=None, start_time=0.0, url="/pay")
        if n == 8:
            raise StopUser()  # after its request: recorded, then the user stops

Paced, env, session = paced_session(Shopper)
user = Paced(env)
greenlet = gevent.spawn(user.run)
greenlet.join(timeout=10)
assert greenlet.dead and greenlet.exception is None, greenlet.exception
records = session.sink.records
outcomes = [(r.method, r.outcome) for r in records]
# every task runs on an arrival; the one scheduled in on_start first
assert seen == ["first", 1, 2, 3, 4, 5, 6, 7, 8], seen
assert outcomes[0] == ("first", "approved"), outcomes
assert outcomes.count(("buy", "failed")) == 1, outcomes
assert [r.status for r in records if r.outcome == "failed"] == ["valueerror"]
assert len(records) == 1 + 7, outcomes  # first; buys 1-8 but 3 (no request), 8 recorded
assert [r.seq for r in records] == sorted(r.seq for r in records)
assert not session.pacer.inflight  # every arrival handed out ended: recorded or dropped
issued = session.pacer.issued
assert issued == len(records) + session.pacer.dropped_total, (issued, len(records))

# a user being stopped while it waits for an arrival stops (Locust's stop semantics)
from gevent.pool import Group
user2 = Paced(env)
session.pacer._stop = True  # no more arrivals: the user waits
g2 = user2.start(Group())
g2.join(timeout=0)  # let it run up to its wait
deadline = time.monotonic() + 10
while user2._state != "waiting" and not g2.dead and time.monotonic() < deadline:
    gevent.sleep(0.01)
assert not g2.dead and user2._state == "waiting", user2._state
assert user2.stop(force=False) is True  # Locust kills a waiting user at once
g2.join(timeout=5)
assert g2.dead, "a waiting user did not stop"
print("OK")
"""
    proc = run_script(code)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


def test_the_paced_loop_yields_to_the_hub_unless_the_task_already_did() -> None:
    """A task that never blocks still lets the other greenlets run once per checkout (as
    Locust's ``sleep(0)`` after a zero wait does); a task that blocked on a socket let the
    hub's loop turn already, and the loop does not yield a second time for nothing."""
    code = PACED_SESSION + r"""
import gevent
from gevent import socket
from locust import User, constant, task
from locust.exception import StopUser

N = 2000
near, far = socket.socketpair()

def echo():
    while True:
        far.sendall(far.recv(1))

gevent.spawn(echo)

def make(io):
    done = []
    class Shopper(User):
        wait_time = constant(0)
        host = "http://127.0.0.1:9"

        @task
        def buy(self):
            if len(done) >= N:
                raise StopUser()
            if io:
                near.sendall(b"x")
                assert near.recv(1) == b"x"  # blocks: the hub's loop turns
            self.environment.events.request.fire(request_type="POST", name="/pay",
                response_time=1.0, response_length=1, response=Resp(), context={},
                exception=None, start_time=0.0, url="/pay")
            done.append(1)
    return Shopper, done

for io in (False, True):
    Shopper, done = make(io)
    Paced, env, session = paced_session(Shopper)
    ticks = [0]

    yields = [0]
    real_sleep = gevent.sleep

    def other():
        while True:
            ticks[0] += 1
            real_sleep(0)

    def counting_sleep(seconds=0, ref=True):
        if seconds == 0:
            yields[0] += 1
        return real_sleep(seconds, ref)

    gevent.sleep = counting_sleep  # the loop takes gevent.sleep when it starts
    bystander = gevent.spawn(other) if not io else gevent.spawn(lambda: None)
    user = Paced(env)
    greenlet = gevent.spawn(user.run)
    greenlet.join(timeout=30)
    gevent.sleep = real_sleep
    bystander.kill()
    assert greenlet.dead and greenlet.exception is None, (greenlet.exception, len(done), ticks)
    assert len(session.sink.records) == N, len(session.sink.records)
    if io:
        # the task's own wait on its socket was the yield
        assert yields[0] < N // 10, (yields[0], ticks[0])
    else:
        # one yield per checkout: the bystander ran about as often as the checkouts
        assert yields[0] >= N * 0.95, yields[0]
        assert ticks[0] >= N * 0.9, ticks[0]
    print("io" if io else "no io", yields[0], ticks[0], flush=True)
print("OK")
"""
    proc = run_script(code)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
