"""The decode-budget tests' one fixture-like helper: part of a DecodeBudget held by a decode that
runs (in the pool) until the `async with` block ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager

from app.decode_budget import DecodeBudget
from tests.support.waiting import wait_until_async


@asynccontextmanager
async def holding(budget: DecodeBudget, pool: Executor, cost: int) -> AsyncIterator[None]:
    """`cost` bytes of `budget` in use (waited for as an event, not a sleep) for the block."""
    release = threading.Event()
    holder = asyncio.ensure_future(budget.run(pool, cost, lambda: release.wait(5)))
    try:
        await wait_until_async(lambda: budget.in_use >= min(cost, budget.capacity), 5,
                               f"{cost} bytes of the budget held", every=0.005)
        yield
    finally:
        release.set()
        await holder
