"""Fault kinds by name: the one place that knows which backends exist.

Runbooks and the command line name a kind (``provider.hang``, ``iptables.partition``);
:func:`fault_class` looks it up here. The backends are imported explicitly below — never
from a dotted string found in a runbook — so a typo fails when the runbook loads, with the
list of known kinds, and not halfway through a drill. Backend modules import their heavy
libraries (the Docker SDK) only when a fault of theirs is prepared.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from paystab.chaos import docker as _docker  # noqa: F401 - registers docker.*
from paystab.chaos import iptables as _iptables  # noqa: F401 - registers iptables.*
from paystab.chaos import process as _process  # noqa: F401 - registers process.*
from paystab.chaos import provider as _provider  # noqa: F401 - registers provider.*
from paystab.chaos import proxy as _proxy  # noqa: F401 - registers proxy.*
from paystab.chaos.base import Fault, FaultSpec, registered_kinds
from paystab.chaos.params import ErrorFactory, parse_params
from paystab.exceptions import InvalidInput


def kinds() -> dict[str, type[Fault]]:
    """Every registered kind, sorted by name."""
    return dict(sorted(registered_kinds().items()))


def fault_class(kind: str, error: Callable[[str, str], InvalidInput] | None = None) -> type[Fault]:
    """The class registered as ``kind``; an unknown name is exit 2 with a suggestion."""
    known = registered_kinds()
    if kind in known:
        return known[kind]
    close = difflib.get_close_matches(kind, list(known), n=1)
    problem = f"unknown fault kind '{kind}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    expected = "one of " + ", ".join(sorted(known))
    if error is not None:
        raise error(problem, expected)
    raise InvalidInput(problem, source="KIND", expected=expected)


def build_spec(
    name: str,
    kind: str,
    target: str,
    raw_params: Mapping[str, object],
    *,
    kind_error: Callable[[str, str], InvalidInput],
    target_error: Callable[[ValueError], InvalidInput],
    param_error: ErrorFactory,
) -> FaultSpec:
    """Check kind, target syntax and parameters; return the validated spec.

    The three callbacks build the exit-2 error for the place the value came from (a
    runbook line or a command-line flag), so messages name the right file and field.
    """
    cls = fault_class(kind, kind_error)
    try:
        cls.check_target(target)
    except ValueError as exc:
        raise target_error(exc) from None
    params = parse_params(kind, cls.params_spec, raw_params, param_error)
    problem = cls.check_params(params)
    if problem:
        raise param_error(None, problem, None)
    return FaultSpec(name=name, kind=kind, target=target, params=params)
