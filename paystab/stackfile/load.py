"""Reading a stack file: YAML 1.2, ``${env:…}`` filled, the model, every problem at once.

:func:`load_stack` reads the file with lines (:mod:`paystab.config.yaml12`), fills
``${env:NAME}`` in every string (an unset variable is a problem at its field), validates
the :class:`~paystab.stackfile.model.StackFile` model, then checks what the model cannot
alone: the inline flow's templates and JSON paths, the flow file, the locustfile, the
``${simulators.…}`` references, duplicate simulator names, the detector options. Every
problem of the file is raised together as one
:class:`~paystab.config.problems.ConfigInvalid` (exit 2), first line first, each as
``FILE:LINE: field: problem (expected …)``. Relative paths become relative to the file.

A paystab ready file (JSON, what ``paystab up --ready-file`` writes) given where a stack
file is expected is read as one (:func:`~paystab.stackfile.reference.from_ready_file`):
one path, not two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paystab.config.problems import Problems, did_you_mean
from paystab.config.yaml12 import Loc, load_with_lines, loc_text
from paystab.exceptions import InvalidInput
from paystab.stackfile.model import StackFile
from paystab.stackfile.templates import SIMULATOR_FIELDS, TemplateProblem, fill_env, simulator_refs

# Where ${simulators.…} may appear: the values read after the simulators start.
_LATE = (("service", "env"), ("service", "command"))


@dataclass(frozen=True)
class LoadedStack:
    """A checked stack file and where it came from (relative paths are resolved already)."""

    spec: StackFile
    path: Path  # the file as given (a ready file when it was read as a stack file)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def source(self) -> str:
        return str(self.path)


def _is_late(loc: Loc) -> bool:
    return any(loc[:len(prefix)] == prefix for prefix in _LATE)


def _fill(value: Any, loc: Loc, problems: Problems, environ: Mapping[str, str],
          unfilled: set[Loc]) -> Any:
    """``value`` with ``${env:…}`` filled in every string; problems at their field, and the
    fields left unfilled in ``unfilled`` (what the model then says about them is noise)."""
    if isinstance(value, dict):
        return {k: _fill(v, (*loc, k), problems, environ, unfilled) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, (*loc, i), problems, environ, unfilled) for i, v in enumerate(value)]
    if isinstance(value, str) and "$" in value:
        late = _is_late(loc)
        try:
            filled = fill_env(value, environ, final=not late)
        except TemplateProblem as exc:
            problems.add(loc, exc.problem, exc.expected)
            unfilled.add(loc)
            return value
        if not late and simulator_refs(value):
            problems.add(loc, "${simulators.…} is only filled in service.env and service.command",
                         "a literal value here, or the template moved to service.env")
        return filled
    return value


def _check_refs(value: Any, names: list[str], problems: Problems) -> None:
    service = value.get("service") if isinstance(value, dict) else None
    if not isinstance(service, dict):
        return
    places: list[tuple[Loc, Any]] = []
    env = service.get("env")
    if isinstance(env, dict):
        places += [(("service", "env", k), v) for k, v in env.items()]
    command = service.get("command")
    if isinstance(command, list):
        places += [(("service", "command", i), v) for i, v in enumerate(command)]
    for loc, text in places:
        if not isinstance(text, str):
            continue
        for name, field in simulator_refs(text):
            if name not in names:
                known = ", ".join(dict.fromkeys(names)) or "none declared"
                problems.add(loc, f"no simulator named '{name}'{did_you_mean(name, names)}",
                             f"a name under simulators: ({known})")
            elif field not in SIMULATOR_FIELDS:
                problems.add(loc, f"a simulator has no '{field}'"
                             f"{did_you_mean(field, SIMULATOR_FIELDS)}",
                             "one of " + ", ".join(SIMULATOR_FIELDS))


def _simulator_names(value: Any, problems: Problems) -> list[str]:
    sims = value.get("simulators") if isinstance(value, dict) else None
    names: list[str] = []
    for i, sim in enumerate(sims if isinstance(sims, list) else []):
        name = sim.get("name") if isinstance(sim, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.add(("simulators", i, "name"), f"simulator '{name}' is listed twice",
                             "each name once")
            names.append(name)
    return names


def _check_detectors(value: Any, problems: Problems) -> None:
    telemetry = value.get("telemetry") if isinstance(value, dict) else None
    detectors = telemetry.get("detectors") if isinstance(telemetry, dict) else None
    if not isinstance(detectors, dict):
        return
    from paystab.anomaly import base, streaming  # noqa: F401 (registers "streaming")

    known = base.names()
    for name, options in detectors.items():
        loc: Loc = ("telemetry", "detectors", name)
        if name not in known:
            problems.add(loc, f"unknown detector '{name}'{did_you_mean(name, known)}",
                         "one of " + ", ".join(known))
        elif isinstance(options, dict):
            try:
                base.create(name, options)
            except InvalidInput as exc:
                problems.add((*loc, exc.field) if exc.field else loc, exc.problem, exc.expected)


def _check_flow(text: str, source: str, problems: Problems) -> None:
    """The inline flow's templates and JSON paths (the flow module's own checks)."""
    from paystab.loadtest.flow import check_flow, flow_from_json
    from paystab.yamlsrc import load_yaml_text

    root = load_yaml_text(text, source)
    node = root.field("checkout").field("flow")
    try:
        check_flow(flow_from_json(node.value), node)
    except InvalidInput as exc:
        problems.add_error(exc)
    except ValidationError:
        pass  # already reported through the model


def _resolve(path: str, base_dir: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir / p))


def _check_files(spec: StackFile, base_dir: Path, problems: Problems) -> StackFile:
    """Relative paths made absolute; the flow file read, the locustfile found."""
    checkout = spec.checkout
    updates: dict[str, Any] = {}
    if checkout.flow_file is not None:
        path = _resolve(checkout.flow_file, base_dir)
        try:
            from paystab.loadtest.flow import load_flow

            load_flow(path)
        except InvalidInput as exc:
            if exc.source == path and exc.line is None:
                problems.add(("checkout", "flow_file"), f"{exc.problem}: {path}", exc.expected)
            else:
                problems.add_error(exc)
        updates["checkout"] = checkout.model_copy(update={"flow_file": path})
    if checkout.locustfile is not None:
        path = _resolve(checkout.locustfile, base_dir)
        if not Path(path).is_file():
            problems.add(("checkout", "locustfile"), f"file not found: {path}",
                         "a Python file with Locust User classes")
        elif not path.endswith(".py"):
            problems.add(("checkout", "locustfile"), f"{path} is not a .py file",
                         "a Python file with Locust User classes")
        updates["checkout"] = checkout.model_copy(update={"locustfile": path})
    if spec.ready_file is not None:
        updates["ready_file"] = _resolve(spec.ready_file, base_dir)
        if not Path(updates["ready_file"]).is_file():
            problems.add(("ready_file",), f"file not found: {updates['ready_file']}",
                         "the ready file `paystab up --ready-file` wrote")
    return spec.model_copy(update=updates) if updates else spec


def _cross_checks(spec: StackFile, problems: Problems) -> None:
    if spec.failover is not None and spec.failover.actuators and spec.telemetry is None:
        problems.add(("failover", "actuators"), "actuators but nothing detects",
                     "a telemetry: block with sources")
    if spec.ready_file is not None and spec.service is not None:
        problems.add(("service",), "a stack from a ready file is already running",
                     "ready_file or service, not both")
    if spec.ledgers is not None and spec.ready_file is None and not spec.simulators:
        from paystab.ledgers.spec import SimulatorLedgers

        for i, psp in enumerate(spec.ledgers.psp):
            if isinstance(psp, SimulatorLedgers):
                problems.add(("ledgers", "psp", i), "reads the simulators' ledgers, but the "
                             "file declares no simulators", "a simulators: list, or a "
                             "settlement report")
    if spec.checkout.kind in ("flow", "flow_file") and spec.checkout.base_url.startswith("https:"):
        problems.add(("checkout", "base_url"), "a checkout flow is sent over plain HTTP for now",
                     "an http:// base_url (or a locustfile, whose client speaks HTTPS)")
    detectors = spec.telemetry.detectors if spec.telemetry is not None else {}
    for i, rule in enumerate(spec.failover.when or [] if spec.failover is not None else []):
        for name in rule:
            if spec.telemetry is not None and name not in detectors and name != "alertmanager":
                problems.add(("failover", "when", i), f"detector '{name}' is not configured"
                             f"{did_you_mean(name, detectors)}",
                             "a name under telemetry.detectors (" + ", ".join(detectors) + ")")
    for i, sim in enumerate(spec.simulators):
        if sim.tls != spec.simulators[0].tls:
            problems.add(("simulators", i, "tls"), f"tls: {str(sim.tls).lower()} here but "
                         f"{str(spec.simulators[0].tls).lower()} for {spec.simulators[0].name}",
                         "the same tls for every simulator (they run in one process)")
            break
    sim_names = {s.name for s in spec.simulators}
    if spec.ledgers is not None:
        from paystab.ledgers.spec import SimulatorLedgers

        for i, psp in enumerate(spec.ledgers.psp):
            for name in (psp.only or []) if isinstance(psp, SimulatorLedgers) else []:
                if sim_names and name not in sim_names:
                    problems.add(("ledgers", "psp", i, "only"), f"no simulator named '{name}'"
                                 f"{did_you_mean(name, sim_names)}",
                                 "a name under simulators:")


def _reword_kinds(exc: ValidationError, problems: Problems) -> None:
    """pydantic's "Input tag 'x' found using 'kind' does not match …" as paystab says it."""
    tags = [e.get("ctx") or {} for e in exc.errors() if e["type"] == "union_tag_invalid"]
    for ctx in tags:
        tag = str(ctx.get("tag"))
        choices = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        for i, found in enumerate(problems.found):
            if found.problem.startswith(f"Input tag '{tag}'"):
                problems.found[i] = InvalidInput(
                    f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} '{tag}'"
                    f"{did_you_mean(tag, choices)}", source=found.source, line=found.line,
                    field=found.field, expected="one of " + ", ".join(choices))


