"""One named proxy: a listening socket, its live connections, and its toxics.

Semantics follow Toxiproxy's ``Proxy``: ``enabled`` means listening; disabling closes the
listener and every live connection; changing ``listen`` or ``upstream`` restarts it; a
listen port of 0 is replaced by the port actually bound. Toxic changes reach live
connections at once (each link re-wires its pipeline), and new connections start with the
proxy's current toxics.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from paystab.chaos.proxy_server.addresses import join_host_port, split_host_port
from paystab.chaos.proxy_server.connection import Connection, Side, fresh_rng
from paystab.chaos.proxy_server.errors import listen_failed
from paystab.chaos.proxy_server.link import Link
from paystab.chaos.proxy_server.spec import DOWNSTREAM, STREAMS, UPSTREAM, ToxicSpec

log = logging.getLogger(__name__)


class Proxy:
    """A listener forwarding every accepted connection to ``upstream`` through toxics."""

    def __init__(self, name: str, listen: str, upstream: str, seed: int | None) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.seed = seed
        self.specs: dict[str, ToxicSpec] = {}
        self.connections: set[Connection] = set()
        self.accepted_total = 0
        self._bytes_of_closed = {UPSTREAM: 0, DOWNSTREAM: 0}
        self._server: asyncio.Server | None = None

    # -- JSON ----------------------------------------------------------------------------
    def toxics_json(self) -> list[dict[str, Any]]:
        """Upstream toxics first, then downstream, each in the order they were added."""
        return [spec.to_json() for stream in STREAMS for spec in self.specs_for(stream)]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

    # -- listening ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            return
        host, port = split_host_port(self.listen)
        bind_host = "127.0.0.1" if host.lower() == "localhost" else (host or None)
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                self._accept, bind_host, port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise listen_failed(self.listen, exc.strerror or str(exc)) from None
        self._server = server
        bound = server.sockets[0].getsockname()
        self.listen = join_host_port(str(bound[0]), int(bound[1]))
        self.enabled = True

    async def stop(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self.connections):
            connection.abort()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        if listen != self.listen or upstream != self.upstream:
            await self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            await self.stop()

    def _accept(self) -> Side:
        connection = Connection(self, self.accepted_total)
        self.accepted_total += 1
        return connection.client

    # -- connections (called by Connection) ---------------------------------------------
    def connection_opened(self, connection: Connection) -> None:
        if not self.enabled:
            connection.abort()  # accepted in the instant the proxy was being disabled
            return
        self.connections.add(connection)

    def connection_closed(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            for direction, link in connection.links.items():
                self._bytes_of_closed[direction] += link.bytes_total

    def link_rng(self, index: int, direction: str) -> random.Random:
        return fresh_rng(self.seed, self.name, index, direction)

    def bytes_total(self, direction: str) -> int:
        live = sum(
            c.links[direction].bytes_total for c in self.connections if direction in c.links
        )
        return self._bytes_of_closed[direction] + live

    # -- toxics ----------------------------------------------------------------------------
    def specs_for(self, stream: str) -> list[ToxicSpec]:
        return [spec for spec in self.specs.values() if spec.stream == stream]

    def toxic_type_counts(self) -> Counter[str]:
        return Counter(spec.type for spec in self.specs.values())

    def _live_links(self, stream: str) -> list[Link]:
        return [c.links[stream] for c in self.connections if stream in c.links]

    async def add_toxic(self, spec: ToxicSpec) -> None:
        # The spec and the set of live links are taken in one step: a connection wired
        # after this point reads the new spec itself, one wired before is in the list.
        self.specs[spec.name] = spec
        links = self._live_links(spec.stream)
        await self._on_links(links, [link.add(spec) for link in links])

    async def update_toxic(self, spec: ToxicSpec) -> None:
        self.specs[spec.name] = spec
        links = self._live_links(spec.stream)
        await self._on_links(links, [link.update(spec) for link in links])

    async def remove_toxic(self, name: str) -> None:
        spec = self.specs.pop(name)
        links = self._live_links(spec.stream)
        await self._on_links(links, [link.remove(name) for link in links])

    @staticmethod
    async def _on_links(links: list[Link], changes: list[Coroutine[Any, Any, None]]) -> None:
        """Apply a change to every live link; a link that fails it loses its connection
        (logged) instead of failing the API request for every other connection."""
        results = await asyncio.gather(*changes, return_exceptions=True)
        for link, result in zip(links, results, strict=True):
            if isinstance(result, Exception):
                log.error("proxy link failed a toxic change; closing its connection",
                          exc_info=result)
                link.owner.close()

    async def remove_all_toxics(self) -> None:
        for name in list(self.specs):
            await self.remove_toxic(name)
