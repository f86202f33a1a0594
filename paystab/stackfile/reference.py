"""The reference stack as a stack file: one path for drilling any stack, paystab's included.

``paystab up --ready-file DIR/ready.json`` also writes ``DIR/stack.yaml`` (:func:`write_beside`),
and a ready file given where a stack file is expected is read as one
(:func:`from_ready_file`). Both describe the running stack the same way: ``ready_file``
(nothing to start: the simulators and the gateway run already), paystab's own payment API
as the checkout, the gateway's providers as the simulators, detection from the gateway's
``/metrics`` and failover through its admin API (the watch parts), and reconciliation of
the gateway's ledger against the simulators'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from paystab.stack.endpoints import StackEndpoints
from paystab.stackfile.model import StackFile

TOKEN_ENV = "PAYSTAB_TOKEN"
_HEADER = """\
# The reference stack started by `paystab up`, described as a stack file.
# Drill it with:  paystab drill provider-timeout --stack {name}
# Written by paystab up; the ready file beside it holds the live addresses.
"""


def stack_dict(endpoints: StackEndpoints, ready_file: str) -> dict[str, Any]:
    """The stack file (as plain data) describing a running reference stack."""
    gateway = endpoints.gateway_url.rstrip("/")
    token = {"token_env": TOKEN_ENV} if endpoints.admin_token else {}
    methods_of = {name: p.methods for name, p in endpoints.providers.items()}
    data: dict[str, Any] = {
        "version": 1,
        "name": "paystab-reference",
        "description": "paystab's reference gateway and PSP simulators (paystab up)",
        "ready_file": ready_file,
        "checkout": {"base_url": gateway},
        "simulators": [{"name": name, "dialect": p.dialect, "methods": list(p.methods)}
                       for name, p in endpoints.providers.items()],
        "telemetry": {
            "interval_s": "100ms",
            "providers": [{"name": name, "methods": list(methods)}
                          for name, methods in methods_of.items()],
            "sources": [{"kind": "metrics_url", "name": "gateway",
                         "url": endpoints.metrics_url or gateway + "/metrics", **token}],
        },
        "failover": {"actuators": [{"kind": "gateway", "url": gateway, **token}]},
    }
    if endpoints.gateway_ledger:
        data["ledgers"] = {"merchant": {"kind": "paystab_gateway",
                                        "path": str(Path(endpoints.gateway_ledger).resolve())},
                           "psp": [{"kind": "simulators"}]}
    return data


def stack_file_for(endpoints: StackEndpoints, ready_file: str | Path) -> StackFile:
    return StackFile.model_validate(stack_dict(endpoints, str(ready_file)))


def from_ready_file(path: str | Path) -> StackFile:
    """A paystab ready file read as the stack file it describes."""
    p = Path(path)
    return stack_file_for(StackEndpoints.read(p), str(p.resolve()))


def write_beside(ready_file: Path, endpoints: StackEndpoints) -> Path:
    """Write ``stack.yaml`` next to ``ready_file`` (which it names relatively); answer its path.

    A ``stack.yaml`` there that ``paystab up`` did not write (the user's own) is kept: the
    file is then ``<ready file stem>.stack.yaml``."""
    target = ready_file.parent / "stack.yaml"
    if target.exists() and not target.read_text(errors="replace").startswith(_HEADER[:40]):
        target = ready_file.parent / f"{ready_file.stem}.stack.yaml"
    data = stack_dict(endpoints, ready_file.name)
    stack_file_for(endpoints, ready_file.resolve())  # what is written is a valid stack file
    text = _HEADER.format(name=target) + yaml.safe_dump(data, sort_keys=False,
                                                        default_flow_style=False)
    tmp = target.with_name(".stack.yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
