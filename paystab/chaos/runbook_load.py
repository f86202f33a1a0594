"""Load and validate a runbook YAML file into :class:`~paystab.chaos.runbook.Runbook`.

Every mistake is an :class:`InvalidInput` (exit 2) naming the file, the line, the field
path (``faults[1].params.latency``) and what was expected — and it is found when the file
loads, not halfway through a drill: unknown keys, fault kinds and parameters (looked up
in the fault registry), values without units, out-of-range numbers, duplicate fault names,
faults scheduled after the load ends, hypotheses on unknown report variables, provider or
process names the target does not have, and targets outside the ``allow`` list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paystab.chaos.allow import AllowList
from paystab.chaos.base import ProcessRef, ProviderAddress, invalid_target
from paystab.chaos.hypothesis import Hypothesis, HypothesisError
from paystab.chaos.params import ErrorFactory
from paystab.chaos.registry import build_spec, fault_class
from paystab.chaos.runbook import (
    WINDOW_METRICS,
    AbortCondition,
    FaultStep,
    LoadSpec,
    Probe,
    Runbook,
    SteadyState,
    TargetSpec,
)
from paystab.exceptions import InvalidInput
from paystab.yamlsrc import Node, load_yaml, load_yaml_text

TOP_KEYS = ("name", "description", "seed", "target", "steady_state", "load", "faults",
            "abort_when", "hypotheses", "allow")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ABORT = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?%?)\s*"
                    r"(?:over\s+(\S+))?\s*$")


def load_runbook_file(path: str | Path) -> Runbook:
    return parse_runbook(load_yaml(path))


def load_runbook_text(text: str, source: str = "<runbook>") -> Runbook:
    return parse_runbook(load_yaml_text(text, source))


def parse_runbook(root: Node) -> Runbook:
    root.as_map()
    root.only_keys(set(TOP_KEYS))
    name_node = root.field("name")
    name = name_node.as_str()
    if not _NAME.match(name):
        raise name_node.error(f"bad runbook name {name!r}", "lowercase letters, digits, - _ .")
    target = _target(root.get("target"))
    load = _load(root.field("load"))
    faults = _faults(root.get("faults"), load, target)
    return Runbook(
        name=name,
        description=root.field("description").as_str().strip(),
        source=root.source,
        seed=_opt(root, "seed", lambda n: n.as_int(lo=0), 1),
        target=target,
        steady_state=_steady(root.get("steady_state")),
        load=load,
        faults=faults,
        abort_when=tuple(_abort(n) for n in _list(root.get("abort_when"))),
        hypotheses=tuple(_hypothesis(n) for n in _list(root.get("hypotheses"))),
        allow=_allow(root.get("allow"), root, target, faults),
    )


def _opt(node: Node, key: str, read: Any, default: Any) -> Any:
    child = node.get(key)
    return default if child is None or child.value is None else read(child)


def _list(node: Node | None) -> list[Node]:
    return [] if node is None or node.value is None else node.elements()


def _url(node: Node) -> str:
    text = node.as_str()
    if not text.startswith(("http://", "https://")):
        raise node.error(f"{text!r} is not a URL", "http://HOST:PORT")
    return text.rstrip("/")


# -- target ----------------------------------------------------------------------------------
def _target(node: Node | None) -> TargetSpec:
    if node is None or node.value is None:
        return TargetSpec()
    node.only_keys({"reference", "gateway_url", "ready_file", "providers", "containers",
                    "processes", "proxy_api"})
    own = node.has("gateway_url") or node.has("ready_file")
    if node.has("reference") and own:
        raise node.field("reference").error(
            "a runbook drills either the reference stack or your own",
            "target.reference, or target.gateway_url / target.ready_file")
    options: dict[str, Any] = {}
    ref = node.get("reference")
    if ref is not None and ref.value not in (None, True):
        options = ref.as_map()
    providers = {}
    for pname, pnode in (node.field("providers").items() if node.has("providers") else []):
        pnode.only_keys({"url", "admin_url"})
        providers[pname] = ProviderAddress(url=_opt(pnode, "url", _url, None),
                                           admin_url=_opt(pnode, "admin_url", _url, None))
    processes = {}
    for pname, pnode in (node.field("processes").items() if node.has("processes") else []):
        pnode.only_keys({"pid", "pidfile", "cmd", "restart"})
        given = [k for k in ("pid", "pidfile", "cmd") if pnode.has(k)]
        if len(given) != 1:
            raise pnode.error("say how to find the process", "exactly one of pid, pidfile, cmd")
        processes[pname] = ProcessRef(
            pid=_opt(pnode, "pid", lambda n: n.as_int(lo=2), None),
            pidfile=_opt(pnode, "pidfile", lambda n: n.as_str(), None),
            cmd=_opt(pnode, "cmd", lambda n: n.as_str(), None),
            restart=_opt(pnode, "restart", lambda n: n.as_str(), None))
    return TargetSpec(
        reference=not own,
        reference_options=options,
        gateway_url=_opt(node, "gateway_url", _url, None),
        ready_file=_opt(node, "ready_file", lambda n: n.as_str(), None),
        providers=providers,
        containers=tuple(n.as_str() for n in _list(node.get("containers"))),
        processes=processes,
        proxy_api=_opt(node, "proxy_api", _url, None),
    )


def _known_providers(target: TargetSpec) -> set[str] | None:
    """Provider names a fault may target, or None when only the running stack knows."""
    if target.ready_file:
        return None
    if target.reference:
        from paystab.stack.catalog import default_providers

        extra = target.reference_options.get("providers")
        return {p.name for p in default_providers()} | set(extra or {})
    return set(target.providers) if target.providers else None


def _known_processes(target: TargetSpec) -> set[str] | None:
    if target.ready_file:
        return None
    return set(target.processes) | ({"gateway", "providers"} if target.reference else set())


# -- load, steady state ------------------------------------------------------------------
# Without a stated minimum, a runbook can be shortened to this: under ~20 s the detectors'
# warm-up and the 5-s sustained-recovery window leave too little to judge.
MIN_DURATION_DEFAULT_S = 20.0


def _load(node: Node) -> LoadSpec:
    from paystab.loadtest.profiles import PROFILES, make_profile

    node.only_keys({"profile", "rate", "duration", "min_duration", "users", "params"})
    profile = _opt(node, "profile", lambda n: n.as_choice(tuple(PROFILES)), "steady")
    duration_s = node.field("duration").as_duration_s(lo=1.0, hi=7 * 86400.0)
    min_duration_s = _opt(node, "min_duration", lambda n: n.as_duration_s(lo=1.0, hi=7 * 86400.0),
                          min(MIN_DURATION_DEFAULT_S, duration_s))
    if min_duration_s > duration_s:
        raise node.field("min_duration").error(
            f"{min_duration_s:g}s is longer than the load itself ({duration_s:g}s)",
            "min_duration <= duration")
    rate = node.field("rate").as_rate(lo=0.01)
    params: dict[str, float] = {}
    pnode = node.get("params")
    if pnode is not None and pnode.value is not None:
        units = {p.name: p.unit for p in PROFILES[profile].params}
        for key, child in pnode.items():
            if key not in units:
                raise child.error(f"profile '{profile}' has no parameter '{key}'",
                                  "one of " + (", ".join(sorted(units)) or "(none)"))
            seconds = units[key] == "s" and isinstance(child.value, str)
            params[key] = child.as_duration_s() if seconds else child.as_float()
        try:
            make_profile(profile, rate, duration_s, params)
        except InvalidInput as exc:
            where = pnode.get(exc.field) if exc.field else None
            raise (where or pnode).error(exc.problem, exc.expected) from None
    return LoadSpec(profile=profile, rate_per_s=rate, duration_s=duration_s,
                    users=_opt(node, "users", lambda n: n.as_int(lo=1), None), params=params,
                    min_duration_s=min_duration_s)


def _steady(node: Node | None) -> SteadyState:
    if node is None or node.value is None:
        return SteadyState()
    node.only_keys({"window", "probes"})
    probes = []
    names: set[str] = set()
    for pnode in _list(node.get("probes")):
        probe = _probe(pnode)
        if probe.name in names:
            raise pnode.field("name").error(f"duplicate probe name '{probe.name}'")
        names.add(probe.name)
        probes.append(probe)
    return SteadyState(window_s=_opt(node, "window", lambda n: n.as_duration_s(lo=1.0), 10.0),
                       probes=tuple(probes))


def _probe(node: Node) -> Probe:
    node.only_keys({"name", "when", "http", "expect_status", "timeout", "metric", "min", "max",
                    "tolerance"})
    if node.has("http") == node.has("metric"):
        raise node.error("a probe checks one thing", "exactly one of http, metric")
    when_node = node.get("when")
    when: tuple[str, ...] = ("before", "after")
    if when_node is not None:
        if isinstance(when_node.value, str):
            choice = when_node.as_choice(("before", "after", "both"))
            when = ("before", "after") if choice == "both" else (choice,)
        else:
            when = tuple(n.as_choice(("before", "after")) for n in when_node.elements())
    metric = _opt(node, "metric", lambda n: n.as_choice(tuple(WINDOW_METRICS)), None)
    if metric is None and any(node.has(k) for k in ("min", "max", "tolerance")):
        raise node.error("min, max and tolerance are for metric probes", "metric: NAME")
    return Probe(
        name=node.field("name").as_str(), when=when,
        http=_opt(node, "http", lambda n: n.as_str(), None),
        expect_status=_opt(node, "expect_status", lambda n: n.as_int(lo=100, hi=599), 200),
        timeout_s=_opt(node, "timeout", lambda n: n.as_duration_s(lo=0.01, hi=300.0), 2.0),
        metric=metric,
        min=_opt(node, "min", lambda n: n.as_float(), None),
        max=_opt(node, "max", lambda n: n.as_float(), None),
        tolerance=_opt(node, "tolerance", _fraction, None),
        line=node.line,
    )


def _fraction(node: Node) -> float:
    value = node.value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
        return float(value.strip().rstrip("%")) / 100.0
    return node.as_float(lo=0.0, hi=100.0)


# -- faults ----------------------------------------------------------------------------------
def _faults(node: Node | None, load: LoadSpec, target: TargetSpec) -> tuple[FaultStep, ...]:
    steps: list[FaultStep] = []
    seen: set[str] = set()
    for index, fnode in enumerate(_list(node)):
        fnode.only_keys({"name", "at", "duration", "kind", "target", "params"})
        name_node = fnode.get("name")
        name = name_node.as_str() if name_node is not None else f"fault-{index + 1}"
        if name in seen:
            raise (name_node or fnode).error(f"duplicate fault name '{name}'",
                                             "a name unique within the runbook")
        seen.add(name)
        kind_node, target_node = fnode.field("kind"), fnode.field("target")
        params_node = fnode.get("params")
        raw_params = params_node.as_map() if params_node is not None and params_node.value \
            else {}
        spec = build_spec(
            name, kind_node.as_str(), target_node.as_str(), raw_params,
            kind_error=kind_node.error, target_error=_target_error(target_node),
            param_error=_param_error(params_node, fnode),
        )
        _check_names(spec.kind, spec.target, target_node, target)
        at_node = fnode.field("at")
        at_s = at_node.as_duration_s(lo=0.0)
        if at_s >= load.duration_s:
            raise at_node.error(f"starts at {at_s:g}s, after the load ends",
                                f"< load.duration ({load.duration_s:g}s)")
        duration_s = _opt(fnode, "duration", lambda n: n.as_duration_s(lo=0.001), None)
        if duration_s is not None and at_s + duration_s > load.duration_s + 1e-9:
            raise fnode.field("duration").error(
                f"ends at {at_s + duration_s:g}s, after the load ends",
                f"at + duration <= load.duration ({load.duration_s:g}s)")
        steps.append(FaultStep(spec, at_s, duration_s, line=fnode.line,
                               target_line=target_node.line))
    return tuple(steps)


def _target_error(node: Node) -> Callable[[ValueError], InvalidInput]:
    return lambda exc: invalid_target(exc, node.source, node.line, node.path)


def _param_error(params_node: Node | None, fault_node: Node) -> ErrorFactory:
    def make(name: str | None, problem: str, expected: str | None) -> InvalidInput:
        child = params_node.get(name) if params_node is not None and name and \
            params_node.is_map() else None
        return (child or params_node or fault_node).error(problem, expected)
    return make


def _check_names(kind: str, target_text: str, node: Node, target: TargetSpec) -> None:
    """A provider or process name must exist in the runbook's target."""
    identity = fault_class(kind).check_target(target_text)
    prefix, _, name = identity.partition(":")
    if "@" in target_text:
        return  # an explicit address: the running service will say
    known = {"provider": _known_providers, "process": _known_processes}.get(prefix)
    names = known(target) if known else None
    if names is not None and name not in names:
        raise node.error(f"unknown {prefix} '{name}'", "one of " + ", ".join(sorted(names)))


