"""``timeout``: nothing gets through; the connection closes after ``timeout`` milliseconds.

With ``timeout`` 0 the connection stays open and every byte is dropped until the toxic is
removed. The clock starts when the toxic takes hold of the link (connection start, or when
the toxic is added). Removing the toxic closes the links it held, as in Toxiproxy: bytes
were dropped, so what would follow is a corrupt stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Toxic, ToxicStub, register


@register
@dataclass
class TimeoutToxic(Toxic):
    type_name: ClassVar[str] = "timeout"
    timeout: int = 0  # milliseconds; 0 = never close

    async def pipe(self, stub: ToxicStub) -> None:
        if self.timeout <= 0:
            await self._drop_everything(stub)
            return
        try:
            async with asyncio.timeout(self.timeout / 1000.0):
                await self._drop_everything(stub)
        except TimeoutError:
            stub.close()

    @staticmethod
    async def _drop_everything(stub: ToxicStub) -> None:
        while await stub.read() is not None:
            pass
        stub.forward_end()

    def on_remove(self, stub: ToxicStub) -> None:
        stub.close()
