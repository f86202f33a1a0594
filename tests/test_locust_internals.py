"""The Locust internals paystab's load engine relies on, checked against the installed Locust.

paystab pins Locust to a range (pyproject.toml) and this file is the contract for that
range: the engine decides whether anyone besides Locust's own statistics listens to
request events by the length of ``EventHook._handlers`` (loadtest/engine.py), and batches
statistics through ``StatsEntry._cache_response_times`` and ``locust.stats.
bucket_response_time`` (loadtest/locust_stats.py; the latter first appears in 2.43.4). Run
against the lowest and the highest version of the range before widening it: 2.44.0 and
2.47.0 passed this file, tests/test_load_engine.py and tests/test_load_mechanics.py. The checks run
in a fresh interpreter: importing Locust gevent-patches the process that imports it.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from tests.conftest_load import run_script

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _as_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def test_installed_locust_is_inside_the_pinned_range() -> None:
    pin = re.search(r'"locust>=([\d.]+),<([\d.]+)"', PYPROJECT.read_text())
    assert pin, "pyproject.toml pins locust as >=LOW,<HIGH"
    low, high = _as_tuple(pin.group(1)), _as_tuple(pin.group(2))
    assert low <= _as_tuple(version("locust")) < high


CHECKS = r"""
from locust.env import Environment
from locust.event import EventHook
from locust.stats import RequestStats, StatsEntry, bucket_response_time

hook = EventHook()
assert isinstance(hook._handlers, list) and len(hook._handlers) == 0
def listener(**kw):
    return None
hook.add_listener(listener)
assert len(hook._handlers) == 1
hook.remove_listener(listener)
assert len(hook._handlers) == 0

# A fresh environment with a runner: Locust's own statistics are the only request listener.
env = Environment(user_classes=[])
env.create_local_runner()
assert len(env.events.request._handlers) == 1, env.events.request._handlers
env.runner.quit()

stats = RequestStats()
entry = stats.get("/v1/payments", "POST")
assert isinstance(entry, StatsEntry)
entry.log(12, 100)
entry._cache_response_times(1000)
cached = entry.response_times_cache[1000]
assert cached.num_requests == 1 and cached.response_times == {12: 1}, cached
assert bucket_response_time(1234) == 1200 and bucket_response_time(12) == 12
print("internals ok")
"""


def test_the_internals_the_engine_uses_are_there_and_behave() -> None:
    done = run_script(CHECKS)
    assert done.returncode == 0 and "internals ok" in done.stdout, done.stderr[-3000:]
