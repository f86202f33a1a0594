"""The toxic contract: what a toxic is, what it gets for each connection, how it registers.

A toxic (as in Toxiproxy's ``toxics/`` directory) is a small dataclass whose integer fields
are its JSON ``attributes`` (units in a comment next to each), plus one coroutine,
:meth:`Toxic.pipe`, that moves data from ``stub.input`` to ``stub.output`` and does its
damage on the way. One instance holds the settings shared by every connection; everything
per connection (the queues, the random generator, the toxic's own state) lives on the
:class:`ToxicStub` it is given.

The contract for ``pipe(stub)``:

* read with ``await stub.read()``: a :class:`Chunk`, or ``None`` once the stream has ended;
* pass data on with ``stub.emit(chunk)``; once the input ended, ``stub.forward_end()``
  (the end is a half-close or a full close: the stub remembers which) and return;
* ``stub.close()`` closes the whole connection after what was emitted has been written,
  ``stub.reset()`` resets it (TCP RST) at once; return after either;
* whatever the toxic has taken from the input but not yet emitted must be in ``stub.held``
  across every ``await``: when the toxic is interrupted (removed, updated, or another toxic
  is added behind it) the pipeline cancels ``pipe`` and emits ``stub.held`` so no byte is
  lost (Toxiproxy: "don't drop any data on the floor"). Toxics that drop data on purpose
  simply hold nothing.

Register a toxic by decorating its class with :func:`register`; the name is ``type_name``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, TypeVar


class End(enum.Enum):
    """How a stream ended: the source half-closed (EOF), or the connection must close."""

    EOF = "eof"
    CLOSE = "close"


@dataclasses.dataclass(slots=True)
class Chunk:
    """Bytes read from the source in one go, and when (event-loop time, seconds)."""

    data: bytes
    read_at: float


Item = Chunk | End


class AttributeProblem(ValueError):
    """Toxic attributes that cannot be used; the message says which and why."""


class LinkControl(Protocol):
    """What a stub may ask of the connection it belongs to."""

    def reset_connection(self) -> None: ...


class ToxicStub:
    """One toxic at work on one link (one connection, one direction)."""

    def __init__(
        self,
        link: LinkControl,
        input_queue: asyncio.Queue[Item],
        output_queue: asyncio.Queue[Item],
        rng: random.Random,
        state: Any,
    ) -> None:
        self.link = link
        self.input = input_queue
        self.output = output_queue  # re-pointed by the pipeline when the next toxic goes
        self.rng = rng
        self.state = state
        self.held: Item | None = None
        self.end: End = End.EOF

    async def read(self) -> Chunk | None:
        item = await self.input.get()
        if isinstance(item, End):
            self.end = item
            return None
        return item

    def emit(self, chunk: Chunk) -> None:
        self.output.put_nowait(chunk)

    def forward_end(self) -> None:
        self.output.put_nowait(self.end)

    def close(self) -> None:
        self.output.put_nowait(End.CLOSE)

    def reset(self) -> None:
        self.link.reset_connection()

    def flush_held(self) -> None:
        """Emit what the interrupted toxic was holding (called by the pipeline)."""
        if self.held is not None:
            self.output.put_nowait(self.held)
            self.held = None

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


ToxicT = TypeVar("ToxicT", bound="Toxic")


class Toxic(ABC):
    """Settings of one toxic type; subclasses are dataclasses of integer attributes."""

    type_name: ClassVar[str] = ""

    @classmethod
    def attribute_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_attributes(cls: type[ToxicT], raw: object, base: ToxicT | None = None) -> ToxicT:
        """Build from JSON ``attributes``; keys not given keep ``base``'s values (or defaults).

        Unknown keys are refused rather than ignored (Toxiproxy ignores them, so a typo such
        as ``latancy`` silently injects nothing).
        """
        if base is not None:
            values: dict[str, int] = base.attributes()
        else:
            values = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type,misc]
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise AttributeProblem("attributes must be a JSON object")
        for key, value in raw.items():
            if key not in values:
                known = ", ".join(values) or "none"
                raise AttributeProblem(
                    f"unknown attribute {key!r} for toxic type {cls.type_name} (known: {known})"
                )
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (isinstance(value, float) and not value.is_integer())
            ):
                raise AttributeProblem(f"attribute {key!r} must be an integer, got {value!r}")
            values[key] = int(value)
        toxic = cls(**values)
        problem = toxic.problem()
        if problem:
            raise AttributeProblem(problem)
        return toxic

    def attributes(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.attribute_names()}

    def problem(self) -> str | None:
        """What is wrong with these settings, or None. Default: no attribute is negative."""
        for name, value in self.attributes().items():
            if value < 0:
                return f"attribute {name!r} must not be negative, got {value}"
        return None

    def new_state(self) -> Any:
        """Per-connection state that survives updates of this toxic (None if stateless)."""
        return None

    @abstractmethod
    async def pipe(self, stub: ToxicStub) -> None:
        """Move data from ``stub.input`` to ``stub.output``; see the module docstring."""

    def on_remove(self, stub: ToxicStub) -> None:
        """Called on each affected link when the toxic is removed, after ``pipe`` stopped."""
        return None  # most toxics leave nothing behind


async def pass_through(stub: ToxicStub) -> None:
    """What a toxic does on a link its toxicity spared: nothing."""
    while (chunk := await stub.read()) is not None:
        stub.emit(chunk)
    stub.forward_end()


_REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[ToxicT]) -> type[ToxicT]:
    """Class decorator: make a toxic available under its ``type_name``."""
    if not cls.type_name or cls.type_name in _REGISTRY:
        raise ValueError(f"toxic type name {cls.type_name!r} is empty or taken")
    _REGISTRY[cls.type_name] = cls
    return cls


def toxic_class(type_name: str) -> type[Toxic] | None:
    return _REGISTRY.get(type_name)


def toxic_types() -> list[str]:
    return sorted(_REGISTRY)
