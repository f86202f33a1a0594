"""The JSON renderer: ``report.json``, schema ``paystab.report/v1``.

Exactly :meth:`Report.to_json` with two guarantees for the machines that read it: the
output is strict JSON (a NaN or infinity, which Python's ``json`` would write as a bare
``NaN``, becomes ``null``) and it validates against schema v1 — a report that does not is
a bug in whoever filled it, so rendering raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import json
import math
from typing import Any

from paystab.report.base import Renderer, register
from paystab.report.model import Report
from paystab.report.schema import schema_problems


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


@register
class JsonRenderer(Renderer):
    name = "json"
    suffix = ".json"

    def render(self, report: Report) -> str:
        data = strict(report.to_json())
        problems = schema_problems(data)
        if problems:
            field, text = problems[0]
            raise ValueError(f"report does not match schema v1: {field}: {text}")
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
