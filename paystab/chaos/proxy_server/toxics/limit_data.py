"""``limit_data``: close the connection once ``bytes`` bytes went through this direction.

The count is per connection and survives updates of the toxic (raising the limit on a live
connection lets more through, as in Toxiproxy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from paystab.chaos.proxy_server.toxics.base import Chunk, Toxic, ToxicStub, register


@dataclass
class _Sent:
    bytes_sent: int = 0


@register
@dataclass
class LimitDataToxic(Toxic):
    type_name: ClassVar[str] = "limit_data"
    bytes: int = 0  # bytes to let through before closing

    def new_state(self) -> Any:
        return _Sent()

    async def pipe(self, stub: ToxicStub) -> None:
        sent: _Sent = stub.state
        # Like Toxiproxy, the limit is checked when data arrives: a connection that reached
        # it (or has a limit of 0) closes on its next chunk, not the moment it opens.
        while (chunk := await stub.read()) is not None:
            allowed = max(0, self.bytes - sent.bytes_sent)
            if len(chunk.data) > allowed:
                chunk = Chunk(chunk.data[:allowed], chunk.read_at)
            if chunk.data:
                stub.emit(chunk)
                sent.bytes_sent += len(chunk.data)
            if sent.bytes_sent >= self.bytes:
                stub.close()
                return
        stub.forward_end()
