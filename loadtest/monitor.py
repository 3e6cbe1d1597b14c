"""RSS and open file descriptors of the stack's processes (each with its children), sampled
while a load runs; the soak verdict (growth after warm-up) is computed from the samples."""

from __future__ import annotations

import csv
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def tree_usage(pid: int) -> tuple[int, int]:
    """(RSS bytes, open fds) of a process and all its descendants."""
    root = psutil.Process(pid)
    rss = fds = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            rss += process.memory_info().rss
            fds += process.num_fds()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss, fds


@dataclass
class Sample:
    at: float  # seconds since the start
    service: str
    rss: int
    fds: int


@dataclass
class ResourceMonitor:
    """Samples every `every` seconds in a thread (a greenlet under Locust's monkey patching)."""

    pids: dict[str, int]
    every: float = 5.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        for _ in range(10**6):  # bounded; stop() ends it long before
            self.sample()
            if self._stop.wait(self.every):
                return

    def sample(self) -> None:
        at = time.monotonic() - self._start
        for service, pid in self.pids.items():
            try:
                rss, fds = tree_usage(pid)
            except psutil.Error:
                continue  # down right now (a fault scenario): a gap, not a zero
            self.samples.append(Sample(at, service, rss, fds))

    def start(self) -> ResourceMonitor:
        if self.pids:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.pids:
            self.sample()

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["seconds", "service", "rss_bytes", "open_fds"])
            for s in self.samples:
                writer.writerow([f"{s.at:.1f}", s.service, s.rss, s.fds])

    def growth(self, warmup: float) -> dict[str, dict[str, float]]:
        """Per service: RSS and fds right after warm-up (median of the first three samples
        after it) against the end (median of the last three), and the peak."""
        report = {}
        for service in self.pids:
            mine = [s for s in self.samples if s.service == service]
            after = [s for s in mine if s.at >= warmup]
            if len(after) < 2:
                continue
            head, tail = after[:3], after[-3:]
            start_rss = statistics.median(s.rss for s in head)
            end_rss = statistics.median(s.rss for s in tail)
            report[service] = {
                "rss_after_warmup_mib": start_rss / 2**20,
                "rss_end_mib": end_rss / 2**20,
                "rss_peak_mib": max(s.rss for s in mine) / 2**20,
                "rss_growth_pct": 100.0 * (end_rss - start_rss) / start_rss,
                "fds_after_warmup": statistics.median(s.fds for s in head),
                "fds_end": statistics.median(s.fds for s in tail),
                "fds_growth": statistics.median(s.fds for s in tail)
                - statistics.median(s.fds for s in head),
            }
        return report
