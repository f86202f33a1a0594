"""Provider simulators: ten simulated PSPs, each speaking its own dialect.

Use :func:`start_providers` to run them in the current event loop (``paystab up`` embeds
them; ``paystab provider NAME`` runs them alone), and :func:`read_ledger` to read what a
provider captured (the reconciler's ground truth). Layout: ``model`` (latency and
decisions), ``book`` (idempotency, look-ups, voids, async completion), ``ledger`` (SQLite),
``faults`` (runtime faults), ``server`` (the HTTP handler), ``admin`` (the admin API),
``metrics``, ``runner``.
"""

from __future__ import annotations

from paystab.stack.providers.ledger import LedgerRow, read_ledger
from paystab.stack.providers.runner import RunningProviders, start_providers

__all__ = ["LedgerRow", "RunningProviders", "read_ledger", "start_providers"]
