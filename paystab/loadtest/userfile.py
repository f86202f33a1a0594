"""A user's own locustfile, run under paystab's open-model pacing (``paystab load -f FILE``).

The file is imported as Locust would import it and its concrete ``User`` classes are kept
as they are — their ``host``, ``on_start``, clients and tasks run unchanged — except for two
things, done by subclassing each class: ``wait_time`` waits for the pacer's next arrival
(so the rate is paystab's arrival rate, not users × 1/wait), and every task becomes one
*checkout*: the requests it makes are watched through Locust's request event, and when
the task ends paystab records it. A task whose requests all succeeded is ``approved``; a
request that failed (an HTTP error, a ``catch_response`` failure, a connection error) or an
exception out of the task makes it ``failed``, with the first failure as its status. A
task that wants a finer answer sets ``self.paystab_outcome`` to ``"declined"`` or
``"pending"`` before it returns. Latency is the whole task's time; attempts are its
requests. Thresholds, windows, capacity search and reports then work on these records.

The requests are counted into Locust's statistics by one listener that also attributes
them (``_RequestWatch``): from test start it replaces Locust's per-request listener and
applies the same figures in batches every 100 ms (``locust_stats.StatsBatch``;
``tests/test_load_userfile.py`` checks they equal Locust's own accounting). Measured in
one process on the shared 2-core VM (a task that only fires the request event, wait
included): stock Locust 5.2–7.0 µs per request, paystab's hand-off, record and
attribution 8.1 µs — and Locust's general task loop 5.2 µs per iteration, which the
paced loop below mostly saves. The whole loop, per request: stock Locust 9.2–11.7 µs,
paystab 10.6–11.4 µs (less the 1.6 µs yield it skips after a request that blocked); side
by side against stock Locust over HTTP, medians ×0.92–1.06, where the user's own client is
≥ 95 % of the CPU (docs/load.md).

The users run their tasks in paystab's loop (:class:`_PacedTaskSet`): wait for an
arrival, then one task on it — Locust's own loop would run a task before the first wait,
with no arrival. ``StopUser``, ``RescheduleTask`` and ``InterruptTaskSet`` from a task
steer the loop as under Locust and are not failures (a task that raised one before making
any request made no checkout: its arrival counts as dropped). Nested ``TaskSet`` classes
are not paced (an arrival would start a whole nested loop): such a file is refused with
exit 2.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent import GreenletExit
from locust import TaskSet, User
from locust.exception import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopTest,
    StopUser,
)
from locust.user.task import (
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    DefaultTaskSet,
)

from paystab.exceptions import InvalidInput
from paystab.loadtest.locust_stats import FLUSH_S, StatsBatch
from paystab.loadtest.pacing import ArrivalPacer, UserSlot
from paystab.loadtest.records import OUTCOMES, CheckoutRecord
from paystab.loadtest.session import LoadSession, session_for


class _Checkout:
    __slots__ = ("attempts", "failure", "http_status")

    def __init__(self) -> None:
        self.attempts = 0
        self.failure = ""
        self.http_status = 0


_ACTIVE: dict[Any, _Checkout] = {}  # greenlet → the checkout its task is making
_current, _wall_clock, _perf_counter = gevent.getcurrent, time.time, time.perf_counter
_new_record = tuple.__new__  # CheckoutRecord(...) without its Python-level __new__
_LOCUST_STATS_LISTENER = "Runner.__init__.<locals>.on_request"


class _RequestWatch:
    """The request event's listener: attributes each request to the checkout running in its
    greenlet and, in place of Locust's own per-request statistics listener, counts it into
    Locust's statistics in batches (:class:`StatsBatch`: the same figures, applied every
    ``FLUSH_S``). Until the runner's listener is found and replaced, ``batch`` is None and
    Locust's listener keeps counting."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.batch: StatsBatch | None = None
        self.flushed_at = 0.0

    def __call__(self, request_type: str = "", name: str = "", response_time: Any = None,
                 response_length: int = 0, response: Any = None, context: Any = None,
                 exception: Exception | None = None, start_time: Any = None, url: Any = None,
                 **_kw: Any) -> None:
        # Locust's own keywords are all named: binding them makes no dict per request
        checkout = _ACTIVE.get(_current())
        if checkout is not None:
            checkout.attempts += 1
            status = getattr(response, "status_code", None)
            if isinstance(status, int):
                checkout.http_status = status
            if exception is not None and not checkout.failure:
                checkout.failure = f"http_{status}" if isinstance(status, int) and status >= 400 \
                    else type(exception).__name__.lower()
        batch = self.batch
        if batch is None:
            return
        if response_time is None:
            batch.add_now(request_type, name, response_time, response_length)
        else:
            now = _wall_clock()
            batch.add_row((name, request_type, now, response_time, response_length))
            if now - self.flushed_at >= FLUSH_S or now < self.flushed_at:
                batch.flush()
                self.flushed_at = now
        if exception:
            batch.error(name, exception, request_type)

    def take_over_stats(self, **_kw: Any) -> None:
        """At test start (the runner exists): replace Locust's per-request listener."""
        handlers: list[Any] = self.environment.events.request._handlers
        for index, handler in enumerate(handlers):
            if getattr(handler, "__qualname__", "") == _LOCUST_STATS_LISTENER:
                self.batch = StatsBatch(self.environment.stats)
                del handlers[index]
                return

    def flush(self, **_kw: Any) -> None:
        """At test stop: Locust's figures complete before anyone reads them."""
        if self.batch is not None:
            self.batch.flush()


