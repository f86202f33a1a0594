"""``slow_close``: when the stream ends, wait ``delay`` milliseconds before closing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Toxic, ToxicStub, register


@register
@dataclass
class SlowCloseToxic(Toxic):
    type_name: ClassVar[str] = "slow_close"
    delay: int = 0  # milliseconds

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            stub.emit(chunk)
        stub.held = stub.end  # an interruption lets the close through at once
        await stub.sleep_until(stub.now() + self.delay / 1000.0)
        stub.held = None
        stub.forward_end()
