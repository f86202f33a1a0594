"""One direction of a proxied connection: source socket → toxics → destination socket.

With no toxic in effect a link is *fast*: the source socket's protocol writes what it reads
straight into the destination transport (see ``connection.Side``), nothing else runs.
When a toxic takes effect the link builds a pipeline: a queue in front of every toxic,
one task per toxic (its ``pipe``), and a writer task draining the last queue into the
destination. Toxics can be added, updated and removed while data flows; the pipeline is
re-wired in place so bytes are neither lost nor reordered nor put through a toxic twice,
and once no toxic is in effect any more the queued bytes are written out and the link goes
fast again.

Toxicity is decided per link and toxic when the toxic is attached (and again when an
update changes it), with the link's random generator; each toxic also gets a child
generator of its own, so a seeded server makes the same choices run after run.

Flow control: the source stops being read while the destination's transport is full or
more than ``HIGH_WATER_BYTES`` wait in the pipeline, so a slow toxic never buffers
without bound.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from paystab.chaos.proxy_server.spec import ToxicSpec
from paystab.chaos.proxy_server.toxics import Chunk, End, Item, ToxicStub, pass_through

log = logging.getLogger(__name__)

HIGH_WATER_BYTES = 256 * 1024
LOW_WATER_BYTES = 64 * 1024


class LinkOwner(Protocol):
    """The connection a link belongs to."""

    closed: bool

    def close(self) -> None: ...

    def reset(self) -> None: ...

    def link_ended(self, link: Link) -> None: ...


class _ByteQueue(asyncio.Queue[Item]):
    """A pipeline queue that keeps its link's count of queued bytes up to date."""

    def __init__(self, link: Link) -> None:
        super().__init__()
        self._link = link

    def _put(self, item: Item) -> None:
        super()._put(item)
        if isinstance(item, Chunk):
            self._link.queued_bytes += len(item.data)

    def _get(self) -> Item:
        item: Item = super()._get()
        if isinstance(item, Chunk):
            self._link.queued_bytes -= len(item.data)
            self._link.pipeline_has_room()
        return item


class _Stage:
    """One toxic of the chain on this link: its spec, whether it is in effect, its task."""

    def __init__(self, spec: ToxicSpec, active: bool, rng: random.Random, state: Any) -> None:
        self.spec = spec
        self.active = active
        self.rng = rng
        self.state = state
        self.stub: ToxicStub | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished = False


