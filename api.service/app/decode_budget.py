"""A budget of bytes shared by concurrent image decodes: many large photos wait for each other
instead of adding up past the container's memory limit (issue 14: a burst of 95 KB 16-bit PNGs
took the API past 2 GB)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class BudgetExhausted(Exception):
    """The decode did not get its share of the budget within the wait limit (server busy)."""


@dataclass(eq=False)
class _Waiter:
    cost: int
    granted: asyncio.Future[None] = field(repr=False)


class DecodeBudget:
    """Admits a decode of `cost` bytes when that many are free; frees them when the decode itself
    ends (not when the awaiting request does: a disconnected client's thread still runs).

    First come, first served: a decode waits behind every decode that asked before it, even when
    its own bytes are free, so a large photo cannot starve behind a stream of small ones (issue
    23). Used from one event loop (the app's); the pool threads only run the work."""

    def __init__(self, capacity: int, *, max_wait: float) -> None:
        if capacity < 1 or max_wait <= 0:
            raise ValueError("capacity and max_wait must be positive")
        self.capacity = capacity
        self.max_wait = max_wait
        self._free = capacity
        self._queue: deque[_Waiter] = deque()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def deadline(self) -> float:
        """The event loop time by which a wait starting now gives up: parts of one batch share
        one, so a batch waits no longer than a single photo does."""
        return asyncio.get_running_loop().time() + self.max_wait

    async def run(self, pool: Executor, cost: int, work: Callable[[], T],
                  deadline: float | None = None) -> T:
        """work() in the pool once `cost` bytes (at most the capacity) are reserved; waits until
        `deadline` (loop time; default: max_wait from now) at the latest."""
        cost = min(max(cost, 0), self.capacity)  # the per-image cap is the caller's to check
        await self._reserve(cost, self.deadline() if deadline is None else deadline)
        loop = asyncio.get_running_loop()
        try:
            future = pool.submit(work)
        except BaseException:
            self._release(cost)
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, cost))
        return await asyncio.wrap_future(future)

    async def _reserve(self, cost: int, deadline: float) -> None:
        if not self._queue and self._free >= cost:
            self._free -= cost
            return
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():
            raise BudgetExhausted(f"{cost:,} bytes not free within {self.max_wait:g} s")
        waiter = _Waiter(cost, loop.create_future())
        self._queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), deadline - loop.time())
        except BaseException as error:  # timed out or cancelled
            if waiter.granted.done() and not waiter.granted.cancelled():
                # Granted in the same instant: hand the bytes on rather than leak them.
                self._release(cost)
            else:
                self._queue.remove(waiter)
                self._admit()  # the decode behind this one may fit now
            if isinstance(error, TimeoutError):
                raise BudgetExhausted(f"{cost:,} bytes not free within {self.max_wait:g} s"
                                      ) from None
            raise

    def _release(self, cost: int) -> None:
        self._free += cost
        self._admit()

    def _admit(self) -> None:
        """Grant the bytes to waiters in arrival order while the first one's cost fits."""
        while self._queue and self._queue[0].cost <= self._free:
            waiter = self._queue.popleft()
            self._free -= waiter.cost
            waiter.granted.set_result(None)
