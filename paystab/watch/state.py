"""Watch's state file: decisions and learned baselines that survive a restart (or SIGKILL).

One JSON document, written atomically (a temporary file in the same directory, fsync, then
``os.replace``), so a crash mid-write leaves the previous state, never half of one:

* ``out`` — providers watch has drained, and ``pins`` — operators' pins; on start the
  controller is told again (without acting) that those providers are out, so it probes and
  restores them after its cool-down instead of forgetting them drained;
* ``events`` — the last decisions, for the live view and ``GET /state``;
* ``baselines`` — the detectors themselves (what they learned: failure baselines, traffic
  rates, latency levels), pickled and base64-encoded. They are only taken back when the
  detector's options are unchanged; a file from another paystab version that cannot be
  read is reported and ignored (the detectors start fresh). The file is written with mode
  0600: it is trusted input, like the config.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paystab.anomaly.base import Detector

VERSION = 1


@dataclass
class SavedState:
    out: list[str] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    detectors: dict[str, Detector] = field(default_factory=dict)
    saved_at: float | None = None
    problems: list[str] = field(default_factory=list)


def save_state(path: str | Path, out: set[str], pins: dict[str, str],
               events: list[dict[str, Any]], detectors: dict[str, Detector]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    blob = base64.b64encode(pickle.dumps(detectors, protocol=pickle.HIGHEST_PROTOCOL)).decode()
    doc = {"version": VERSION, "saved_at": time.time(), "out": sorted(out), "pins": pins,
           "events": events[-200:], "baselines": blob}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_state(path: str | Path) -> SavedState:
    """The saved state; a missing file is an empty state, a bad one is reported in
    ``problems`` and ignored."""
    p = Path(path)
    if not p.exists():
        return SavedState()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return SavedState(problems=[f"state file {p} unreadable, starting fresh: {exc}"])
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return SavedState(problems=[f"state file {p} has another version, starting fresh"])
    state = SavedState(out=[str(x) for x in doc.get("out", [])],
                       pins={str(k): str(v) for k, v in dict(doc.get("pins", {})).items()
                             if v in ("in", "out")},
                       events=list(doc.get("events", [])), saved_at=doc.get("saved_at"))
    try:
        detectors = pickle.loads(base64.b64decode(doc.get("baselines", "")))
        if isinstance(detectors, dict):
            state.detectors = detectors
    except Exception as exc:  # any unpickling failure: another version's classes
        state.problems.append(f"learned baselines in {p} not usable, relearning: {exc}")
    return state


def adopt_baselines(current: dict[str, Detector], saved: dict[str, Detector]) -> list[str]:
    """Replace detectors in ``current`` by their saved selves when their options match;
    answers the names taken back."""
    taken = []
    for name, detector in list(current.items()):
        old = saved.get(name)
        if old is None or type(old) is not type(detector):
            continue
        if getattr(old, "config", None) != getattr(detector, "config", None):
            continue
        current[name] = old
        taken.append(name)
    return taken
