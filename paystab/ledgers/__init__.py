"""The stack's own ledgers: the merchant's orders and the PSPs' books, reconciled.

:mod:`.spec` is the ``ledgers:`` model of a stack file; :func:`reconcile_ledgers` reads both
sides and finds double charges, lost payments and orphans by merchant reference.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: the stack-file model imports .spec, and must not pull in the readers.
    if name == "reconcile_ledgers":
        from paystab.ledgers.reconcile import reconcile_ledgers

        return reconcile_ledgers
    raise AttributeError(name)
