"""run-local's terminal hides start-up lines that look like failures but are normal here (lines
as TensorFlow and the API really print them), and nothing else."""

from __future__ import annotations

import pytest

from run_local.noise import is_startup_noise

HIDDEN = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796652899.264145   14715 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796652899.279324   14715 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "E0000 00:00:1796652910.559460   15508 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]
SHOWN = [
    "2026-12-07 14:15:10.971441: I model_server/manager.py:212] Successfully loaded servable "
    "version {name: cassava version: 1}",
    "E0000 00:00:1796652910.559460   15508 loader.cc:1] Failed to load the SavedModel",
    "Traceback (most recent call last):",
]


@pytest.mark.parametrize("line", HIDDEN)
def test_tensorflow_start_up_notices_are_hidden(line: str) -> None:
    assert is_startup_noise("model-server", line, ready=False)


@pytest.mark.parametrize("line", SHOWN)
def test_real_news_is_shown(line: str) -> None:
    assert not is_startup_noise("model-server", line, ready=False)


def test_readyz_503_is_hidden_only_while_the_api_starts() -> None:
    line = '2026-12-07 14:15:12 INFO app.access GET /readyz 503 2.1 ms'
    assert is_startup_noise("api", line, ready=False)
    assert not is_startup_noise("api", line, ready=True)  # after start-up it is news
    assert not is_startup_noise("api", line.replace("/readyz", "/predict/image"), ready=False)
