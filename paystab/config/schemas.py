"""JSON Schemas of every config file kind, generated from the models and shipped.

``paystab/schemas/<kind>.schema.json`` (the watch config's: ``paystab/watch/``) are
committed and packaged so an editor (the YAML
language server: a ``# yaml-language-server: $schema=…`` first line, or VS Code's
``yaml.schemas`` setting) checks a runbook or stack config as it is typed; a test keeps them
equal to what the models generate. ``paystab schema export DIR`` writes them anywhere.
The schemas describe the file as written (``30s``, ``50%``, ``100/s``), not the numbers the
loaders turn them into.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from paystab.config.types import DURATION_PATTERN
from paystab.exceptions import InvalidInput

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _runbook() -> type[BaseModel]:
    from paystab.chaos.runbook_model import RunbookModel

    return RunbookModel


def _stack_config() -> type[BaseModel]:
    from paystab.stack.config import StackConfigModel

    return StackConfigModel


def _mix() -> type[BaseModel]:
    from paystab.loadtest.mix_file import MixModel

    return MixModel


def _alert_spec() -> type[BaseModel]:
    from paystab.alerting.spec_file import AlertSpecModel

    return AlertSpecModel


def _watch() -> type[BaseModel]:
    from paystab.watch.config import WatchConfig

    return WatchConfig


def _stack() -> type[BaseModel]:
    from paystab.stackfile.model import StackFile

    return StackFile


def _proxy_config() -> type[BaseModel]:
    from paystab.chaos.proxy_server.config_file import ProxyConfigModel

    return ProxyConfigModel


def _ensemble() -> type[BaseModel]:
    from paystab.anomaly.ensemble_config import EnsembleConfigModel

    return EnsembleConfigModel


# kind -> (title, model); the kind names the file: runbook.schema.json …
KINDS: dict[str, tuple[str, Callable[[], type[BaseModel]]]] = {
    "runbook": ("paystab runbook", _runbook),
    "stack-config": ("paystab up --config", _stack_config),
    "mix": ("paystab load --mix", _mix),
    "alert-spec": ("paystab rules/dashboards export --spec", _alert_spec),
    "watch": ("paystab watch config", _watch),
    "proxy-config": ("paystab chaos proxy --config", _proxy_config),
    "ensemble": ("paystab detector ensemble policy", _ensemble),
    "stack": ("paystab stack file", _stack),
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one file kind, as the model generates it now."""
    if kind not in KINDS:
        from paystab.config.problems import did_you_mean

        raise InvalidInput(f"unknown config kind '{kind}'{did_you_mean(kind, KINDS)}",
                           source="schema", expected="one of " + ", ".join(KINDS))
    title, model = KINDS[kind]
    schema = model().model_json_schema()
    _written_defaults(schema)
    schema["$schema"] = DIALECT
    schema["title"] = title
    return schema


def _written_defaults(node: Any) -> None:
    """A duration's default as a user writes it (``30s``), not the seconds it loads as: an
    editor offers the default, and a bare ``30`` would not validate."""
    if isinstance(node, dict):
        default = node.get("default")
        if node.get("pattern") == DURATION_PATTERN and isinstance(default, int | float) \
                and not isinstance(default, bool):
            node["default"] = f"{default:g}s"
        for child in node.values():
            _written_defaults(child)
    elif isinstance(node, list):
        for child in node:
            _written_defaults(child)


def schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_path(kind: str) -> Path:
    """Where the shipped schema of ``kind`` is (the watch config's ships with watch)."""
    if kind == "watch":
        from paystab.watch.config import SCHEMA_PATH

        return SCHEMA_PATH
    return SCHEMA_DIR / f"{kind}.schema.json"


def export(directory: Path) -> list[Path]:
    """Write every schema to ``directory`` (created if missing); answer the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / f"{kind}.schema.json"
        path.write_text(schema_text(kind), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m paystab.config.schemas: refresh the shipped schemas
    for shipped_kind in KINDS:
        shipped = schema_path(shipped_kind)
        shipped.write_text(schema_text(shipped_kind), encoding="utf-8")
        print(shipped)
