"""SIGTERM and SIGINT stop the server by itself: its own shutdown runs to the end ("Server
stopped.") and it exits 0, within the 10 s a supervisor gives before SIGKILL."""

from __future__ import annotations

import signal

import pytest

from tests.support.model_server import start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME

pytestmark = pytest.mark.slow
# docker-compose.yml's stop_grace_period (and Kubernetes' default is 30 s): the bound that
# matters. The server's own waits add up to 2.5 s (main.py: gRPC grace 0.5 s, REST 1 s, then at
# most 1 s more), so this leaves a 4x margin for a loaded machine; the time is not the point.
SUPERVISOR_GRACE_SECONDS = 10


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_quickly(logs_dir, signum):
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir)
    try:
        server.process.signal(signum)
        returncode = server.process.proc.wait(timeout=SUPERVISOR_GRACE_SECONDS)
        log = server.process.log()
    finally:
        server.stop()
    assert returncode == 0, log[-2000:]
    assert "Server stopped." in log
