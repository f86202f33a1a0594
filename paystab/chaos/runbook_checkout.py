"""The checkout a runbook's load sends: ``load.flow``, ``load.flow_file``, ``load.locustfile``.

The checks beyond :class:`~paystab.chaos.runbook_model.LoadModel` for those three keys, for
the runbook loader (:mod:`paystab.chaos.runbook_load`): at most one of them (said at the
second key's line); the inline flow's templates and JSON paths (the flow module's own
checks, at the runbook's lines); the flow file read and checked (a mistake inside it at the
flow file's own line, naming the runbook line that points at it); the locustfile found and
a ``.py`` (imported only when the drill starts: importing Locust gevent-patches the
process). Paths are relative to the runbook. Each problem goes into the runbook's
:class:`~paystab.config.problems.Problems`, so they are reported with all the others.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from paystab.chaos.runbook import LoadCheckout
from paystab.chaos.runbook_model import CHECKOUT_KEYS, LoadModel
from paystab.config.problems import Problems, did_you_mean
from paystab.exceptions import InvalidInput

# The flow model's fields written under another name in the file (``json:``, ``in:``, ``while:``).
_FLOW_ALIASES = {"body": "json", "in_": "in", "while_": "while"}
_LOCUSTFILE_EXPECTED = "a Python file with Locust User classes, relative to the runbook"


def check_checkout(model: LoadModel, problems: Problems, text: str | None,
                   base_dir: Path) -> LoadCheckout | None:
    """The runbook's own checkout, or None (none given, or a problem was added)."""
    given = [key for key in CHECKOUT_KEYS if getattr(model, key) is not None]
    if len(given) > 1:
        problems.add(("load", given[1]), f"{given[0]} and {given[1]} both say what the load "
                     "sends", "at most one of flow, flow_file, locustfile")
        return None
    if model.flow is not None:
        _check_inline_flow(problems, text)
        return LoadCheckout("flow", flow=model.flow.model_dump(mode="json", by_alias=True),
                            line=problems.lines.get(("load", "flow")))
    if model.flow_file is not None:
        return _flow_file(_resolve(model.flow_file, base_dir), problems)
    if model.locustfile is not None:
        path = _resolve(model.locustfile, base_dir)
        if not Path(path).is_file():
            problems.add(("load", "locustfile"), f"file not found: {path}", _LOCUSTFILE_EXPECTED)
            return None
        if not path.endswith(".py"):
            problems.add(("load", "locustfile"), f"{path} is not a .py file",
                         _LOCUSTFILE_EXPECTED)
            return None
        return LoadCheckout("locustfile", locustfile=path,
                            line=problems.lines.get(("load", "locustfile")))
    return None


def _flow_file(path: str, problems: Problems) -> LoadCheckout | None:
    from paystab.loadtest.flow import load_flow

    named = problems.lines.get(("load", "flow_file"))
    try:
        flow = load_flow(path)
    except InvalidInput as exc:
        if exc.source == path and exc.line is None:  # unreadable: said where it is named
            problems.add(("load", "flow_file"), f"{exc.problem}: {path}", exc.expected or
                         "a flow YAML file (as for `paystab load --flow`), relative to the "
                         "runbook")
        else:  # a mistake inside the flow file: its own file:line:field
            problems.add_error(InvalidInput(
                f"{exc.problem} (the load.flow_file of {problems.source}"
                f"{f':{named}' if named else ''})", source=exc.source, line=exc.line,
                field=exc.field, expected=exc.expected))
        return None
    return LoadCheckout("flow_file", flow=flow.model_dump(mode="json", by_alias=True),
                        line=named)


def _resolve(path: str, base_dir: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir / p).absolute())


def _check_inline_flow(problems: Problems, text: str | None) -> None:
    """The flow module's own checks need the YAML nodes for their lines: the runbook's text
    is parsed once more (without the text, only the model's checks ran)."""
    if text is None:
        return
    from paystab.loadtest.flow import check_flow, flow_from_json
    from paystab.yamlsrc import load_yaml_text

    try:
        node = load_yaml_text(text, problems.source).field("load").field("flow")
        check_flow(flow_from_json(node.value), node)
    except InvalidInput as exc:
        problems.add_error(exc)
    except ValidationError:
        pass  # already reported through the model


def flow_key_names(problems: Problems) -> None:
    """Unknown keys in ``load.flow``, answered with the names a user writes (``json``)."""
    for i, found in enumerate(problems.found):
        if not (found.field or "").startswith("load.flow.") or not found.expected \
                or not found.problem.startswith("unknown field '"):
            continue
        names = [_FLOW_ALIASES.get(n, n) for n in found.expected.removeprefix("one of ").split(", ")]
        key = found.problem.split("'")[1]
        problems.found[i] = InvalidInput(
            f"unknown field '{key}'{did_you_mean(key, names)}", source=found.source,
            line=found.line, field=found.field, expected="one of " + ", ".join(sorted(names)))
