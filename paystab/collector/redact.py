"""Card numbers never leave the process: find and mask anything that looks like a PAN.

A PAN here is 13–19 digits that pass the Luhn check, written as one or more groups of
digits separated by spaces or dashes (``4242 4242-4242 4242``). It is found at any group
boundary: the digits around it may be other numbers (``4242424242424242 12/30``,
``4242424242424242-1``, ``exp 12 4242…``), so every run of groups is tried at every
start and end group, and the union of whatever is Luhn-valid is masked. The mask keeps the
last four digits (what receipts and support tools show). A PAN glued to more digits with
no separator at all cannot be told apart from a longer number and is left alone. Used by
the span exporter wrapper and the log filter in ``collector/telemetry.py``; the stack
itself never puts a card number into a span or a metric in the first place.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from paystab.cards import PAN_MAX_DIGITS, PAN_MIN_DIGITS, luhn_checksum_ok

# Digit groups joined by up to three spaces/dashes; digits are never split inside a group.
_RUN = re.compile(r"\d+(?:[ \-]{1,3}\d+)*")
_GROUP = re.compile(r"\d+")
MIN_DIGITS = PAN_MIN_DIGITS
MAX_DIGITS = PAN_MAX_DIGITS


def _pan_spans(run: str) -> list[tuple[int, int]]:
    """Character spans of ``run`` covered by Luhn-valid 13–19 digit group sequences."""
    groups = [(m.start(), m.end(), m.group(0)) for m in _GROUP.finditer(run)]
    spans: list[tuple[int, int]] = []
    for i, (start, _, _) in enumerate(groups):
        digits = ""
        for _, end, text in groups[i:]:
            digits += text
            if len(digits) > MAX_DIGITS:
                break
            if len(digits) >= MIN_DIGITS and luhn_checksum_ok(digits):
                if spans and start <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                else:
                    spans.append((start, end))
    return spans


def _mask(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) < MIN_DIGITS:
        return run
    spans = _pan_spans(run)
    if not spans:
        return run
    out: list[str] = []
    last = 0
    for start, end in spans:
        digits = re.sub(r"\D", "", run[start:end])
        out.append(run[last:start] + "[PAN ****" + digits[-4:] + "]")
        last = end
    out.append(run[last:])
    return "".join(out)


def redact(text: str) -> str:
    """``text`` with every Luhn-valid 13–19 digit sequence masked (see the module docstring)."""
    if len(text) < MIN_DIGITS:
        return text
    return _RUN.sub(_mask, text)


def contains_pan(text: str) -> bool:
    return redact(text) != text


def redact_value(value: Any) -> Any:
    """Redact strings, and strings inside sequences; leave numbers alone unless PAN-sized."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10**12:
        return redact(str(value))
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks PANs in the formatted message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True