class Link:
    """Source → toxics → destination for one direction of one connection."""

    def __init__(
        self,
        owner: LinkOwner,
        direction: str,
        source: asyncio.Transport,
        dest: asyncio.Transport,
        rng_factory: Callable[[], random.Random],
    ) -> None:
        self.owner = owner
        self.direction = direction
        self.source = source
        self.dest = dest
        self.fast = True
        self.ended = False  # the end of the stream was delivered to dest
        self.bytes_total = 0  # read from the source (metrics)
        self.queued_bytes = 0
        self.stages: list[_Stage] = []
        self._rng_factory = rng_factory
        self._rng: random.Random | None = None
        self._queues: list[_ByteQueue] = []
        self._writer: asyncio.Task[None] | None = None
        self._dest_paused = False
        self._pipeline_full = False
        self._source_paused = False
        self._drained = asyncio.Event()
        self._drained.set()

    # -- data in (called by the source socket's protocol) -----------------------------
    def feed(self, data: bytes) -> None:
        """Slow path: queue bytes for the first toxic."""
        self._queues[0].put_nowait(Chunk(data, asyncio.get_running_loop().time()))
        if self.queued_bytes > HIGH_WATER_BYTES and not self._pipeline_full:
            self._pipeline_full = True
            self._update_source()

    def feed_end(self) -> None:
        if self.fast:
            self._deliver(End.EOF)
        else:
            self._queues[0].put_nowait(End.EOF)

    # -- flow control ------------------------------------------------------------------
    def set_dest_paused(self, paused: bool) -> None:
        self._dest_paused = paused
        if paused:
            self._drained.clear()
        else:
            self._drained.set()
        self._update_source()

    def pipeline_has_room(self) -> None:
        if self._pipeline_full and self.queued_bytes < LOW_WATER_BYTES:
            self._pipeline_full = False
            self._update_source()

    def _update_source(self) -> None:
        want_paused = self._dest_paused or self._pipeline_full
        if want_paused == self._source_paused:
            return
        self._source_paused = want_paused
        if want_paused:
            self.source.pause_reading()
        else:
            self.source.resume_reading()

    # -- toxics --------------------------------------------------------------------------
    def attach(self, specs: list[ToxicSpec]) -> None:
        """Set up the chain for a new connection (no data has flowed yet)."""
        for spec in specs:
            self.stages.append(self._new_stage(spec))
        if any(stage.active for stage in self.stages):
            self._build()

    async def add(self, spec: ToxicSpec) -> None:
        stage = self._new_stage(spec)
        self.stages.append(stage)
        if self._inert():
            return
        if self.fast:
            if stage.active:
                self._build()
            return
        # The writer's queue becomes the new toxic's input; the writer moves behind it.
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer])
        if self._inert() or self.fast:
            return  # the stream ended meanwhile; remove() copes with a stage without queue
        out = _ByteQueue(self)
        self._start_stage(stage, self._queues[-1], out)
        self._queues.append(out)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(out))

    async def update(self, spec: ToxicSpec) -> None:
        index = self._index(spec.name)
        if index is None:
            return
        stage = self.stages[index]
        await self._stop_stage(stage)
        redraw = spec.toxicity != stage.spec.toxicity
        stage.spec = spec
        if redraw:
            stage.active = self._link_rng().random() < spec.toxicity
        if self._inert():
            return
        if self.fast:
            if stage.active:
                self._build()
            return
        if stage.stub is not None and not stage.finished:
            stage.task = asyncio.get_running_loop().create_task(self._run_stage(stage))
        if not any(s.active for s in self.stages):
            await self._teardown()

    async def remove(self, name: str) -> None:
        index = self._index(name)
        if index is None:
            return
        stage = self.stages[index]
        if self.fast or not self._queues or self._inert():
            # Nothing flows through this toxic any more: only the bookkeeping is left.
            await self._stop_stage(stage)
            del self.stages[index]
            return
        await self._stop_stage(stage)
        if stage.active and stage.stub is not None and not self._inert():
            stage.spec.toxic.on_remove(stage.stub)
        # Bytes waiting for the removed toxic go behind what it already passed on.
        waiting, behind = self._queues[index], self._queues[index + 1]
        while not waiting.empty():
            behind.put_nowait(waiting.get_nowait())
        if index > 0:
            previous = self.stages[index - 1].stub
            if previous is not None:
                previous.output = behind
        del self._queues[index]
        del self.stages[index]
        if not self._inert() and not any(s.active for s in self.stages):
            await self._teardown()

    def reset_connection(self) -> None:
        self.owner.reset()

    def shutdown(self) -> None:
        """The connection is gone: stop every task, drop what is queued."""
        for stage in self.stages:
            if stage.task is not None:
                stage.task.cancel()
        if self._writer is not None:
            self._writer.cancel()

    # -- internals ---------------------------------------------------------------------------
    def _inert(self) -> bool:
        return self.owner.closed or self.ended

    def _index(self, name: str) -> int | None:
        for i, stage in enumerate(self.stages):
            if stage.spec.name == name:
                return i
        return None

    def _link_rng(self) -> random.Random:
        if self._rng is None:
            self._rng = self._rng_factory()
        return self._rng

    def _new_stage(self, spec: ToxicSpec) -> _Stage:
        rng = self._link_rng()
        active = rng.random() < spec.toxicity
        child = random.Random(rng.getrandbits(64))
        return _Stage(spec, active, child, spec.toxic.new_state())

    def _build(self) -> None:
        loop = asyncio.get_running_loop()
        self._queues = [_ByteQueue(self) for _ in range(len(self.stages) + 1)]
        for i, stage in enumerate(self.stages):
            stage.finished = False
            self._start_stage(stage, self._queues[i], self._queues[i + 1])
        self._writer = loop.create_task(self._write_loop(self._queues[-1]))
        self.fast = False

    def _start_stage(self, stage: _Stage, inq: _ByteQueue, outq: _ByteQueue) -> None:
        stage.stub = ToxicStub(self, inq, outq, stage.rng, stage.state)
        stage.task = asyncio.get_running_loop().create_task(self._run_stage(stage))

    async def _stop_stage(self, stage: _Stage) -> None:
        task = stage.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        stage.task = None

    async def _run_stage(self, stage: _Stage) -> None:
        stub = stage.stub
        assert stub is not None
        try:
            if stage.active:
                await stage.spec.toxic.pipe(stub)
            else:
                await pass_through(stub)
            stage.finished = True
        except asyncio.CancelledError:
            stub.flush_held()  # interrupted: what the toxic held goes on, in order
        except Exception:
            log.exception("toxic %r failed; closing the connection", stage.spec.name)
            self.owner.close()

    async def _write_loop(self, queue: _ByteQueue) -> None:
        while True:
            item = await queue.get()
            self._deliver(item)
            if isinstance(item, End):
                return
            if self._dest_paused:
                await self._drained.wait()

    async def _teardown(self) -> None:
        """No toxic in effect any more: write out what is queued and go fast."""
        tasks = [s.task for s in self.stages if s.task is not None and not s.task.done()]
        if self._writer is not None and not self._writer.done():
            tasks.append(self._writer)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        pending: list[Item] = []
        for queue in reversed(self._queues):  # the last queue holds the oldest bytes
            while not queue.empty():
                pending.append(queue.get_nowait())
        for stage in self.stages:
            stage.stub = None
            stage.task = None
        self._queues = []
        self._writer = None
        self.fast = True
        self._pipeline_full = False
        self._update_source()
        for item in pending:
            self._deliver(item)

    def _deliver(self, item: Item) -> None:
        if self.owner.closed or self.ended or self.dest.is_closing():
            return
        if isinstance(item, Chunk):
            self.dest.write(item.data)
        elif item is End.EOF:
            self.ended = True
            try:
                if self.dest.can_write_eof():
                    self.dest.write_eof()
            except OSError:  # the peer is gone already (ENOTCONN): nothing left to end
                self.owner.close()
                return
            self.owner.link_ended(self)
        else:
            self.owner.close()
