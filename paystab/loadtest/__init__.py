"""The load harness: Locust checkout users, open-model pacing, shapes, thresholds, capacity.

Modules that do not talk HTTP (``profiles``, ``mix``, ``plan``, ``records``, ``stats``,
``thresholds``, ``result``, ``capacity_result``, ``render``, ``target``) import neither
Locust nor gevent, so the CLI, the drill and tests can use them without monkey-patching the
process. ``pacing`` and ``checkout`` need gevent only. ``runner`` (the programmatic API:
``run_load``, ``Harness``), ``session``, ``user``, ``transport``, ``standalone``,
``capacity``, ``workers``, ``live`` and the stock-Locust entry point ``locustfile`` import
Locust, which gevent-patches the process on import: import them only where load runs.
"""