def load_user_classes(path: str | Path) -> list[type[User]]:
    """Import the locustfile and return its concrete User classes (exit 2 if it has none)."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"no such file: {path}", source="-f", expected="a locustfile.py")
    name = f"paystab_userfile_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot import {path}", source="-f", expected="a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error is a bad input file
        raise InvalidInput(f"importing {path} failed: {type(exc).__name__}: {exc}",
                           source=str(path)) from None
    classes = [obj for obj in vars(module).values()
               if inspect.isclass(obj) and issubclass(obj, User) and obj is not User
               and not obj.abstract and obj.__module__ == name]
    if not classes:
        raise InvalidInput(f"{path} defines no User class", source=str(path),
                           expected="a class deriving from locust's HttpUser/FastHttpUser/User "
                                    "with @task methods")
    for cls in classes:
        for task in cls.tasks:
            if inspect.isclass(task) and issubclass(task, TaskSet):
                raise InvalidInput(f"{cls.__name__} runs the TaskSet {task.__name__}",
                                   source=str(path), field=cls.__name__,
                                   expected="@task methods or functions (nested TaskSets are "
                                            "not paced)")
    return classes


def _next_arrival(pacer: ArrivalPacer, slot: UserSlot) -> None:
    """Wait until the pacer hands ``slot`` an arrival. An arrival the slot still holds was
    spent by no checkout (the task called ``self.wait()`` or raised ``RescheduleTask``
    before any request): it counts as dropped."""
    if slot.seq >= 0:
        pacer.abandon(slot.seq)
        slot.seq = -1
    pacer.tick_when_idle = True
    # the common case first: no other user idle and a fresh arrival due (what
    # wait_for_arrival tries first, without its call)
    if pacer.idle or not pacer._take_now(slot):
        pacer.wait_for_arrival(slot)


def paced(cls: type[User]) -> type[User]:
    """``cls`` with paystab's arrival pacing and one record per task."""
    tasks: list[Any] = [_as_checkout(task) for task in cls.tasks]  # TaskSets were refused

    def wait_time(self: Any) -> float:
        slot: UserSlot | None = self.__dict__.get("_paystab_slot")
        if slot is None:
            session = session_for(self.environment)
            if session.pacer is None:
                return 0.5  # no plan yet
            self._paystab_session = session
            self._paystab_slot = slot = UserSlot()
            self._paystab_checkout = _Checkout()
        _next_arrival(self._paystab_session.pacer, slot)
        return 0.0

    made: type[User] = type(cls.__name__, (cls,), {
        "wait_time": wait_time, "run": _run_user, "__module__": cls.__module__,
        "paystab_outcome": None})  # a task's choice is the instance's, removed after each task
    made.tasks = tasks  # after creation: Locust's metaclass would merge in the base's tasks
    return made


_log = logging.getLogger(__name__)
# What a task raises to steer Locust's loop: passed on to it, never a failed checkout
_LOCUST_CONTROL = (StopUser, StopTest, RescheduleTask, RescheduleTaskImmediately,
                   InterruptTaskSet)


