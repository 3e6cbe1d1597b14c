"""--model_config_file re-read: a refused file keeps the last good config, is logged and counted
once (not on every poll), and counts again when it comes back after a good one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from model_server import monitoring
from model_server.config import ModelConfig
from model_server.manager import ModelRegistry, ModelVersions
from model_server.reload import ConfigReloader

GOOD = 'model_config_list { config { name: "m" base_path: "%s" } }\n'


def refusals() -> float:
    return monitoring.REGISTRY.get_sample_value("model_server_config_reload_failures_total") or 0


def test_a_refused_file_is_counted_once_and_the_good_config_stays(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"")
    path = tmp_path / "models.config"
    registry = ModelRegistry()
    started: list[ModelVersions] = []

    def make(config: ModelConfig) -> ModelVersions:
        return ModelVersions(config, lambda *_: None, threading.Event())

    reloader = ConfigReloader(path, registry, make, started.append, False)
    path.write_text(GOOD % base)
    assert reloader.reload_once()
    assert list(registry.models) == ["m"] and len(started) == 1

    before = refusals()
    path.write_text("model_config_list { config { name: ")
    assert not reloader.reload_once()
    assert not reloader.reload_once()  # the same file on the next poll: not counted again
    assert refusals() == before + 1
    assert "Failed to reload the model config" in caplog.text
    assert list(registry.models) == ["m"]  # the last good config stays

    garbage = GOOD % (tmp_path / "absent") + "garbage"
    path.write_text(garbage)
    assert not reloader.reload_once()
    assert refusals() == before + 2

    path.write_text(GOOD % base)  # back to the config in force
    assert reloader.reload_once()
    path.write_text(garbage)
    assert not reloader.reload_once()  # the same bad file again, after a good one: counted
    assert refusals() == before + 3
    assert len(started) == 1 and list(registry.models) == ["m"]
