"""The one card-number rule: what a PAN is and the Luhn check it must pass.

The stack's payment API and dialects refuse a card number that is not a PAN, and the
redactor masks every PAN it finds in text before it reaches a log, span or file: both must
agree on what a PAN is, or a number the stack accepted could slip past the redactor. A PAN
is 13–19 ASCII digits whose Luhn checksum is 0 mod 10 (ISO/IEC 7812).
"""

from __future__ import annotations

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19

# From the right: odd positions count as they are, even ones doubled (minus 9 past 9).
_DIGIT = {str(d): d for d in range(10)}
_DOUBLED = {str(d): 2 * d if d < 5 else 2 * d - 9 for d in range(10)}


def luhn_checksum_ok(digits: str) -> bool:
    """The Luhn check alone, on a string of ASCII digits (KeyError on anything else)."""
    return (sum(map(_DIGIT.__getitem__, digits[-1::-2]))
            + sum(map(_DOUBLED.__getitem__, digits[-2::-2]))) % 10 == 0


def luhn_valid(number: str) -> bool:
    """True if ``number`` is a PAN: 13–19 ASCII digits passing the Luhn check."""
    return (number.isascii() and number.isdigit()
            and PAN_MIN_DIGITS <= len(number) <= PAN_MAX_DIGITS and luhn_checksum_ok(number))
