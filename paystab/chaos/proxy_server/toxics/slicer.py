"""``slicer``: cut data into pieces of ``average_size`` ± ``size_variation`` bytes.

Pieces leave ``delay`` microseconds apart (the event loop sleeps in whole milliseconds, so
delays under 1000 µs round up to about 1 ms). Piece sizes come from the link's seeded
generator, so a seeded proxy slices the same stream the same way every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Chunk, Toxic, ToxicStub, register


@register
@dataclass
class SlicerToxic(Toxic):
    type_name: ClassVar[str] = "slicer"
    average_size: int = 0  # bytes
    size_variation: int = 0  # bytes, less than average_size
    delay: int = 0  # microseconds between pieces

    def problem(self) -> str | None:
        if self.average_size <= 0:
            return f"attribute 'average_size' must be > 0 bytes, got {self.average_size}"
        if not 0 <= self.size_variation < self.average_size:
            return (
                f"attribute 'size_variation' must be from 0 to average_size - 1 "
                f"({self.average_size - 1}), got {self.size_variation}"
            )
        return super().problem()

    async def pipe(self, stub: ToxicStub) -> None:
        gap_s = self.delay / 1_000_000.0
        while (chunk := await stub.read()) is not None:
            data = chunk.data
            offset = 0
            while offset < len(data):
                size = self.average_size
                if self.size_variation:
                    size += stub.rng.randint(-self.size_variation, self.size_variation)
                piece = data[offset : offset + size]
                offset += len(piece)
                stub.emit(Chunk(piece, chunk.read_at))
                if offset < len(data) and gap_s > 0:
                    stub.held = Chunk(data[offset:], chunk.read_at)
                    await stub.sleep_until(stub.now() + gap_s)
                    stub.held = None
        stub.forward_end()
