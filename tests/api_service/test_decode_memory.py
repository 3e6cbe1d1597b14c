"""The decode memory budget, end to end: a burst of small-file giants keeps the API's RSS bounded,
and the memory is given back afterwards (issue 14: ~1 GB per 95 KB PNG, never returned)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.api_service.conftest import FIELD, api_env, start_api
from tests.support.images import zeros_png

pytestmark = pytest.mark.slow

MIB = 2**20
BUDGET = 512 * MIB  # the default DECODE_MEMORY_BYTES
# Python, FastAPI, gRPC and the multipart copies of the burst's small bodies on top of the budget.
OVERHEAD = 160 * MIB
RETURNED_WITHIN = 64 * MIB


class RssSampler:
    """The peak RSS of one process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        for _ in range(30_000):  # at most 10 minutes
            if self._stop.wait(0.02):
                return
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def settled_rss(pid: int, *, above: int, timeout: float = 20.0) -> int:
    """RSS once it has come down to `above` + RETURNED_WITHIN, or the last value after timeout."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    rss = process.memory_info().rss
    while rss - above > RETURNED_WITHIN and time.monotonic() < deadline:
        time.sleep(0.25)
        rss = process.memory_info().rss
    return rss


def test_a_burst_of_16_bit_giants_stays_within_the_budget_and_is_returned(
        seed_model_server, logs_dir: Path, leaf_photo_paths: list[Path]) -> None:
    # 6000x6000 16-bit grey: 72 KB on the wire, 36 MP (under the pixel cap), about 470 MiB to
    # decode: each fits the budget alone, two at once do not.
    giant = zeros_png(6000, 6000, 16, 0)
    assert len(giant) < 100_000
    photo = leaf_photo_paths[0].read_bytes()
    server = start_api(logs_dir, api_env(seed_model_server, DECODE_WORKERS=2),
                       name="api-decode-memory")
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            for _ in range(5):  # warm-up: imports, channel, first allocations
                assert client.post("/predict/image", files={FIELD: ("l.jpg", photo)}
                                   ).status_code == 200
            baseline = psutil.Process(server.process.pid).memory_info().rss

            def send(_: int) -> int:
                return client.post("/predict/image", files={FIELD: ("g.png", giant)}).status_code

            with RssSampler(server.process.pid) as sampler, ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(send, range(8)))
            # All-black: decoded (the memory was spent), then refused as blank; or 503 when a
            # giant waited longer than DECODE_WAIT_SECONDS. Never a 5xx of another kind.
            assert set(statuses) <= {422, 503}, statuses
            assert statuses.count(422) >= 1, statuses
            growth = sampler.peak - baseline
            assert growth <= BUDGET + OVERHEAD, (
                f"RSS grew {growth / MIB:.0f} MiB during the burst (budget {BUDGET / MIB:.0f})")
            after = settled_rss(server.process.pid, above=baseline)
            assert after - baseline <= RETURNED_WITHIN, (
                f"{(after - baseline) / MIB:.0f} MiB not returned after the burst")
            assert client.post("/predict/image", files={FIELD: ("l.jpg", photo)}
                               ).status_code == 200
    finally:
        server.stop()
