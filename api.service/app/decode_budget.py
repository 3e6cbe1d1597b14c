"""A budget of bytes shared by concurrent image decodes: many large photos wait for each other
instead of adding up past the container's memory limit (issue 14: a burst of 95 KB 16-bit PNGs
took the API past 2 GB)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


class BudgetExhausted(Exception):
    """The decode did not get its share of the budget within the wait limit (server busy)."""


class DecodeBudget:
    """Admits a decode of `cost` bytes when that many are free; frees them when the decode itself
    ends (not when the awaiting request does: a disconnected client's thread still runs).
    Used from one event loop (the app's); the pool threads only run the work."""

    def __init__(self, capacity: int, *, max_wait: float) -> None:
        if capacity < 1 or max_wait <= 0:
            raise ValueError("capacity and max_wait must be positive")
        self.capacity = capacity
        self.max_wait = max_wait
        self._free = capacity
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    async def run(self, pool: Executor, cost: int, work: Callable[[], T]) -> T:
        """work() in the pool once `cost` bytes (at most the capacity) are reserved."""
        cost = min(max(cost, 0), self.capacity)  # the per-image cap is the caller's to check
        await self._reserve(cost)
        loop = asyncio.get_running_loop()
        try:
            future = pool.submit(work)
        except BaseException:
            self._release(cost)
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, cost))
        return await asyncio.wrap_future(future)

    async def _reserve(self, cost: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while self._free < cost:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BudgetExhausted(f"{cost:,} bytes not free within {self.max_wait:g} s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass  # the loop condition decides
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._free -= cost

    def _release(self, cost: int) -> None:
        self._free += cost
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
