"""``latency``: every chunk arrives ``latency`` ± ``jitter`` milliseconds late.

The delay counts from when the chunk was read, not from when the previous one left, so a
stream is shifted in time rather than slowed down (as in Toxiproxy). Jitter is uniform in
[-jitter, +jitter) and drawn from the link's seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paystab.chaos.proxy_server.toxics.base import Toxic, ToxicStub, register


@register
@dataclass
class LatencyToxic(Toxic):
    type_name: ClassVar[str] = "latency"
    latency: int = 0  # milliseconds
    jitter: int = 0  # milliseconds

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            delay_ms = self.latency
            if self.jitter > 0:
                delay_ms += stub.rng.randrange(-self.jitter, self.jitter)
            stub.held = chunk
            await stub.sleep_until(chunk.read_at + delay_ms / 1000.0)
            stub.held = None
            stub.emit(chunk)
        stub.forward_end()
