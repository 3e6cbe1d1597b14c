"""Which version label answers a prediction: stable, a canary share, and shadow comparisons.

The plan comes from a small JSON file (ROLLOUT_FILE) that scripts/model-rollout writes beside the
model server's config file, atomically, whenever it changes the version labels:

    {"canary_percent": 10, "shadow_percent": 0}

Its presence means "the model config has version labels": single predictions then ask for
`stable`, `canary_percent` % of them for `canary`, and `shadow_percent` % of stable's are also sent
to `canary` off the response path and compared. No file (the default): no labels, requests ask for
the newest version (or MODEL_VERSION) as before. The file is re-read at most once a second when its
modification time changes; a file that cannot be read or is invalid keeps the last good plan (the
error is logged and counted). The API learns the plan this way, not through an endpoint, so that
nothing new is reachable from public hosts (docs/model-rollout.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

STABLE, CANARY = "stable", "canary"
RELOAD_EVERY_SECONDS = 1.0


class RolloutPlan(BaseModel):
    """The rollout file's contents."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    canary_percent: float = Field(0.0, ge=0.0, le=100.0,
                                  description="share of single predictions answered by canary")
    shadow_percent: float = Field(0.0, ge=0.0, le=100.0,
                                  description="share of stable's predictions also sent to canary, "
                                              "compared, never answered")


def choose_label(plan: RolloutPlan, draw: float) -> str:
    """stable or canary for one prediction; `draw` is uniform in [0, 1). Pure."""
    return CANARY if draw * 100.0 < plan.canary_percent else STABLE


def should_shadow(plan: RolloutPlan, draw: float) -> bool:
    return draw * 100.0 < plan.shadow_percent


@dataclass(frozen=True)
class Comparison:
    agreed: bool  # the same top class
    max_abs_difference: float  # largest |p_stable - p_canary| over the classes


def compare(stable: np.ndarray, canary: np.ndarray) -> Comparison:
    """Two softmax rows of one photo. Pure."""
    return Comparison(agreed=int(np.argmax(stable)) == int(np.argmax(canary)),
                      max_abs_difference=float(np.max(np.abs(stable - canary))))


class RolloutFile:
    """The plan in force: the file's last good contents, re-read when it changes."""

    def __init__(self, path: Path | None, on_error: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._on_error = on_error
        self._clock = clock
        self._plan: RolloutPlan | None = None
        self._checked_at = float("-inf")
        self._mtime: int | None = None

    def plan(self) -> RolloutPlan | None:
        """None: no rollout file, no labels."""
        if self.path is None:
            return None
        now = self._clock()
        if now - self._checked_at >= RELOAD_EVERY_SECONDS:
            self._checked_at = now
            self._reload()
        return self._plan

    def _reload(self) -> None:
        assert self.path is not None
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            if self._plan is not None:
                log.info("rollout file %s removed: no version labels", self.path)
            self._plan, self._mtime = None, None
            return
        except OSError as error:
            self._refuse(f"unreadable: {error}")
            return
        if mtime == self._mtime:
            return
        try:
            plan = RolloutPlan.model_validate(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, ValidationError) as error:
            self._mtime = mtime  # refused once, not on every request
            self._refuse(str(error))
            return
        self._mtime = mtime
        if plan != self._plan:
            log.info("rollout plan: canary %g %%, shadow %g %%", plan.canary_percent,
                     plan.shadow_percent)
        self._plan = plan

    def _refuse(self, why: str) -> None:
        self._on_error()
        log.error("rollout file %s refused, the last good plan stays: %s", self.path, why)


class ShadowTasks:
    """Shadow calls run as tasks off the response path, at most `limit` at once: one more is
    dropped (and counted), never queued, so shadowing cannot slow or fail a farmer's answer."""

    def __init__(self, limit: int, on_drop: Callable[[], None] = lambda: None) -> None:
        self.limit = limit
        self._on_drop = on_drop
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, work: Callable[[], Awaitable[None]]) -> bool:
        if len(self._tasks) >= self.limit:
            self._on_drop()
            return False
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    @staticmethod
    async def _guarded(work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except Exception:  # a shadow failure is counted by `work`; it never reaches a client
            log.exception("shadow comparison failed")

    async def drain(self) -> None:
        """Wait for the running shadow calls (shutdown, tests)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def uniform() -> float:
    return random.random()  # traffic splitting: no need for a secure generator
