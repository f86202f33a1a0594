"""``paystab chaos proxy``: a TCP fault proxy with a Toxiproxy-compatible control API.

Layout, one job per module: ``server`` (embeddable :class:`ProxyServer`), ``api`` (the
HTTP control API), ``collection`` (request checks and operations), ``proxy`` (a listener
and its connections), ``connection`` (the two sockets of one connection), ``link`` (one
direction: fast pass-through, or a pipeline of toxics), ``toxics/`` (one module per toxic,
registered by name), ``metrics`` (Prometheus), ``addresses``, ``errors``, ``spec``.
Beyond Toxiproxy: a seed that makes every random choice reproducible, and metrics under
paystab's own names.
"""

from __future__ import annotations

from paystab.chaos.proxy_server.connection import fresh_rng
from paystab.chaos.proxy_server.errors import ApiError
from paystab.chaos.proxy_server.server import DEFAULT_PORT, ProxyServer
from paystab.chaos.proxy_server.toxics import toxic_types

__all__ = ["DEFAULT_PORT", "ApiError", "ProxyServer", "fresh_rng", "toxic_types"]
