"""A drill whose load generator raises mid-run injects nothing afterwards and leaves no fault.

The drill runs in a child process (Locust gevent-patches whatever process imports it) with
``run_load`` replaced by one that raises two seconds in, while the fault scheduler has a
second fault due at four seconds. The child waits past that moment and prints every
inject call it saw, each with the time since the drill's own clock started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    import paystab.loadtest.runner as load_runner  # gevent-patches this process first
    from paystab.chaos.session import FaultSession
    from paystab.drill.runner import Drill, DrillOptions

    calls = []
    real_inject = FaultSession.inject

    def inject(self, fault):
        calls.append({"fault": fault.uid, "at": time.monotonic()})
        return real_inject(self, fault)

    FaultSession.inject = inject
    started = {}

    def run_load(*args, **kwargs):
        started["at"] = time.monotonic()
        time.sleep(2.0)
        raise RuntimeError("the load generator fell over")

    load_runner.run_load = run_load
    outcome = "returned"
    try:
        Drill(DrillOptions(runbook=sys.argv[1], out_dir=Path(sys.argv[2]), live=False)).run()
    except RuntimeError as exc:
        outcome = f"raised: {exc}"
    time.sleep(4.0)  # past the second fault's time: the scheduler must not wake up and inject
    print(json.dumps({"outcome": outcome, "load_started": started.get("at"), "calls": calls}))
""")

RUNBOOK = """
name: load-falls-over
description: two faults on a schedule; the load raises between them
seed: 5
target:
  reference: {}
load:
  profile: steady
  rate: 20/s
  duration: 20s
faults:
  - name: first
    at: 1s
    duration: 1s
    kind: provider.latency
    target: card-alpha
    params: {added: 50ms}
  - name: second
    at: 4s
    duration: 2s
    kind: provider.latency
    target: card-alpha
    params: {added: 50ms}
allow:
  - provider:card-alpha
"""


@pytest.mark.slow
def test_no_fault_is_injected_after_the_load_raised_and_none_stays(tmp_path: Path) -> None:
    runbook = tmp_path / "load-falls-over.yaml"
    runbook.write_text(RUNBOOK)
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-c", CHILD, str(runbook), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["outcome"] == "raised: the load generator fell over"
    injected_s = [call["at"] - seen["load_started"] for call in seen["calls"]]
    assert len(injected_s) == 1 and injected_s[0] < 2.0, injected_s  # the first only
    status = subprocess.run([sys.executable, "-m", "paystab", "chaos", "status", "--json"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["faults"] == []
