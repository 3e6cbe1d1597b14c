"""app.decode_budget.DecodeBudget: concurrent decodes share a byte budget."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.decode_budget import BudgetExhausted, DecodeBudget


def run(coroutine):
    return asyncio.run(coroutine)


def test_reserved_bytes_never_exceed_the_capacity():
    budget = DecodeBudget(100, max_wait=10)
    peak = 0
    lock = threading.Lock()
    running = 0

    def work() -> None:
        nonlocal peak, running
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        with ThreadPoolExecutor(8) as pool:
            # Each takes 60 of 100 bytes: one at a time although 8 threads are free.
            await asyncio.gather(*(budget.run(pool, 60, work) for _ in range(5)))

    run(main())
    assert peak == 1
    assert budget.in_use == 0


def test_small_decodes_run_side_by_side():
    budget = DecodeBudget(100, max_wait=10)
    barrier = threading.Barrier(4, timeout=5)

    async def main() -> None:
        with ThreadPoolExecutor(4) as pool:
            await asyncio.gather(*(budget.run(pool, 25, barrier.wait) for _ in range(4)))

    run(main())  # all four inside at once, or the barrier times out


def test_a_decode_that_cannot_get_its_bytes_in_time_is_refused():
    budget = DecodeBudget(100, max_wait=0.2)
    release = threading.Event()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            holder = asyncio.ensure_future(budget.run(pool, 100, lambda: release.wait(5)))
            await asyncio.sleep(0.05)
            with pytest.raises(BudgetExhausted):
                await budget.run(pool, 1, lambda: None)
            release.set()
            await holder
            assert await budget.run(pool, 1, lambda: "after") == "after"

    run(main())


def test_bytes_are_freed_when_the_work_ends_not_when_the_caller_gives_up():
    budget = DecodeBudget(100, max_wait=5)
    release = threading.Event()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            task = asyncio.ensure_future(budget.run(pool, 80, lambda: release.wait(5)))
            await asyncio.sleep(0.05)
            task.cancel()  # the client went away; the thread still decodes
            await asyncio.sleep(0.05)
            assert budget.in_use == 80
            release.set()
            for _ in range(100):
                if budget.in_use == 0:
                    break
                await asyncio.sleep(0.01)
            assert budget.in_use == 0

    run(main())


def test_costs_over_the_capacity_are_capped_and_errors_free_the_bytes():
    budget = DecodeBudget(100, max_wait=1)

    def fail() -> None:
        raise ValueError("bad image")

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(ValueError):
                await budget.run(pool, 10**9, fail)
            await asyncio.sleep(0.01)
            assert budget.in_use == 0

    run(main())
