"""``reset_peer``: reset the connection (TCP RST) ``timeout`` milliseconds after data arrives.

The first chunk (or the end of the stream) in the toxic's direction starts the clock; the
data itself is not delivered. Both sockets are closed with SO_LINGER 0, so both peers see
"connection reset by peer" rather than an orderly close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Toxic, ToxicStub, register


@register
@dataclass
class ResetPeerToxic(Toxic):
    type_name: ClassVar[str] = "reset_peer"
    timeout: int = 0  # milliseconds

    async def pipe(self, stub: ToxicStub) -> None:
        chunk = await stub.read()
        stub.held = chunk if chunk is not None else stub.end
        await stub.sleep_until(stub.now() + self.timeout / 1000.0)
        stub.held = None
        stub.reset()
