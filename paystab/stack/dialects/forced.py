"""A charge whose outcome a PSP's own test convention fixes, whatever the decline mix says.

Real PSP sandboxes let a merchant ask for a given answer: Adyen's ``holderName`` /
``RequestedTestAcquirerResponseCode``, KOMOJU's test cards and ``Komoju-Scenario`` header.
A dialect that reads such a convention returns a :class:`ForcedChargeRequest` from
``parse_charge_request``; the charge model (``providers/model.py``) answers its
``forced_code`` (a unified code) after its routing checks (method, brand, currency) and
before the generic test cards and the decline mix. Without a convention in the request the
dialect returns a plain :class:`ChargeRequest`, so round trips compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from paystab.stack.dialects.base import ChargeRequest


@dataclass(frozen=True, slots=True)
class ForcedChargeRequest(ChargeRequest):
    forced_code: str = "approved"  # unified code: approved | pending | declined.* | error.*


def with_forced_code(request: ChargeRequest, code: str | None) -> ChargeRequest:
    """``request`` unchanged when ``code`` is None, else the same charge with its outcome
    fixed to ``code``."""
    if code is None:
        return request
    values = {f.name: getattr(request, f.name) for f in fields(ChargeRequest)}
    return ForcedChargeRequest(**values, forced_code=code)


def forced_code(request: ChargeRequest) -> str | None:
    return request.forced_code if isinstance(request, ForcedChargeRequest) else None
