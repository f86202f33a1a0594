"""Load and validate a runbook YAML file into :class:`~paystab.chaos.runbook.Runbook`.

The file is read as YAML 1.2 with the line of every field (:mod:`paystab.config.yaml12`),
validated against :class:`~paystab.chaos.runbook_model.RunbookModel` (keys, types, units,
limits), then checked for what the model cannot know alone: fault kinds and parameters
(looked up in the fault registry), duplicate names, faults scheduled after the load ends,
profile parameters, the checkout the load sends (``load.flow``'s templates and JSON paths,
the ``load.flow_file`` read, the ``load.locustfile`` found: both relative to the runbook),
abort conditions, hypotheses on unknown report variables, provider or process names the
target does not have, and targets outside the ``allow`` list. Every
problem of the file is reported at once, each as ``file:line: field: problem (expected …)``
(:class:`~paystab.config.problems.ConfigInvalid`, exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from paystab.chaos.allow import AllowList
from paystab.chaos.base import ProcessRef, ProviderAddress, invalid_target
from paystab.chaos.hypothesis import Hypothesis, HypothesisError
from paystab.chaos.params import ErrorFactory
from paystab.chaos.registry import build_spec, fault_class
from paystab.chaos.runbook import (
    WINDOW_METRICS,
    AbortCondition,
    FaultStep,
    LoadCheckout,
    LoadSpec,
    Probe,
    Runbook,
    SteadyState,
    TargetSpec,
)
from paystab.chaos.runbook_checkout import check_checkout, flow_key_names
from paystab.chaos.runbook_model import (
    AbortModel,
    FaultModel,
    LoadModel,
    RunbookModel,
    SteadyStateModel,
    TargetModel,
)
from paystab.comparison import ORDERING, match_comparison
from paystab.config.problems import Problems, did_you_mean
from paystab.config.yaml12 import Loc, load_file_with_lines, load_with_lines, loc_text
from paystab.exceptions import InvalidInput
from paystab.units import parse_duration_s

TOP_KEYS = tuple(RunbookModel.model_fields)
M = TypeVar("M", bound=BaseModel)
_ABORT_TAIL = re.compile(r"\s*(?:over\s+(\S+))?\s*")  # after METRIC OP NUMBER[%]
# Without a stated minimum, a runbook can be shortened to this: under ~20 s the detectors'
# warm-up and the 5-s sustained-recovery window leave too little to judge.
MIN_DURATION_DEFAULT_S = 20.0


def load_runbook_file(path: str | Path) -> Runbook:
    value, lines = load_file_with_lines(path)
    try:
        text: str | None = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None  # read once already; the inline flow's deeper checks are then skipped
    return parse_runbook(value, lines, str(path), text=text, base_dir=Path(path).parent)


def load_runbook_text(text: str, source: str = "<runbook>",
                      base_dir: str | Path | None = None) -> Runbook:
    """``base_dir``: where ``load.flow_file`` / ``load.locustfile`` are looked for (default:
    the directory of ``source`` when it is a file, else the working directory)."""
    value, lines = load_with_lines(text, source)
    return parse_runbook(value, lines, source, text=text,
                         base_dir=Path(base_dir) if base_dir is not None else None)


def parse_runbook(value: object, lines: dict[Loc, int], source: str, *,
                  text: str | None = None, base_dir: Path | None = None) -> Runbook:
    """Validate a parsed runbook; raise every problem at once. ``text`` (the file's text)
    lets an inline ``load.flow`` be checked at its lines; ``base_dir`` resolves its paths."""
    if base_dir is None:
        base_dir = Path(source).parent if Path(source).is_file() else Path.cwd()
    problems = Problems(source, lines)
    try:
        model = RunbookModel.model_validate(value)
    except ValidationError as exc:
        problems.add_validation(exc, RunbookModel)
        flow_key_names(problems)
        _check_valid_parts(value, _Checker(problems, text, base_dir))
        problems.raise_if_any()
        raise  # unreachable: a validation error always has a problem
    checker = _Checker(problems, text, base_dir)
    target = checker.target(model.target)
    load = checker.load(model.load)
    steady = checker.steady(model.steady_state)
    faults = checker.faults(list(enumerate(model.faults or [])), load, target)
    aborts = tuple(a for a in (checker.abort(i, a) for i, a in enumerate(model.abort_when or []))
                   if a is not None)
    hypotheses = tuple(h for h in (checker.hypothesis(i, t)
                                   for i, t in enumerate(model.hypotheses or [])) if h is not None)
    allow = checker.allow(model.allow, target, faults)
    problems.raise_if_any()
    return Runbook(name=model.name, description=model.description.strip(), source=source,
                   seed=1 if model.seed is None else model.seed, target=target,
                   steady_state=steady, load=load, faults=faults, abort_when=aborts,
                   hypotheses=hypotheses, allow=allow)


def _valid(model: type[M], raw: object) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _check_valid_parts(value: object, checker: _Checker) -> None:
    """When the file as a whole does not validate, still run the checks beyond the model on
    the sections that do (a misspelt fault kind is reported with a missing unit elsewhere).
    Their own validation errors are already in ``problems``."""
    if not isinstance(value, dict):
        return
    problems = checker.problems
    raw_target = value.get("target")
    target_model = _valid(TargetModel, raw_target) if raw_target is not None else None
    target_ok = raw_target is None or target_model is not None
    target = checker.target(target_model)
    load_model = _valid(LoadModel, value.get("load"))
    load = checker.load(load_model) if load_model is not None else None
    raw_load = value.get("load")
    if load is None and isinstance(raw_load, dict) and isinstance(raw_load.get("profile"), str):
        checker.profile(raw_load["profile"])
    if isinstance(value.get("steady_state"), dict):
        steady = _valid(SteadyStateModel, value["steady_state"])
        if steady is not None:
            checker.steady(steady)
    raw_faults = value.get("faults")
    if isinstance(raw_faults, list):
        models = [_valid(FaultModel, r) for r in raw_faults]
        if target_ok:
            checker.faults([(i, f) for i, f in enumerate(models) if f is not None], load, target)
        for index, (raw, model) in enumerate(zip(raw_faults, models, strict=True)):
            kind = raw.get("kind") if isinstance(raw, dict) else None
            if model is None and isinstance(kind, str):  # at least the kind, if it can be read
                try:
                    fault_class(kind, checker.kind_error(("faults", index)))
                except InvalidInput as exc:
                    problems.add_error(exc)
    for key, check in (("abort_when", checker.abort), ("hypotheses", checker.hypothesis)):
        items = value.get(key)
        for index, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, str):
                check(index, item)
            elif key == "abort_when" and (abort := _valid(AbortModel, item)) is not None:
                checker.abort(index, abort)


class _Checker:
    """The checks beyond the model; each adds its problems and answers what it could build."""

    def __init__(self, problems: Problems, text: str | None = None,
                 base_dir: Path | None = None) -> None:
        self.problems = problems
        self.lines = problems.lines
        self.source = problems.source
        self.text = text
        self.base_dir = base_dir if base_dir is not None else Path.cwd()

    def line(self, *loc: str | int) -> int | None:
        return self.lines.get(loc)

    # -- target ------------------------------------------------------------------------------
    def target(self, model: TargetModel | None) -> TargetSpec:
        if model is None:
            return TargetSpec()
        own = model.gateway_url is not None or model.ready_file is not None
        if model.reference is not None and own:
            self.problems.add(("target", "reference"),
                              "a runbook drills either the reference stack or your own",
                              "target.reference, or target.gateway_url / target.ready_file")
        providers = {name: ProviderAddress(url=a.url.rstrip("/") if a and a.url else None,
                                           admin_url=a.admin_url.rstrip("/")
                                           if a and a.admin_url else None)
                     for name, a in (model.providers or {}).items()}
        processes = {name: ProcessRef(pid=p.pid, pidfile=p.pidfile, cmd=p.cmd, restart=p.restart)
                     for name, p in (model.processes or {}).items()}
        return TargetSpec(
            reference=not own,
            reference_options=model.reference if isinstance(model.reference, dict) else {},
            gateway_url=model.gateway_url.rstrip("/") if model.gateway_url else None,
            ready_file=model.ready_file, providers=providers,
            containers=tuple(model.containers or ()), processes=processes,
            proxy_api=model.proxy_api.rstrip("/") if model.proxy_api else None)

    # -- load, steady state ----------------------------------------------------------------
    def load(self, model: LoadModel) -> LoadSpec:
        from paystab.loadtest.profiles import PROFILES, make_profile

        profile = model.profile
        duration_s = model.duration
        min_duration_s = min(MIN_DURATION_DEFAULT_S, duration_s) if model.min_duration is None \
            else model.min_duration
        if min_duration_s > duration_s:
            self.problems.add(("load", "min_duration"),
                              f"{min_duration_s:g}s is longer than the load itself "
                              f"({duration_s:g}s)", "min_duration <= duration")
        spec = LoadSpec(profile=profile, rate_per_s=model.rate, duration_s=duration_s,
                        users=model.users, params={}, min_duration_s=min_duration_s)
        if not self.profile(profile):
            return spec
        units = {p.name: p.unit for p in PROFILES[profile].params}
        params: dict[str, float] = {}
        ok = True
        for key, raw in (model.params or {}).items():
            where = ("load", "params", key)
            if key not in units:
                self.problems.add(where, f"profile '{profile}' has no parameter '{key}'"
                                  f"{did_you_mean(key, units)}",
                                  "one of " + (", ".join(sorted(units)) or "(none)"))
                ok = False
            elif isinstance(raw, str):
                try:
                    if units[key] != "s":
                        raise ValueError(f"got a string ({raw!r})")
                    params[key] = parse_duration_s(raw)
                except ValueError as exc:
                    self.problems.add(where, str(exc), "a number" if units[key] != "s"
                                      else "a duration with a unit, e.g. 500ms, 30s, 2m")
                    ok = False
            else:
                params[key] = float(raw)
        if ok and params:
            try:
                make_profile(profile, model.rate, duration_s, params)
            except InvalidInput as exc:
                field = exc.field if exc.field in params else None
                self.problems.add(("load", "params", field) if field else ("load", "params"),
                                  exc.problem, exc.expected)
        return LoadSpec(profile=profile, rate_per_s=model.rate, duration_s=duration_s,
                        users=model.users, params=params, min_duration_s=min_duration_s,
                        checkout=self.checkout(model))

    def checkout(self, model: LoadModel) -> LoadCheckout | None:
        return check_checkout(model, self.problems, self.text, self.base_dir)

    def profile(self, name: str) -> bool:
        from paystab.loadtest.profiles import PROFILES

        if name not in PROFILES:
            self.problems.add(("load", "profile"),
                              f"unknown profile '{name}'{did_you_mean(name, PROFILES)}",
                              "one of " + ", ".join(sorted(PROFILES)))
        return name in PROFILES

    def steady(self, model: SteadyStateModel | None) -> SteadyState:
        if model is None:
            return SteadyState()
        probes: list[Probe] = []
        for index, p in enumerate(model.probes or []):
            where: Loc = ("steady_state", "probes", index)
            if p.name in {q.name for q in probes}:
                self.problems.add((*where, "name"), f"duplicate probe name '{p.name}'")
            if p.metric is not None and p.metric not in WINDOW_METRICS:
                self.problems.add((*where, "metric"), f"unknown value '{p.metric}'"
                                  f"{did_you_mean(p.metric, WINDOW_METRICS)}",
                                  "one of " + ", ".join(sorted(WINDOW_METRICS)))
            when: tuple[str, ...] = ("before", "after")
            if isinstance(p.when, str):
                when = ("before", "after") if p.when == "both" else (p.when,)
            elif p.when is not None:
                when = tuple(p.when)
            probes.append(Probe(name=p.name, when=when, http=p.http,
                                expect_status=p.expect_status, timeout_s=p.timeout,
                                metric=p.metric, min=p.min, max=p.max, tolerance=p.tolerance,
                                line=self.line(*where)))
        return SteadyState(window_s=model.window, probes=tuple(probes))

    # -- faults --------------------------------------------------------------------------------
    def faults(self, models: list[tuple[int, FaultModel]], load: LoadSpec | None,
               target: TargetSpec) -> tuple[FaultStep, ...]:
        """``load`` None: the load did not validate, so the schedule is not checked."""
        steps: list[FaultStep] = []
        seen: set[str] = set()
        for index, f in models:
            where: Loc = ("faults", index)
            name = f.name or f"fault-{index + 1}"
            if name in seen:
                self.problems.add((*where, "name") if f.name else where,
                                  f"duplicate fault name '{name}'",
                                  "a name unique within the runbook")
            seen.add(name)
            try:
                spec = build_spec(name, f.kind, f.target, f.params or {},
                                  kind_error=self.kind_error(where),
                                  target_error=self._target_error(where),
                                  param_error=self._param_error(where, f.params))
                self._check_names(spec.kind, spec.target, (*where, "target"), target)
            except InvalidInput as exc:
                self.problems.add_error(exc)
                continue
            if load is None:
                continue
            if f.at >= load.duration_s:
                self.problems.add((*where, "at"), f"starts at {f.at:g}s, after the load ends",
                                  f"< load.duration ({load.duration_s:g}s)")
            elif f.duration is not None and f.at + f.duration > load.duration_s + 1e-9:
                self.problems.add((*where, "duration"),
                                  f"ends at {f.at + f.duration:g}s, after the load ends",
                                  f"at + duration <= load.duration ({load.duration_s:g}s)")
            steps.append(FaultStep(spec, f.at, f.duration, line=self.line(*where),
                                   target_line=self.line(*where, "target")))
        return tuple(steps)

    def _error(self, loc: Loc, problem: str, expected: str | None) -> InvalidInput:
        return InvalidInput(problem, source=self.source, line=self.line(*loc) or
                            self.line(*loc[:-1]), field=loc_text(loc), expected=expected)

    def kind_error(self, where: Loc) -> Callable[[str, str], InvalidInput]:
        def make(problem: str, expected: str) -> InvalidInput:
            return self._error((*where, "kind"), problem, expected)
        return make

    def _target_error(self, where: Loc) -> Callable[[ValueError], InvalidInput]:
        def make(exc: ValueError) -> InvalidInput:
            return invalid_target(exc, self.source, self.line(*where, "target"),
                                  loc_text((*where, "target")))
        return make

    def _param_error(self, where: Loc, params: dict[str, object] | None) -> ErrorFactory:
        def make(name: str | None, problem: str, expected: str | None) -> InvalidInput:
            if name and params is not None and name in params:
                return self._error((*where, "params", name), problem, expected)
            if params is not None:
                return self._error((*where, "params"), problem, expected)
            return self._error(where, problem, expected)
        return make

    def _check_names(self, kind: str, target_text: str, loc: Loc, target: TargetSpec) -> None:
        """A provider or process name must exist in the runbook's target."""
        identity = fault_class(kind).check_target(target_text)
        prefix, _, name = identity.partition(":")
        if "@" in target_text:
            return  # an explicit address: the running service will say
        known = {"provider": _known_providers, "process": _known_processes}.get(prefix)
        names = known(target) if known else None
        if names is not None and name not in names:
            raise self._error(loc, f"unknown {prefix} '{name}'{did_you_mean(name, names)}",
                              "one of " + ", ".join(sorted(names)))

    # -- aborts, hypotheses, allow ---------------------------------------------------------
    def abort(self, index: int, item: str | AbortModel) -> AbortCondition | None:
        where: Loc = ("abort_when", index)
        text, window_s = (item, 30.0) if isinstance(item, str) else (item.when, item.window)
        if not isinstance(item, str):
            where = (*where, "when")
        found = match_comparison(text)
        tail = _ABORT_TAIL.fullmatch(text, found.end) if found is not None else None
        if (found is None or tail is None or found.op not in ORDERING or found.number is None
                or found.unit not in (None, "%")):
            self.problems.add(where, f"cannot read {text!r}", "METRIC OP NUMBER [over DURATION],"
                              " e.g. availability < 0.9 over 30s")
            return None
        metric, op, over = found.name, found.op, tail[1]
        if metric not in WINDOW_METRICS:
            self.problems.add(where, f"unknown metric '{metric}'"
                              f"{did_you_mean(metric, WINDOW_METRICS)}",
                              "one of " + ", ".join(WINDOW_METRICS))
            return None
        if over is not None:
            try:
                window_s = parse_duration_s(over)
            except ValueError as exc:
                self.problems.add(where, str(exc), "a duration with a unit, e.g. 30s")
                return None
            if window_s < 1.0:
                self.problems.add(where, f"{window_s:g}s is too small", ">= 1s")
                return None
        threshold = found.ratio()
        return AbortCondition(" ".join(text.split()), metric, op, threshold, window_s,
                              self.line("abort_when", index))

    def hypothesis(self, index: int, text: str) -> Hypothesis | None:
        try:
            return Hypothesis.parse(text, self.line("hypotheses", index))
        except HypothesisError as exc:
            self.problems.add(("hypotheses", index), exc.problem, exc.expected)
            return None

    def allow(self, entries: list[str] | None, target: TargetSpec,
              faults: tuple[FaultStep, ...]) -> AllowList:
        identities = [(fault_class(s.spec.kind).check_target(s.spec.target), s) for s in faults]
        if entries is None:
            if not target.reference:
                self.problems.add((), "a runbook against your own stack must say what it may "
                                  "touch", "allow: [HOST:PORT, provider:NAME, container:NAME, "
                                  "pid:N, ...]")
            # The reference stack is paystab's own: the faults as written are the blast radius.
            return AllowList(tuple(dict.fromkeys(identity for identity, _ in identities)))
        try:
            allow = AllowList.parse(entries, source=self.source, field="allow",
                                    lines=[self.line("allow", i) for i in range(len(entries))])
        except InvalidInput as exc:
            self.problems.add_error(exc)
            return AllowList(())
        for identity, step in identities:
            if not allow.permits_name(identity):
                self.problems.add(("faults", faults.index(step), "target"),
                                  f"target '{step.spec.target}' ({identity}) is outside the "
                                  "blast radius",
                                  "a target listed in allow: " + ", ".join(allow.entries))
        return allow


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
