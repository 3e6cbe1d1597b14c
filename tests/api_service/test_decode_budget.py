"""app.decode_budget.DecodeBudget: concurrent decodes share a byte budget."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.decode_budget import BudgetExhausted, DecodeBudget
from tests.support.decode_budget import holding
from tests.support.waiting import wait_until_async


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

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            async with holding(budget, pool, 100):
                with pytest.raises(BudgetExhausted):
                    await budget.run(pool, 1, lambda: None)
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
            await wait_until_async(lambda: budget.in_use == 0, 10, "the budget freed",
                                   every=0.01)

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


def test_waiters_are_served_first_come_first_served():
    # 60 of 100 bytes held; a 100-byte decode asks, then a 10-byte one. The small one fits the 40
    # free bytes, but it waits its turn: otherwise a stream of small photos starves the large one.
    budget = DecodeBudget(100, max_wait=5)
    started: list[str] = []

    def work(name: str):
        return lambda: started.append(name)

    async def main() -> None:
        with ThreadPoolExecutor(4) as pool:
            async with holding(budget, pool, 60):
                large = asyncio.ensure_future(budget.run(pool, 100, work("large")))
                await asyncio.sleep(0.01)
                small = asyncio.ensure_future(budget.run(pool, 10, work("small")))
                await asyncio.sleep(0.1)
                assert started == [] and budget.waiting == 2
            await asyncio.gather(large, small)

    run(main())
    assert started == ["large", "small"]
    assert budget.in_use == 0


def test_a_waiter_that_gives_up_lets_the_next_one_in():
    budget = DecodeBudget(100, max_wait=0.2)

    async def main() -> None:
        with ThreadPoolExecutor(4) as pool:
            async with holding(budget, pool, 60):
                large = asyncio.ensure_future(budget.run(pool, 100, lambda: "large"))
                await asyncio.sleep(0.05)
                # Queued behind the large one; admitted the moment it times out (40 bytes free).
                assert await budget.run(pool, 10, lambda: "small") == "small"
                with pytest.raises(BudgetExhausted):
                    await large
                assert budget.waiting == 0

    run(main())
    assert budget.in_use == 0


def test_a_cancelled_waiter_leaves_the_queue():
    budget = DecodeBudget(100, max_wait=5)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            async with holding(budget, pool, 100):
                waiter = asyncio.ensure_future(budget.run(pool, 50, lambda: None))
                await asyncio.sleep(0.05)
                waiter.cancel()
                await asyncio.sleep(0.01)
                assert budget.waiting == 0

    run(main())
    assert budget.in_use == 0


def test_a_deadline_already_past_is_refused_at_once_while_the_budget_is_busy():
    budget = DecodeBudget(100, max_wait=10)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            async with holding(budget, pool, 100):
                with pytest.raises(BudgetExhausted):
                    await budget.run(pool, 1, lambda: None,
                                     asyncio.get_running_loop().time() - 1)
                assert budget.waiting == 0

    run(main())
