"""What the readers hand the reconciler: one merchant row per payment, one PSP row per capture.

Every reader (SQL, CSV, the gateway's SQLite, the simulators' SQLite, Stripe and Adyen
reports) turns its own format into these two shapes, with amounts in integer minor units and
currencies in upper case, and with ``where`` saying where the row came from (``file:line``
or ``url row N``) for the findings. The amount helpers convert decimal major units with each
currency's ISO 4217 exponent (JPY 0, USD 2, BHD 3): a report's ``19.99`` is ``1999``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MerchantState = str  # approved | pending | declined | failed | refunded (ignore is dropped)
PspState = str  # captured | pending | declined | voided | refunded
LIVE = ("captured", "pending")


@dataclass(frozen=True, slots=True)
class MerchantRow:
    reference: str
    status: MerchantState  # after the status mapping
    raw_status: str  # as the merchant wrote it
    amount: int  # minor units
    currency: str
    provider: str | None
    psp_reference: str | None
    where: str


@dataclass(frozen=True, slots=True)
class PspRow:
    provider: str
    psp_reference: str
    merchant_reference: str  # "" when the PSP does not know it
    status: PspState
    amount: int  # minor units the PSP holds (captured minus returned, for reports)
    currency: str
    where: str

    @property
    def live(self) -> bool:
        return self.status in LIVE


# ISO 4217 minor-unit exponents that are not 2 (the default).
EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4, "UYW": 4,
}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def valid_currency(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha()


def minor_from_major(text: str, currency: str) -> int:
    """``"19.99"`` USD -> 1999, ``"1000"`` JPY -> 1000; ValueError saying what is wrong.

    A comma is read as the decimal separator when there is no dot (Stripe's
    ``decimal_separator=,``); thousands separators are not accepted.
    """
    raw = text.strip()
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a decimal amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {currency.upper()} allows "
                         f"({exponent(currency)})")
    return int(scaled)


def minor_from_value(value: object, currency: str, unit: str) -> int:
    """A database or CSV value as minor units; ``unit`` is ``minor`` or ``major``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"got {value!r}")
    if unit == "major":
        return minor_from_major(str(value), currency)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        number = Decimal(value)
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"got {value} with decimals")
        return int(number)
    text = str(value).strip()
    if text.lstrip("-").isdigit() and text.isascii():
        return int(text)
    raise ValueError(f"got {text!r}")
