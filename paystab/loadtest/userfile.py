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

Locust's first task iteration runs before the first wait (so before any arrival); like
paystab's own checkout user, that iteration is skipped. Nested ``TaskSet`` classes are not
paced (an arrival would start a whole nested loop): such a file is refused with exit 2.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import TaskSet, User

from paystab.exceptions import InvalidInput
from paystab.loadtest.pacing import UserSlot
from paystab.loadtest.records import OUTCOMES, CheckoutRecord
from paystab.loadtest.session import LoadSession, session_for


class _Checkout:
    __slots__ = ("attempts", "failure", "http_status")

    def __init__(self) -> None:
        self.attempts = 0
        self.failure = ""
        self.http_status = 0


_ACTIVE: dict[Any, _Checkout] = {}  # greenlet → the checkout its task is making


def _on_request(exception: BaseException | None = None, response: Any = None,
                **_kw: Any) -> None:
    checkout = _ACTIVE.get(gevent.getcurrent())
    if checkout is None:
        return
    checkout.attempts += 1
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        checkout.http_status = status
    if exception is not None and not checkout.failure:
        checkout.failure = f"http_{status}" if isinstance(status, int) and status >= 400 \
            else type(exception).__name__.lower()


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


def paced(cls: type[User]) -> type[User]:
    """``cls`` with paystab's arrival pacing and one record per task."""
    tasks: list[Any] = [_as_checkout(task) for task in cls.tasks]  # TaskSets were refused

    def wait_time(self: Any) -> float:
        session: LoadSession = session_for(self.environment)
        pacer = session.pacer
        if pacer is None:
            return 0.5  # no plan yet
        if not hasattr(self, "_paystab_slot"):
            self._paystab_slot = UserSlot()
            pacer.tick_when_idle = True
        pacer.wait_for_arrival(self._paystab_slot)
        return 0.0

    made: type[User] = type(cls.__name__, (cls,), {"wait_time": wait_time,
                                                   "__module__": cls.__module__})
    made.tasks = tasks  # after creation: Locust's metaclass would merge in the base's tasks
    return made


def _as_checkout(task: Any) -> Callable[[Any], None]:
    task_name = getattr(task, "__name__", "task")

    def checkout(user: Any) -> None:
        slot: UserSlot | None = getattr(user, "_paystab_slot", None)
        if slot is None or slot.seq < 0:
            return  # Locust's first iteration, before any arrival
        seq, slot.seq = slot.seq, -1
        session = session_for(user.environment)
        pacer = session.pacer
        assert pacer is not None
        started = time.time()
        lag_ms = max(started - slot.scheduled_at, 0.0) * 1000.0
        t0 = time.perf_counter()
        me = gevent.getcurrent()
        _ACTIVE[me] = checkout_state = _Checkout()
        user.paystab_outcome = None
        raised = ""
        try:
            task(user)
        except (gevent.GreenletExit, KeyboardInterrupt):
            session.interrupted_checkouts += 1
            pacer.done(seq, lag_ms)
            raise
        except Exception as exc:  # the user's task failed: a failed checkout, like Locust
            raised = type(exc).__name__.lower()
        finally:
            _ACTIVE.pop(me, None)
        chosen = getattr(user, "paystab_outcome", None)
        status = checkout_state.failure or raised
        if status:
            outcome = "failed"
        elif isinstance(chosen, str) and chosen in OUTCOMES:
            outcome = status = chosen
        else:
            outcome = status = "approved"
        session.record(CheckoutRecord(
            started, task_name, "", outcome, status, "", (time.perf_counter() - t0) * 1000.0,
            checkout_state.attempts, checkout_state.http_status, lag_ms, session.stream, seq))
        pacer.done(seq, lag_ms)

    checkout.__name__ = task_name
    return checkout


def install(environment: Any) -> None:
    """Watch the environment's requests (to attribute them to the running checkout)."""
    environment.events.request.add_listener(_on_request)
