"""A toxic as the control API knows it: name, type, stream, toxicity and its settings.

This is the JSON object of Toxiproxy's API (``{"name", "type", "stream", "toxicity",
"attributes"}``). A spec belongs to a proxy; every live connection runs its own copy of
the toxic's pipe on the link of the spec's stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paystab.chaos.proxy_server.toxics import Toxic

UPSTREAM = "upstream"  # client -> server
DOWNSTREAM = "downstream"  # server -> client
STREAMS = (UPSTREAM, DOWNSTREAM)


@dataclass(frozen=True)
class ToxicSpec:
    name: str
    type: str
    stream: str
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.toxic.attributes(),
        }
