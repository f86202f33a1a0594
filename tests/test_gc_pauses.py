"""GcPauses (paystab/stack/gc_pauses.py): full collections walk only what is new; what was
frozen is still collected, by a sweep while the service is idle, never while it is busy."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from paystab.stack.gc_pauses import GcPauses


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def restore_gc() -> Iterator[None]:
    callbacks = list(gc.callbacks)
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def test_a_full_collection_freezes_what_survived_it_and_the_next_walks_only_the_new(
        restore_gc: None) -> None:
    async def main() -> None:
        pauses = GcPauses(sweep_every_s=3600)
        pauses.start()
        try:
            store = [{"charge": i, "card": {"last4": "4242"}} for i in range(50_000)]
            gc.collect()  # a full collection: the store survives it, so it is frozen
            assert pauses.freezes >= 1 and gc.get_freeze_count() >= len(store)
            # what the next full collection walks: the generations, not the frozen store
            walked = sum(len(gc.get_objects(generation=g)) for g in range(3))
            assert walked < len(store) / 10, walked
        finally:
            await pauses.stop()
        assert pauses._on_gc not in gc.callbacks and gc.get_freeze_count() == 0

    asyncio.run(main())


def test_a_frozen_cycle_that_becomes_garbage_is_collected_by_the_sweep(restore_gc: None) -> None:
    async def main() -> None:
        pauses = GcPauses(sweep_every_s=3600, sweep_growth=0)
        pauses.start()
        try:
            held = [_cycle() for _ in range(1000)]
            gc.collect()  # frozen with everything else alive now
            assert pauses.due()
            del held  # now garbage, but frozen: an ordinary collection leaves it
            assert gc.collect() < 2000
            assert pauses.sweep() >= 2000
            assert pauses.sweeps == 1
        finally:
            await pauses.stop()

    asyncio.run(main())


def test_the_sweep_waits_for_an_idle_service(restore_gc: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """While the service allocates (young collections keep coming) nothing is swept; once it
    has been quiet for ``idle_s``, the due sweep runs by itself."""
    monkeypatch.setattr("paystab.stack.gc_pauses.SWEEP_CHECK_S", 0.05)

    async def main() -> None:
        pauses = GcPauses(idle_s=0.3, sweep_every_s=0.0, sweep_growth=0)
        pauses.start()
        try:
            busy_until = time.monotonic() + 1.0
            while time.monotonic() < busy_until:  # a busy service: allocating all the time
                _garbage = [_cycle() for _ in range(2000)]
                await asyncio.sleep(0.01)
            assert pauses.sweeps == 0
            deadline = time.monotonic() + 10.0
            while pauses.sweeps == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert pauses.sweeps >= 1
        finally:
            await pauses.stop()

    asyncio.run(main())
