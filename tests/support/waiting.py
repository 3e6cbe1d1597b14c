"""The one polling loop of the tests and benchmarks (standard library only), and its twin for
async tests (whose waits must leave the event loop running)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, every: float = 0.2,
               ignore: tuple[type[BaseException], ...] = (),
               gave_up: Callable[[], str | None] | None = None) -> T:
    """Call `condition` every `every` seconds until it returns something true, and return that.

    Exceptions listed in `ignore` count as "not yet". `gave_up` is asked before each try: a
    message means waiting is pointless (e.g. the server exited) and raises RuntimeError with it.
    After `timeout` seconds: TimeoutError naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if gave_up is not None and (reason := gave_up()):
            raise RuntimeError(f"{reason} (while waiting for {what})")
        try:
            answer = condition()
        except ignore as error:
            last = error
        else:
            if answer:
                return answer
            last = answer
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} after {timeout}s (last: {last!r})")
        time.sleep(every)


async def wait_until_async(condition: Callable[[], Awaitable[T] | T], timeout: float, what: str,
                           *, every: float = 0.2,
                           ignore: tuple[type[BaseException], ...] = ()) -> T:
    """`wait_until` inside an event loop: sleeps with asyncio between tries (the loop keeps
    running); `condition` is a plain check or a coroutine function."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            answer = condition()
            if inspect.isawaitable(answer):
                answer = await answer
        except ignore as error:
            last = error
        else:
            if answer:
                return answer
            last = answer
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} after {timeout}s (last: {last!r})")
        await asyncio.sleep(every)
