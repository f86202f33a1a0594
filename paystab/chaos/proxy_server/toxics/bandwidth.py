"""``bandwidth``: at most ``rate`` KB/s get through (1 KB = 1000 bytes, as in Toxiproxy).

Data leaves in pieces of at most 100 ms worth of rate, each when the link would have
finished sending it, so a slow link streams steadily instead of stalling and bursting.
Time the link sat idle is not banked: a pause does not buy a later burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Chunk, Toxic, ToxicStub, register


@register
@dataclass
class BandwidthToxic(Toxic):
    type_name: ClassVar[str] = "bandwidth"
    rate: int = 0  # KB/s

    def problem(self) -> str | None:
        if self.rate <= 0:
            return f"attribute 'rate' must be > 0 KB/s, got {self.rate} (to stop data, use timeout)"
        return super().problem()

    async def pipe(self, stub: ToxicStub) -> None:
        bytes_per_s = self.rate * 1000.0
        piece_size = max(1, self.rate * 100)  # 100 ms worth
        link_free_at = 0.0
        while (chunk := await stub.read()) is not None:
            link_free_at = max(link_free_at, stub.now())
            data = chunk.data
            for offset in range(0, len(data), piece_size):
                piece = data[offset : offset + piece_size]
                link_free_at += len(piece) / bytes_per_s
                stub.held = Chunk(data[offset:], chunk.read_at)
                await stub.sleep_until(link_free_at)
                stub.held = None
                stub.emit(Chunk(piece, chunk.read_at))
        stub.forward_end()
