"""Provider dialects, registered by name: each module is one provider's wire format.

``get_dialect(name)`` is how the gateway (client side) and the simulators (server side)
find the dialect a :class:`~paystab.stack.catalog.ProviderSpec` names. The contract every
dialect honours is in ``base.py``; ``docs/providers.md`` shows each one's requests and
answers.
"""

from __future__ import annotations

from paystab.stack.dialects.adyen import AdyenDialect
from paystab.stack.dialects.alpha import AlphaDialect
from paystab.stack.dialects.base import Dialect
from paystab.stack.dialects.bravo import BravoDialect
from paystab.stack.dialects.charlie import CharlieDialect
from paystab.stack.dialects.delta import DeltaDialect
from paystab.stack.dialects.echo import EchoDialect
from paystab.stack.dialects.furikomi import FurikomiDialect
from paystab.stack.dialects.grab import GrabDialect
from paystab.stack.dialects.kakao import KakaoDialect
from paystab.stack.dialects.komoju import KomojuDialect
from paystab.stack.dialects.konbini import KonbiniDialect
from paystab.stack.dialects.paypay import PayPayDialect
from paystab.stack.dialects.stripe import StripeDialect

# Dialects hold no state, so one instance each serves every provider that speaks it.
DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        AlphaDialect(), BravoDialect(), CharlieDialect(), DeltaDialect(), EchoDialect(),
        PayPayDialect(), KakaoDialect(), GrabDialect(), KonbiniDialect(), FurikomiDialect(),
        AdyenDialect(), KomojuDialect(), StripeDialect(),
    )
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; KeyError naming the known ones otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}") from None


__all__ = ["DIALECTS", "Dialect", "get_dialect"]
