"""Schema v1 of the drill report, a validator for it, and loading a saved report.

:data:`SCHEMA_V1` is ``shared/design/report.schema.json`` as Python data, so it ships in
the wheel with the code (tests check the two are identical). :func:`schema_problems`
checks a document against it with the handful of JSON Schema keywords the schema uses
(``type``, ``required``, ``properties``, ``items``, ``enum``, ``const``, ``minimum``,
``maximum``, ``minLength``) and names each problem by its field path, such as
``faults[1].cleared_at_s``; the tests cross-check it with the ``jsonschema`` package,
which is a test dependency only. :func:`load_report` turns a file into a
:class:`~paystab.report.model.Report` or raises :class:`InvalidInput` naming the file,
line (for JSON syntax errors) and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paystab.exceptions import InvalidInput
from paystab.report.model import SCHEMA, Report


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _obj(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, **extra}


def _array_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _props(**kinds: Any) -> dict[str, Any]:
    return {name: kind if isinstance(kind, dict) else {"type": kind}
            for name, kind in kinds.items()}


_COUNT = {"type": "integer", "minimum": 0}
_COUNT_OR_NULL = _nullable("integer", minimum=0)
_TRAFFIC = ["requests", "approved", "declined", "failed", "availability", "p50_ms", "p95_ms",
            "p99_ms"]
_FAULT = ["id", "kind", "target", "params", "injected_at_s", "cleared_at_s"]
_DETECTION = ["provider", "detector", "at_s", "reason"]
_INCIDENT = ["fault_id", "ttd_s", "ttm_s", "ttr_s"]
_RECON = ["double_charges", "lost_payments", "orphans", "voided_late_successes"]
_TOP = ["schema", "runbook", "verdict", "seed", "started_at", "duration_s", "traffic",
        "faults", "detections", "failovers", "incidents", "mttr_s", "reconciliation",
        "hypotheses"]

SCHEMA_V1: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA,
    "title": "paystab drill report, schema v1",
    "description": "What `paystab drill` writes as report.json. Times named *_s are seconds "
                   "from the drill start unless noted. Extra fields are allowed; these must "
                   "be present.",
    **_obj(_TOP, {
        "schema": {"const": SCHEMA},
        "runbook": {"type": "string", "minLength": 1},
        "verdict": {"enum": ["pass", "fail", "aborted", "inconclusive"]},
        "seed": {"type": "integer"},
        "started_at": {"type": "string", "description": "ISO 8601 with time zone"},
        "duration_s": {"type": "number", "minimum": 0},
        "traffic": _obj(_TRAFFIC, _props(
            requests=_COUNT, approved=_COUNT, declined=_COUNT, failed=_COUNT,
            availability=_nullable(
                "number", minimum=0, maximum=1,
                description="(approved + declined) / requests; pending counts as answered"),
            p50_ms=_nullable("number"), p95_ms=_nullable("number"), p99_ms=_nullable("number"),
        )),
        "faults": _array_of(_obj(_FAULT, _props(
            id="string", kind="string", target="string", params="object",
            injected_at_s="number", cleared_at_s=_nullable("number")))),
        "detections": _array_of(_obj(_DETECTION, _props(
            provider="string", detector="string", at_s="number", reason="string"))),
        "failovers": _array_of(_obj(["provider", "action", "at_s"], _props(
            provider="string", action={"enum": ["drain", "restore", "degrade"]},
            at_s="number"))),
        "incidents": _array_of(_obj(_INCIDENT, _props(
            fault_id="string", ttd_s=_nullable("number"), ttm_s=_nullable("number"),
            ttr_s=_nullable("number")))),
        "mttr_s": _nullable("number"),
        "reconciliation": _obj(_RECON, {name: _COUNT_OR_NULL for name in _RECON}, description=(
            "Counts from reconciling the gateway ledger with every provider ledger. null where "
            "the target offers no ledgers to reconcile (a user's stack without a "
            "reconciliation hook); the reference stack always reconciles.")),
        "hypotheses": _array_of(_obj(["expr", "observed", "ok"], _props(
            expr="string", observed={},
            ok=_nullable("boolean",
                         description="null: not applicable (the stack does not provide the data)"),
            status={"enum": ["pass", "fail", "not_applicable"]}))),
        "false_failovers": _obj(["count", "events"], _props(
            count=_COUNT, grace_s="number",
            events=_array_of(_obj(["provider", "at_s"], _props(
                provider="string", at_s="number", detector="string", reason="string"))))),
        "inconclusive_reason": _nullable("string"),
    }),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "number": (int, float), "integer": (int, float), "null": (type(None),),
}


def _is(kind: str, value: Any) -> bool:
    if isinstance(value, bool) and kind in ("number", "integer"):
        return False  # JSON true is not a number, although Python's bool is an int
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[kind])


def _check(value: Any, schema: dict[str, Any], path: str, out: list[tuple[str, str]]) -> None:
    def problem(text: str) -> None:
        out.append((path or "(top level)", text))

    if "const" in schema and value != schema["const"]:
        return problem(f"must be {json.dumps(schema['const'])}")
    if "enum" in schema and value not in schema["enum"]:
        return problem("must be one of " + ", ".join(json.dumps(v) for v in schema["enum"]))
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(k, value) for k in kinds):
            return problem(f"must be {' or '.join(kinds)}, not {json.dumps(value)[:40]}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problem(f"must be ≥ {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problem(f"must be ≤ {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problem("must not be empty")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                out.append((f"{path}.{name}" if path else name, "is missing"))
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check(value[name], sub, f"{path}.{name}" if path else name, out)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", out)
    return None


def schema_problems(data: Any) -> list[tuple[str, str]]:
    """Every ``(field path, problem)`` of ``data`` against schema v1; empty when valid."""
    out: list[tuple[str, str]] = []
    _check(data, SCHEMA_V1, "", out)
    return out


def parse_report(data: Any, source: str) -> Report:
    """A schema-valid document → :class:`Report`; else InvalidInput naming the field."""
    problems = schema_problems(data)
    if problems:
        field, text = problems[0]
        also = "; ".join(f"{f}: {t}" for f, t in problems[1:4])
        more = f"; also {also}" if also else ""
        if len(problems) > 4:
            more += f" and {len(problems) - 4} more"
        raise InvalidInput(text + more, source=source, field=field,
                           expected=f"a {SCHEMA} drill report")
    try:
        return Report.from_json(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # The required fields were valid; an extra section (timeline, slo, …) was not.
        raise InvalidInput(f"an extra section cannot be read: {exc}", source=source,
                           expected=f"a {SCHEMA} drill report as paystab writes it") from None


def load_report(path: str | Path) -> Report:
    """Read a saved ``report.json``; InvalidInput on unreadable, bad JSON or bad schema."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("no such file", source=source, expected="a report.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read it: {exc}", source=source) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} (column {exc.colno})", source=source,
                           line=exc.lineno, expected="a JSON drill report") from None
    return parse_report(data, source)
