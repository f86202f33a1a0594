"""The toxics, one module each, registered by name (Toxiproxy's ``toxics/`` directory).

Importing this package registers every toxic listed below; the proxy looks types up with
:func:`toxic_class`. To add a toxic, write a module like ``latency.py`` and list it here.
"""

from __future__ import annotations

from paystab.chaos.proxy_server.toxics import (  # noqa: F401 - imported to register
    bandwidth,
    latency,
    limit_data,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from paystab.chaos.proxy_server.toxics.base import (
    AttributeProblem,
    Chunk,
    End,
    Item,
    LinkControl,
    Toxic,
    ToxicStub,
    pass_through,
    register,
    toxic_class,
    toxic_types,
)

__all__ = [
    "AttributeProblem",
    "Chunk",
    "End",
    "Item",
    "LinkControl",
    "Toxic",
    "ToxicStub",
    "pass_through",
    "register",
    "toxic_class",
    "toxic_types",
]
