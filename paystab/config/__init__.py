"""Typed configuration files: YAML 1.2 in, a pydantic model out, every error at once.

Every file a user writes (runbook, ``up --config`` stack config, ``--mix`` payment mix,
detector options, alert spec, watch config) is read the same way: :mod:`.yaml12` parses it
with YAML 1.2 core scalars (``NO`` stays Norway, ``1:30`` stays a string) and keeps a map
``field path -> line``; the plain values go to the file kind's pydantic model; every
validation error is mapped back to ``file:line: field: problem`` by :mod:`.problems` and all
of them are raised together as one :class:`~paystab.config.problems.ConfigInvalid` (exit 2).
Shared field types (durations with units, rates, shares) live in :mod:`.types`; the JSON
Schemas generated from the models, and shipped for editors, in :mod:`.schemas`.
"""
