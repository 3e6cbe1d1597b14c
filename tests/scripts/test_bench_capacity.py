"""scripts/bench-capacity's core split (--model-cpus): which processes it moves, and that every
thread of them moves (no stack started, no load sent)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import REPO_ROOT

# A child with a second thread: affinity is per thread, so pinning only the pid would miss it.
TWO_THREADS = ("import threading, time\n"
               "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
               "print('up', flush=True)\n"
               "time.sleep(60)\n")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(
        "bench_capacity", str(REPO_ROOT / "scripts" / "bench-capacity"))
    spec = importlib.util.spec_from_loader("bench_capacity", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_tree_is_a_process_and_its_descendants_only(bench: ModuleType) -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 21: 20}
    assert sorted(bench._tree((parents, {}), 10)) == [10, 11, 12]
    assert bench._tree((parents, {}), 12) == [12]


def test_pin_moves_every_thread(bench: ModuleType) -> None:
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to pin apart")
    target = {min(cpus)}
    with subprocess.Popen([sys.executable, "-c", TWO_THREADS], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout.readline() == "up\n"
            tasks = [int(task.name) for task in Path(f"/proc/{child.pid}/task").iterdir()]
            assert len(tasks) == 2
            assert all(os.sched_getaffinity(task) == cpus for task in tasks)
            bench.pin([child.pid], target)
            assert all(os.sched_getaffinity(task) == target for task in tasks)
        finally:
            child.kill()


def test_the_split_must_leave_cpus_for_the_rest(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="must leave CPUs"):
        bench.split_cores({}, set(os.sched_getaffinity(0)))
