"""The chaos engine: fault kinds on five backends, the fault journal, runbooks.

- :mod:`~paystab.chaos.base` — the ``Fault`` contract and the registry of kinds;
  one module per backend registers its kinds: :mod:`.provider`, :mod:`.proxy`,
  :mod:`.iptables`, :mod:`.docker`, :mod:`.process` (looked up via :mod:`.registry`).
- :mod:`~paystab.chaos.journal` — every fault on disk before it takes effect;
  :mod:`~paystab.chaos.cleanup` clears recorded faults from any process.
- :mod:`~paystab.chaos.session` — ``FaultSession``: inject, and always clear.
- :mod:`~paystab.chaos.allow` — the blast radius.
- :mod:`~paystab.chaos.runbook`, :mod:`~paystab.chaos.hypothesis`,
  :mod:`~paystab.chaos.bundled` — the runbook schema, its assertions, the bundled drills.

Nothing is imported here so that ``import paystab.chaos.journal`` stays cheap.
"""
