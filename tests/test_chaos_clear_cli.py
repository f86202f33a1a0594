"""``paystab chaos clear`` follows the exit-code table: an unknown fault id is a usage error.

A typo in a fault id is invalid input (exit 2) naming the id and the closest recorded ones,
never the "daemon down? not root?" of an environment problem (exit 4), and nothing else
named in the same command is cleared.
"""

from __future__ import annotations

from pathlib import Path

from paystab.chaos.journal import Journal
from tests.conftest_chaos import paystab


def _record(state: Path, uid: str) -> None:
    Journal(state).write({"schema": "paystab.fault/v1", "uid": uid, "name": uid.rsplit("-", 1)[0],
                          "kind": "process.stop", "target": "pid:999999999", "params": {},
                          "where": {"pid": 999999999, "identity": "pid:999999999"},
                          "created_at": 0.0, "description": "process.stop on pid:999999999",
                          "owner": {"pid": 999999999}})


def test_unknown_id_exits_2_naming_it(tmp_path: Path) -> None:
    result = paystab("chaos", "clear", "no-such-fault-0000", state=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "no-such-fault-0000" in result.stderr
    assert "daemon down" not in result.stderr


def test_unknown_id_suggests_the_recorded_one_and_clears_nothing(tmp_path: Path) -> None:
    _record(tmp_path, "hang-alpha-1a2b3c4d")
    result = paystab("chaos", "clear", "hang-alpha-1a2b3c4e", "hang-alpha-1a2b3c4d",
                     state=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "hang-alpha-1a2b3c4e" in result.stderr
    assert "did you mean hang-alpha-1a2b3c4d" in result.stderr
    assert [e.uid for e in Journal(tmp_path).entries()] == ["hang-alpha-1a2b3c4d"]
    # the right id alone is cleared (its process is long gone: clearing is a no-op)
    result = paystab("chaos", "clear", "hang-alpha-1a2b3c4d", state=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Journal(tmp_path).entries() == []
