"""SIGTERM and SIGINT stop the server within a second or two, with exit status 0."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.model_server import start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_quickly(logs_dir, signum):
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir)
    try:
        started = time.monotonic()
        server.process.signal(signum)
        returncode = server.process.proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        log = server.process.log()
    finally:
        server.stop()
    assert returncode == 0, log[-2000:]
    assert elapsed < 2.5, f"took {elapsed:.2f}s to stop"
    assert "Server stopped." in log