def _run_user(user: Any) -> None:
    """``User.run`` with :class:`_PacedTaskSet` as the root task set."""
    user._state = LOCUST_STATE_RUNNING
    user._taskset_instance = _PacedTaskSet(user)
    try:
        try:
            user.on_start()
        except Exception as e:  # as Locust: logged, reported, and the user ends
            _log.error("%s\n%s", e, traceback.format_exc())
            if not isinstance(e, (StopUser, StopTest)):
                user.environment.events.user_error.fire(user_instance=user, exception=e,
                                                        tb=e.__traceback__)
            raise
        user._taskset_instance.run()
    except (GreenletExit, StopUser, StopTest):
        user.on_stop()


class _PacedTaskSet(DefaultTaskSet):
    """Locust's root task set with the loop of ``TaskSet.run`` written for paced users. The
    order is the pacer's: wait for an arrival, then run a task on it (Locust's loop runs a
    task first and waits after it) — a task the user scheduled (``schedule_task``) first,
    else a weighted random one. Kept from Locust: the stop checks around the wait (a user
    being stopped while it waits stops there), ``RescheduleTask``/``InterruptTaskSet``/
    ``StopUser`` from a task, ``on_stop``, the ``user_error`` event, a yield to the hub
    per iteration unless the hub's loop turned since the last (a task that made a request
    blocked on its socket: the other greenlets ran then). Left out: the per-iteration method
    calls a general task set needs (nested task sets were refused at load) — each iteration
    is one checkout, so what the loop saves is saved per checkout."""

    def run(self) -> None:  # type: ignore[misc] # Locust marks it final; this is its loop
        try:
            self.on_start()
        except InterruptTaskSet as e:
            if e.reschedule:
                raise RescheduleTaskImmediately(e.reschedule) from e
            raise RescheduleTask(e.reschedule) from e
        user: Any = self.user
        queue: Any = self._task_queue
        sleep, choice = gevent.sleep, random.choice
        tasks: list[Any] = user.tasks
        if not tasks:
            self.get_next_task()  # type: ignore[no-untyped-call] # Locust's error for no tasks
        only = tasks[0] if len(tasks) == 1 else None
        # Locust's loop yields to the hub once per iteration (``sleep(0)`` after a zero
        # wait) so a task that never blocks cannot starve the other greenlets. A task that
        # made a request blocked on its socket and the hub ran its loop then: the yield is
        # kept only when the hub's loop has not turned since this user's last one.
        loop: Any = gevent.get_hub().loop
        counts_turns = hasattr(loop, "iteration")
        turned = -1
        slot: UserSlot | None = None
        session: Any = None
        while True:
            try:
                # TaskSet.wait, inline: the pacer's arrival comes before the task
                if user._state == LOCUST_STATE_STOPPING:
                    raise StopUser()
                user._state = LOCUST_STATE_WAITING
                if slot is None:  # no plan yet, or the first arrival: wait_time's own path
                    sleep(user.wait_time())
                    slot = user.__dict__.get("_paystab_slot")
                    session = user.__dict__.get("_paystab_session")
                else:  # wait_time without its first-call set-up
                    _next_arrival(session.pacer, slot)
                    turn = loop.iteration if counts_turns else turned
                    if turn == turned:
                        sleep(0)  # (a turn of the hub's loop during it shows next time)
                    turned = turn
                if user._state == LOCUST_STATE_STOPPING:
                    raise StopUser()
                user._state = LOCUST_STATE_RUNNING
                if queue:
                    task = queue.popleft()
                    if not getattr(task, "paystab_checkout", False):
                        task = _as_checkout(task)  # scheduled by the user: one checkout too
                else:
                    task = only or choice(tasks)
                try:
                    task(user)
                except (RescheduleTask, RescheduleTaskImmediately):
                    pass  # the next task, on the next arrival
            except InterruptTaskSet as e:
                try:
                    self.on_stop()  # type: ignore[no-untyped-call]
                except (StopUser, StopTest, GreenletExit):
                    raise
                except Exception:
                    _log.error("Uncaught exception in on_stop: \n%s", traceback.format_exc())
                if e.reschedule:
                    raise RescheduleTaskImmediately(e.reschedule) from e
                raise RescheduleTask(e.reschedule) from e
            except (StopUser, StopTest, GreenletExit):
                try:
                    self.on_stop()  # type: ignore[no-untyped-call]
                except Exception:
                    _log.error("Uncaught exception in on_stop: \n%s", traceback.format_exc())
                raise
            except Exception as e:  # paystab's own code (a task's errors are its checkout's)
                user.environment.events.user_error.fire(user_instance=self, exception=e,
                                                        tb=e.__traceback__)
                if not user.environment.catch_exceptions:
                    raise
                _log.error("%s\n%s", e, traceback.format_exc())


