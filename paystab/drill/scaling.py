"""How a runbook is fitted to one run: ``--duration``, ``--rps``, ``--seed`` and a stack
file's ``load.max_rps``. Each change is returned as a note for the report, so a verdict
always says at what rate and for how long the runbook actually ran."""

from __future__ import annotations

import dataclasses

from paystab.chaos.runbook import Runbook
from paystab.exceptions import InvalidInput


def scaled(runbook: Runbook, duration_s: float | None, rps: float | None,
           seed: int | None, max_rps: float | None = None) -> tuple[Runbook, list[str]]:
    """Apply ``--duration/--rps/--seed``; a new duration scales the fault schedule with it.
    Without ``--rps``, a stack file's ``load.max_rps`` scales the whole load shape down so
    that it peaks there (a flash sale keeps its factor; only the rates shrink)."""
    notes: list[str] = []
    load = runbook.load
    faults = runbook.faults
    if duration_s is not None and duration_s < load.min_duration_s:
        raise InvalidInput(
            f"{duration_s:g}s is too short for runbook '{runbook.name}': its hypotheses cannot "
            f"be judged in less than {load.min_duration_s:g}s", source="--duration",
            expected=f"at least {load.min_duration_s:g}s (the runbook's load.min_duration)")
    if duration_s is not None and duration_s != load.duration_s:
        factor = duration_s / load.duration_s
        faults = tuple(dataclasses.replace(
            s, at_s=s.at_s * factor, duration_s=None if s.duration_s is None else s.duration_s * factor)
            for s in faults)
        notes.append(f"duration {load.duration_s:g}s → {duration_s:g}s; fault schedule and load shape "
                     f"scaled ×{factor:.3g}")
        params = {k: v * factor if k.endswith("_s") else v for k, v in load.params.items()}
        load = dataclasses.replace(load, duration_s=duration_s, params=params)
    if rps is not None and rps != load.rate_per_s:
        notes.append(f"rate {load.rate_per_s:g}/s → {rps:g}/s")
        load = dataclasses.replace(load, rate_per_s=rps)
    elif rps is None and max_rps is not None:
        from paystab.loadtest.profiles import make_profile

        peak = make_profile(load.profile, load.rate_per_s, load.duration_s,
                            dict(load.params)).peak_rate()
        if peak > max_rps:
            rate = load.rate_per_s * max_rps / peak
            notes.append(f"rate {load.rate_per_s:g}/s → {rate:.3g}/s: the stack file's "
                         f"load.max_rps ({max_rps:g}/s) caps the runbook's peak of {peak:g}/s")
            load = dataclasses.replace(load, rate_per_s=rate)
    return dataclasses.replace(runbook, load=load, faults=faults,
                               seed=runbook.seed if seed is None else seed), notes
