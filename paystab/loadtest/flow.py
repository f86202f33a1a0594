"""A checkout flow, as a user describes it in YAML: steps, templates, extraction, classification.

``paystab load --flow FILE`` reads a file whose ``flow:`` holds one :class:`Flow`. A flow is a
list of HTTP steps run in order for every arrival (create order → pay → poll status). Each
step's path, headers and JSON body are templates (``flow_template.py``) over the
per-checkout values and whatever earlier steps extracted from their answers by JSON path.
Each answer is classified by ordered rules on status code and JSON path into ``approved``,
``declined``, ``pending``, ``failed`` — or ``continue`` (go on to the next step). A step with
``poll`` is asked again while its answer classifies as one of ``poll.while``.

When no rule matches: a 2xx continues (or, on the last step, is ``approved``), a 402 is
``declined``, and anything else is ``failed`` — 5xx, 409, 425 and 429 retried with the same
values (the same idempotency key) under the plan's retry policy, as for paystab's own payment.

The model is pydantic (the one place that says which fields exist); the YAML node tree keeps
lines, so every error names file:line:field and exits 2. Without ``--flow`` the load sends
paystab's own payment (:data:`PAYSTAB_PAYMENT_FLOW` documents it as a flow; the engine keeps
its dedicated fast path for it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from paystab.exceptions import InvalidInput
from paystab.loadtest.flow_template import BUILTINS, JsonBody, TemplateError, Text, is_name, parse_path
from paystab.units import parse_duration_s
from paystab.yamlsrc import Node, load_yaml, load_yaml_text

Outcome = Literal["approved", "declined", "pending", "failed", "continue"]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    """``when`` an answer matches (every given test), it is ``outcome``."""

    status: int | list[int] | str | None = None  # 200, [200, 201] or "2xx"
    path: str | None = None  # a JSON path into the answer
    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in")
    exists: bool | None = None
    outcome: Outcome
    code: str | None = None  # a JSON path whose value is recorded as the answer's code

    @field_validator("status")
    @classmethod
    def _status(cls, value: int | list[int] | str | None) -> int | list[int] | str | None:
        if isinstance(value, str) and not (len(value) == 3 and value[0] in "12345"
                                           and value[1:] == "xx"):
            raise ValueError("a status is a code (200), a list of codes or a class like 2xx")
        return value


class Poll(_Strict):
    """Ask the same step again while its answer is one of ``while``."""

    while_: list[Outcome] = Field(default_factory=lambda: list[Outcome](["pending"]),
                                  alias="while")
    max_attempts: int = Field(default=10, ge=1, le=1000)
    interval: str | float = "200ms"  # between two asks

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | float) -> str | float:
        seconds = parse_duration_s(value)
        if not 0 <= seconds <= 60:
            raise ValueError("an interval between 0 and 60 s")
        return value

    @property
    def interval_s(self) -> float:
        return parse_duration_s(self.interval)


class Step(_Strict):
    name: str = Field(min_length=1, max_length=64)
    method: str = "POST"
    path: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, alias="json")
    extract: dict[str, str] = Field(default_factory=dict)
    classify: list[Rule] = Field(default_factory=list)
    poll: Poll | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        literal = re.sub(r"\{\{.*?\}\}", "", value)  # the holes are checked as templates
        if not value.startswith("/") or any(c in literal for c in " \r\n"):
            raise ValueError("a path starting with / without spaces, e.g. /api/checkout")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name) or name.lower() in ("host", "content-length"):
                raise ValueError(f"{name!r} cannot be a header here (a token; Host and "
                                 "Content-Length are set by paystab)")
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of {name} has a line break")
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError("one of " + ", ".join(METHODS))
        return value.upper()


class Flow(_Strict):
    name: str = "flow"
    values: dict[str, str | int | float] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=16)


class FlowFile(_Strict):
    flow: Flow


# paystab's own payment, written as a flow (documentation and tests; ``paystab load``
# without --flow sends it through the engine's dedicated path, which is this flow exactly).
PAYSTAB_PAYMENT_FLOW = {
    "name": "paystab-payment",
    "steps": [{
        "name": "pay", "method": "POST", "path": "/v1/payments",
        "headers": {"Idempotency-Key": "{{ key }}"},
        "json": {"amount": "{{ amount }}", "currency": "{{ currency }}",
                 "method": "{{ method }}", "country": "{{ country }}",
                 "customer_id": "{{ customer }}", "card": {"number": "{{ card }}"}},
        "classify": [
            {"status": "2xx", "path": "$.status", "equals": "approved", "outcome": "approved",
             "code": "$.code"},
            {"status": "2xx", "path": "$.status", "equals": "declined", "outcome": "declined",
             "code": "$.code"},
            {"status": "2xx", "path": "$.status", "equals": "pending", "outcome": "pending",
             "code": "$.code"},
        ],
    }],
}


def load_flow(path: str | Path) -> Flow:
    """Read and check a flow file; any mistake is InvalidInput naming file:line:field."""
    return parse_flow(load_yaml(path))


def load_flow_text(text: str, source: str = "<flow>") -> Flow:
    return parse_flow(load_yaml_text(text, source))


def parse_flow(root: Node) -> Flow:
    """A ``flow:`` document (or a runbook's ``load.flow`` node) → a checked :class:`Flow`."""
    wrapped = root.is_map() and root.has("flow")
    try:
        flow = (FlowFile.model_validate(root.value).flow if wrapped
                else Flow.model_validate(root.value))
    except ValidationError as exc:
        raise _first_error(root, exc, "flow" if wrapped else "") from None
    node = root.field("flow") if wrapped else root
    check_flow(flow, node)
    return flow


def flow_from_json(data: dict[str, Any]) -> Flow:
    """A flow already checked elsewhere (it travels inside the plan to worker processes)."""
    return Flow.model_validate(data)


def check_flow(flow: Flow, node: Node) -> None:
    """What a schema cannot say: every template name exists, every JSON path reads."""
    known = set(BUILTINS) | set(flow.values)
    for name in flow.values:
        if name in BUILTINS or not is_name(name):
            raise _at(node, ["values", name]).error(
                f"'{name}' cannot be a value name", "a plain name that is not one of "
                + ", ".join(sorted(BUILTINS)))
    for i, step in enumerate(flow.steps):
        where: list[str | int] = ["steps", i]
        _check_text(node, [*where, "path"], step.path, known)
        for header, value in step.headers.items():
            _check_text(node, [*where, "headers", header], value, known)
        if step.body is not None:
            try:
                names = JsonBody(step.body).names
            except TemplateError as exc:
                raise _at(node, [*where, "json"]).error(str(exc)) from None
            _check_names(node, [*where, "json"], names, known)
        for j, rule in enumerate(step.classify):
            for key in ("path", "code"):
                text = getattr(rule, key)
                if text is not None:
                    _check_path(node, [*where, "classify", j, key], text)
            if rule.path is None and (rule.equals is not None or rule.in_ is not None
                                      or rule.exists is not None):
                raise _at(node, [*where, "classify", j]).error(
                    "equals/in/exists test a JSON path, but the rule has no path",
                    "path: $.field beside the test")
        for name, text in step.extract.items():
            if not is_name(name) or name in BUILTINS:
                raise _at(node, [*where, "extract", name]).error(
                    f"'{name}' cannot be extracted into", "a plain name that is not a built-in")
            _check_path(node, [*where, "extract", name], text)
            known.add(name)


def _check_text(node: Node, where: list[str | int], text: str, known: set[str]) -> None:
    try:
        names = Text(text).names
    except TemplateError as exc:
        raise _at(node, where).error(str(exc)) from None
    _check_names(node, where, names, known)


def _check_names(node: Node, where: list[str | int], names: list[str], known: set[str]) -> None:
    for name in names:
        if name not in known:
            raise _at(node, where).error(
                f"unknown template value '{{{{ {name} }}}}'",
                "a built-in (" + ", ".join(sorted(BUILTINS)) + "), a name under values:, "
                "or one extracted by an earlier step")


def _check_path(node: Node, where: list[str | int], text: str) -> None:
    try:
        parse_path(text)
    except TemplateError as exc:
        raise _at(node, where).error(str(exc), "a JSON path like $.order.id") from None


def _at(node: Node, where: list[str | int]) -> Node:
    """The deepest node of ``where`` that exists (for its line and field path)."""
    current = node
    for step in where:
        child: Node | None = None
        if isinstance(step, int):
            try:
                elements = current.elements()
            except InvalidInput:
                break
            child = elements[step] if step < len(elements) else None
        elif current.is_map():
            child = current.get(step)
            if child is None and step == "in_":
                child = current.get("in")
        if child is None:
            break
        current = child
    return current


def _first_error(root: Node, exc: ValidationError, prefix: str) -> InvalidInput:
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    loc = [p for p in loc if p not in ("str", "int", "float", "bool", "list[int]")]
    where: list[str | int] = [p if isinstance(p, int) else str(p) for p in loc]
    node = _at(root, where)
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = f"unknown field '{where[-1]}'"
    elif error["type"] == "missing":
        message = f"missing required field '{where[-1]}'"
        return InvalidInput(message, source=node.source, line=node.line,
                            field=node.path or prefix or None)
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return node.error(message)