# The flow model's fields written under another name in the file (``json:``, ``in:``, ``while:``).
_FLOW_ALIASES = {"body": "json", "in_": "in", "while_": "while"}


def _flow_aliases(problems: Problems) -> None:
    """Unknown keys in a flow, answered with the names a user writes (``json``, not ``body``)."""
    for i, found in enumerate(problems.found):
        if not (found.field or "").startswith("checkout.flow") or not found.expected \
                or not found.problem.startswith("unknown field '"):
            continue
        names = [_FLOW_ALIASES.get(n, n) for n in found.expected.removeprefix("one of ").split(", ")]
        key = found.problem.split("'")[1]
        problems.found[i] = InvalidInput(
            f"unknown field '{key}'{did_you_mean(key, names)}", source=found.source,
            line=found.line, field=found.field, expected="one of " + ", ".join(sorted(names)))


def parse_stack(text: str, source: str, base_dir: Path,
                environ: Mapping[str, str] | None = None) -> StackFile:
    """Check a stack file's text; every problem is raised at once (ConfigInvalid, exit 2)."""
    import os

    value, lines = load_with_lines(text, source)
    problems = Problems(source, lines)
    if not isinstance(value, dict):
        problems.add((), "a stack file is a mapping", "keys such as name, checkout, simulators")
        problems.raise_if_any()
    unfilled: set[Loc] = set()
    value = _fill(value, (), problems, os.environ if environ is None else environ, unfilled)
    template_problems = list(problems.found)
    names = _simulator_names(value, problems)
    _check_refs(value, names, problems)
    _check_detectors(value, problems)
    spec: StackFile | None = None
    try:
        spec = StackFile.model_validate(value)
    except ValidationError as exc:
        problems.add_validation(exc, StackFile)
        _reword_kinds(exc, problems)
        _flow_aliases(problems)
    checkout = value.get("checkout")
    if isinstance(checkout, dict) and isinstance(checkout.get("flow"), dict):
        _check_flow(text, source, problems)
    if spec is not None:
        spec = _check_files(spec, base_dir, problems)
        _cross_checks(spec, problems)
    if unfilled:  # one problem per unset variable, not one more per check it then fails
        fields = {loc_text(loc) for loc in unfilled}
        problems.found = [p for p in problems.found
                          if p in template_problems or p.field not in fields]
    problems.raise_if_any()
    assert spec is not None
    return spec


def load_stack(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedStack:
    """Read a stack file (or a paystab ready file, read as one) and check all of it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("file not found", source=str(p),
                           hint="`paystab init` writes a starter stack file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the file: {exc}", source=str(p)) from None
    if text.lstrip().startswith("{"):
        from paystab.stackfile.reference import from_ready_file

        return LoadedStack(from_ready_file(p), p)
    return LoadedStack(parse_stack(text, str(p), p.resolve().parent, environ), p)
