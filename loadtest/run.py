"""One Locust run in this process (locust as a library): N simulated clients for T seconds, with
CSV and HTML reports, per-window latency and a resource monitor."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import constant, constant_throughput
from locust.env import Environment
from locust.html import get_html_report
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadtest.monitor import ResourceMonitor
from loadtest.payloads import Payload
from loadtest.users import PhotoClient, shed


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Windows:
    """Response times and failures per `width`-second window of the run (for "p99 stable")."""

    width: float
    start: float = field(default_factory=time.monotonic)
    times: dict[int, list[float]] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)

    def record(self, response_time: float, failed: bool) -> None:
        index = int((time.monotonic() - self.start) // self.width)
        self.times.setdefault(index, []).append(response_time)
        if failed:
            self.failures[index] = self.failures.get(index, 0) + 1

    def table(self) -> list[dict[str, float]]:
        return [{"window_start_s": i * self.width, "requests": len(t),
                 "rps": len(t) / self.width, "p50_ms": percentile(t, 0.5),
                 "p99_ms": percentile(t, 0.99), "failures": self.failures.get(i, 0)}
                for i, t in sorted(self.times.items())]


def run_load(url: str, mix: list[Payload], *, users: int, seconds: float, out_dir: Path,
             name: str, rate: float | None = None, pids: dict[str, int] | None = None,
             window: float = 60.0, html: bool = True,
             ca_cert: str | None = None) -> dict[str, Any]:
    """`users` clients for `seconds`; closed loop (each sends its next request when the last is
    answered) unless `rate` (requests/s for all clients together) paces them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    PhotoClient.mix = mix
    PhotoClient.ca_cert = ca_cert
    shed.clear()
    PhotoClient.wait_time = constant_throughput(rate / users) if rate else constant(0)
    environment = Environment(user_classes=[PhotoClient], host=url)
    windows = Windows(window)
    errors: dict[str, int] = {}

    def on_request(request_type, name, response_time, response_length, exception=None,
                   **_: Any) -> None:
        windows.record(response_time, exception is not None)
        if exception is not None:
            key = f"{name}: {str(exception)[:160]}"
            errors[key] = errors.get(key, 0) + 1

    environment.events.request.add_listener(on_request)
    runner = environment.create_local_runner()
    csv_writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT,
                                    str(out_dir / name), full_history=False)
    writer = gevent.spawn(csv_writer.stats_writer)
    monitor = ResourceMonitor(pids or {}, every=5.0).start()
    started = time.monotonic()
    runner.start(users, spawn_rate=max(users, 1))
    gevent.sleep(seconds)
    runner.quit()  # stops users; requests in flight finish (or time out) first
    elapsed = time.monotonic() - started
    monitor.stop()
    gevent.sleep(0.1)
    writer.kill()
    for flush in (csv_writer.requests_flush, csv_writer.stats_history_flush,
                  csv_writer.failures_flush, csv_writer.exceptions_flush):
        flush()  # the whole run's numbers, whatever the periodic writer last wrote
    csv_writer.close_files()
    if html:
        (out_dir / f"{name}.html").write_text(get_html_report(environment))
    if pids:
        monitor.write_csv(out_dir / f"{name}_resources.csv")
    total = environment.stats.total
    return {
        "name": name, "url": url, "users": users, "seconds": round(elapsed, 1),
        "target_rate": rate, "requests": total.num_requests, "failures": total.num_failures,
        "rps": round(total.num_requests / elapsed, 2) if elapsed else 0.0,
        "p50_ms": total.get_response_time_percentile(0.5),
        "p95_ms": total.get_response_time_percentile(0.95),
        "p99_ms": total.get_response_time_percentile(0.99),
        "max_ms": round(total.max_response_time or 0),
        "errors": dict(sorted(errors.items(), key=lambda item: -item[1])[:20]),
        "shed": sum(shed.values()),  # answered 429 uploads_busy: not failures (users.SHED)
        "by_payload": {key[0]: {"requests": s.num_requests, "failures": s.num_failures,
                                "p50_ms": s.get_response_time_percentile(0.5),
                                "p99_ms": s.get_response_time_percentile(0.99)}
                       for key, s in sorted(environment.stats.entries.items())},
        "windows": windows.table(),
        "_monitor": monitor,
    }