def _as_checkout(task: Any) -> Callable[[Any], None]:
    task_name = getattr(task, "__name__", "task")
    active = _ACTIVE

    def checkout(user: Any) -> None:
        slot: UserSlot | None = user.__dict__.get("_paystab_slot")
        if slot is None or slot.seq < 0:
            return  # no arrival (no plan yet): not a checkout
        seq, slot.seq = slot.seq, -1
        session: LoadSession = user._paystab_session
        pacer = session.pacer
        assert pacer is not None
        started = _wall_clock()
        lag_ms = (started - slot.scheduled_at) * 1000.0
        if lag_ms < 0.0:
            lag_ms = 0.0
        t0 = _perf_counter()
        me = _current()
        state: _Checkout = user._paystab_checkout
        state.attempts, state.failure, state.http_status = 0, "", 0
        active[me] = state
        raised = ""
        control: Exception | None = None
        try:
            task(user)
        except _LOCUST_CONTROL as exc:  # StopUser, RescheduleTask…: Locust's, not a failure
            control = exc
        except (gevent.GreenletExit, KeyboardInterrupt):
            session.interrupted_checkouts += 1
            pacer.done(seq, lag_ms)
            raise
        except Exception as exc:  # the user's task failed: a failed checkout, like Locust
            raised = type(exc).__name__.lower()
        finally:
            active.pop(me, None)
        latency_ms = (_perf_counter() - t0) * 1000.0
        # what the task chose (read, and reset for the next task, in one step)
        chosen = user.__dict__.pop("paystab_outcome", None)
        if control is not None and state.attempts == 0:
            pacer.abandon(seq)  # the task made no request: this arrival made no checkout
            raise control
        status = state.failure or raised
        if status:
            outcome = "failed"
        else:
            outcome = status = chosen if chosen.__class__ is str and chosen in OUTCOMES \
                else "approved"
        session.take_record(_new_record(CheckoutRecord, (
            started, task_name, "", outcome, status, "", latency_ms, state.attempts,
            state.http_status, lag_ms, session.stream, seq)))
        pacer.done(seq, lag_ms)
        if control is not None:
            raise control  # to Locust's loop, which stops or reschedules the user

    checkout.__name__ = task_name
    checkout.paystab_checkout = True  # type: ignore[attr-defined]
    return checkout


def install(environment: Any) -> None:
    """Watch the environment's requests (to attribute them to the running checkout); from
    test start, count them into Locust's statistics in batches instead of Locust's listener.

    A locustfile's module-level hooks (``@events.init.add_listener``, ``test_start``,
    ``request``…) were added to ``locust.events`` when it was imported; they are added to this
    environment's hooks too, as stock Locust runs them (call :func:`fire_init` once the runner
    exists)."""
    adopt_module_listeners(environment)
    watch = _RequestWatch(environment)
    environment.events.request.add_listener(watch)
    environment.events.test_start.add_listener(watch.take_over_stats)
    environment.events.test_stop.add_listener(watch.flush)


def adopt_module_listeners(environment: Any) -> None:
    """Add the listeners registered on ``locust.events`` (by importing a locustfile) to the
    environment's own hooks, once each, in their order. paystab's own stock-Locust hooks
    (``paystab/loadtest/locustfile.py`` registers them there too) are not the user's: left out."""
    import locust

    for name, hook in vars(locust.events).items():
        mine = getattr(environment.events, name, None)
        if mine is None or mine is hook or not hasattr(hook, "_handlers"):
            continue
        for handler in list(hook._handlers):
            module = str(getattr(handler, "__module__", "") or "")
            if handler not in mine._handlers and not module.startswith("paystab."):
                mine.add_listener(handler)


def fire_init(environment: Any, runner: Any) -> None:
    """Locust's ``init`` event, as ``locust`` fires it once the runner exists (no web UI)."""
    environment.events.init.fire(environment=environment, runner=runner, web_ui=None)
