"""The rollout plan's pure parts and its file: label choice, comparison, the file re-read (a bad
one keeps the last good plan), and shadow tasks dropped when too many run."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from app.rollout import (
    CANARY,
    STABLE,
    RolloutFile,
    RolloutPlan,
    ShadowTasks,
    choose_label,
    compare,
    should_shadow,
)


def test_choose_label_splits_by_the_canary_share() -> None:
    plan = RolloutPlan(canary_percent=10)
    assert choose_label(plan, 0.0) == CANARY
    assert choose_label(plan, 0.0999) == CANARY
    assert choose_label(plan, 0.1) == STABLE
    assert choose_label(RolloutPlan(canary_percent=0), 0.0) == STABLE
    assert choose_label(RolloutPlan(canary_percent=100), 0.9999) == CANARY
    assert should_shadow(RolloutPlan(shadow_percent=50), 0.49)
    assert not should_shadow(RolloutPlan(shadow_percent=50), 0.5)


def test_compare_top_class_and_largest_difference() -> None:
    same = compare(np.array([0.1, 0.7, 0.2]), np.array([0.2, 0.5, 0.3]))
    assert same.agreed and same.max_abs_difference == pytest.approx(0.2)
    other = compare(np.array([0.1, 0.7, 0.2]), np.array([0.6, 0.3, 0.1]))
    assert not other.agreed and other.max_abs_difference == pytest.approx(0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_file_is_reread_and_a_bad_one_keeps_the_last_good_plan(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    errors: list[None] = []
    clock = Clock()
    rollout = RolloutFile(path, lambda: errors.append(None), clock)
    assert rollout.plan() is None  # no file: no labels

    write(path, '{"canary_percent": 10, "shadow_percent": 0}', 1_000_000_000)
    clock.now += 1.0
    assert rollout.plan() == RolloutPlan(canary_percent=10)

    for number, bad in enumerate(['{"canary_percent": 101}', "not json", '{"canary": 5}',
                                  '{"canary_percent": "10"}'], start=1):
        write(path, bad, 1_000_000_000 + number)
        clock.now += 1.0
        assert rollout.plan() == RolloutPlan(canary_percent=10)
        assert len(errors) == number
    clock.now += 1.0
    rollout.plan()
    assert len(errors) == 4  # an unchanged bad file is refused once

    write(path, '{"canary_percent": 0, "shadow_percent": 25}', 2_000_000_000)
    assert rollout.plan() == RolloutPlan(canary_percent=10)  # not re-read within a second
    clock.now += 1.0
    assert rollout.plan() == RolloutPlan(shadow_percent=25)

    path.unlink()
    clock.now += 1.0
    assert rollout.plan() is None


def test_shadow_tasks_beyond_the_limit_are_dropped_not_queued() -> None:
    async def scenario() -> tuple[list[bool], int, int]:
        release = asyncio.Event()
        finished = 0
        dropped: list[None] = []

        async def work() -> None:
            nonlocal finished
            await release.wait()
            finished += 1

        tasks = ShadowTasks(2, lambda: dropped.append(None))
        accepted = [tasks.submit(work) for _ in range(5)]
        release.set()
        await tasks.drain()
        return accepted, finished, len(dropped)

    accepted, finished, dropped = asyncio.run(scenario())
    assert accepted == [True, True, False, False, False]
    assert (finished, dropped) == (2, 3)