# -- aborts, hypotheses, allow -------------------------------------------------------------
def _abort(node: Node) -> AbortCondition:
    window_s = 30.0
    if isinstance(node.value, str):
        text, where = node.value, node
    else:
        node.only_keys({"when", "window"})
        where = node.field("when")
        text = where.as_str()
        window_s = _opt(node, "window", lambda n: n.as_duration_s(lo=1.0), 30.0)
    match = _ABORT.match(text)
    if not match:
        raise where.error(f"cannot read {text!r}",
                          "METRIC OP NUMBER [over DURATION], e.g. availability < 0.9 over 30s")
    metric, op, raw, over = match.groups()
    if metric not in WINDOW_METRICS:
        raise where.error(f"unknown metric '{metric}'", "one of " + ", ".join(WINDOW_METRICS))
    if over is not None:
        window_s = Node(over, where.path, where.line, where.source).as_duration_s(lo=1.0)
    threshold = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    return AbortCondition(" ".join(text.split()), metric, op, threshold, window_s, node.line)


def _hypothesis(node: Node) -> Hypothesis:
    try:
        return Hypothesis.parse(node.as_str(), node.line)
    except HypothesisError as exc:
        raise node.error(exc.problem, exc.expected) from None


def _allow(node: Node | None, root: Node, target: TargetSpec,
           faults: tuple[FaultStep, ...]) -> AllowList:
    identities = [(fault_class(s.spec.kind).check_target(s.spec.target), s) for s in faults]
    if node is None or node.value is None:
        if not target.reference:
            raise root.error("a runbook against your own stack must say what it may touch",
                             "allow: [HOST:PORT, provider:NAME, container:NAME, pid:N, ...]")
        # The reference stack is paystab's own: the faults as written are the blast radius.
        return AllowList(tuple(dict.fromkeys(identity for identity, _ in identities)))
    items = node.elements()
    allow = AllowList.parse([n.as_str() for n in items], source=root.source,
                            lines=[n.line for n in items], field=node.path)
    for identity, step in identities:
        if not allow.permits_name(identity):
            raise InvalidInput(
                f"target '{step.spec.target}' ({identity}) is outside the blast radius",
                source=root.source, line=step.target_line,
                field=f"faults[{faults.index(step)}].target",
                expected="a target listed in allow: " + ", ".join(allow.entries))
    return allow
