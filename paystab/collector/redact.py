"""Card numbers never leave the process: find and mask anything that looks like a PAN.

A PAN here is 13–19 digits, optionally grouped by single spaces or dashes, that passes the
Luhn check. The mask keeps the last four digits (what receipts and support tools show).
Used by the span exporter wrapper and the log filter in ``collector/telemetry.py``; the
stack itself never puts a card number into a span or a metric in the first place.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return "[PAN ****" + digits[-4:] + "]"
    return text


def redact(text: str) -> str:
    """``text`` with every Luhn-valid 13–19 digit run masked."""
    if len(text) < 13:
        return text
    return _CANDIDATE.sub(_mask, text)


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
