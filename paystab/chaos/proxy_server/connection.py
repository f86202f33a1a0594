"""A proxied TCP connection: the client's socket, the upstream socket, and a link each way.

:class:`Side` is the asyncio protocol of one socket. It reads into a buffer of its own
(``BufferedProtocol``: no allocation per read) and, while its outgoing link is fast, hands
the bytes straight to the other socket's transport: on loopback that is one ``recv_into``
and one ``send`` per chunk, which is what keeps the added latency of a pass-through proxy
in the tens of microseconds.

Ends: a half-close travels through the link as EOF (``write_eof`` on the other socket), and
the connection closes once both directions ended, either socket is lost, a toxic asks for
it, or the proxy is disabled or deleted (then both sockets are aborted at once).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from typing import TYPE_CHECKING

from paystab.chaos.proxy_server.addresses import split_host_port
from paystab.chaos.proxy_server.link import Link
from paystab.chaos.proxy_server.spec import DOWNSTREAM, UPSTREAM

if TYPE_CHECKING:
    from paystab.chaos.proxy_server.proxy import Proxy

log = logging.getLogger(__name__)

READ_BUFFER_BYTES = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() sends RST instead of FIN


class Side(asyncio.BufferedProtocol):
    """One socket of a proxied connection (the client's or the upstream one)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None  # this socket is the link's source
        self.in_link: Link | None = None  # this socket is the link's destination
        self._new_buffer()

    def _new_buffer(self) -> None:
        self._view = memoryview(bytearray(READ_BUFFER_BYTES))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # until both sockets are there and linked
        self.connection.side_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        link = self.out_link
        assert link is not None
        link.bytes_total += nbytes
        if link.fast:
            dest = link.dest
            if dest.is_closing():
                return  # the other socket failed; its connection_lost closes us both
            dest.write(self._view[:nbytes])
            if dest.get_write_buffer_size():
                # Not all went out, and a transport may keep a view of our buffer rather
                # than a copy (CPython 3.12+): read into a fresh one from now on.
                self._new_buffer()
        else:
            link.feed(self._view[:nbytes].tobytes())

    def eof_received(self) -> bool:
        if self.out_link is not None:
            self.out_link.feed_end()
        return True  # keep the socket open for the other direction (half-close)

    def pause_writing(self) -> None:
        if self.in_link is not None:
            self.in_link.set_dest_paused(True)

    def resume_writing(self) -> None:
        if self.in_link is not None:
            self.in_link.set_dest_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.close()


class Connection:
    """A client connection accepted by a proxy, and its upstream counterpart."""

    def __init__(self, proxy: Proxy, index: int) -> None:
        self.proxy = proxy
        self.index = index
        self.closed = False
        self.client = Side(self)
        self.upstream: Side | None = None
        self.links: dict[str, Link] = {}
        self._ended: set[str] = set()
        self._connecting: asyncio.Task[None] | None = None

    # -- setup ------------------------------------------------------------------------
    def side_made(self, side: Side) -> None:
        if side is self.client:
            self.proxy.connection_opened(self)
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = split_host_port(self.proxy.upstream)
        try:
            transport, side = await loop.create_connection(
                lambda: Side(self), host or "127.0.0.1", port
            )
        except OSError as exc:
            log.info("proxy %s: cannot reach upstream %s: %s", self.proxy.name,
                     self.proxy.upstream, exc)
            self.close()
            return
        if self.closed:
            transport.abort()
            return
        self.upstream = side
        self._wire()

    def _wire(self) -> None:
        client, upstream = self.client, self.upstream
        assert client.transport is not None and upstream is not None
        assert upstream.transport is not None
        up = Link(self, UPSTREAM, client.transport, upstream.transport,
                  lambda: self.proxy.link_rng(self.index, UPSTREAM))
        down = Link(self, DOWNSTREAM, upstream.transport, client.transport,
                    lambda: self.proxy.link_rng(self.index, DOWNSTREAM))
        client.out_link, client.in_link = up, down
        upstream.out_link, upstream.in_link = down, up
        self.links = {UPSTREAM: up, DOWNSTREAM: down}
        up.attach(self.proxy.specs_for(UPSTREAM))
        down.attach(self.proxy.specs_for(DOWNSTREAM))
        client.transport.resume_reading()
        upstream.transport.resume_reading()

    # -- teardown (LinkOwner) -----------------------------------------------------------
    def link_ended(self, link: Link) -> None:
        self._ended.add(link.direction)
        if len(self._ended) == 2:
            self.close()

    def close(self) -> None:
        """Close both sockets once what was written to them has gone out."""
        self._finish(abort=False, rst=False)

    def abort(self) -> None:
        """Close both sockets now, dropping anything unsent (proxy disabled or deleted)."""
        self._finish(abort=True, rst=False)

    def reset(self) -> None:
        """Reset both sockets (TCP RST): the reset_peer toxic."""
        self._finish(abort=True, rst=True)

    def _finish(self, *, abort: bool, rst: bool) -> None:
        if self.closed:
            return
        self.closed = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for link in self.links.values():
            link.shutdown()
        for side in (self.client, self.upstream):
            transport = side.transport if side is not None else None
            if transport is None:
                continue
            if rst:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                    except OSError:
                        pass  # already gone
            if abort:
                transport.abort()
            else:
                transport.close()
        self.proxy.connection_closed(self)


def fresh_rng(seed: int | None, proxy: str, index: int, direction: str) -> random.Random:
    """The generator of one link: reproducible from (seed, proxy, connection, direction).

    Connection ``index`` counts from 0 in the order the proxy accepted them. Without a
    seed the generator is seeded from the OS.
    """
    if seed is None:
        return random.Random()
    return random.Random(f"{seed}/{proxy}/{index}/{direction}")
