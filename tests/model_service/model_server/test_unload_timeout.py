"""A hung inference cannot block a new version forever: the poller's unload of the old version
waits --servable_unload_timeout_seconds for running requests, then frees the version anyway."""

from __future__ import annotations

import threading
from pathlib import Path

from tensorflow.core.protobuf import meta_graph_pb2

from model_server.config import ModelConfig
from model_server.manager import AVAILABLE, END, ModelVersions, Spec
from model_server.servable import Servable
from tests.support.waiting import wait_until


class RecordingSession:
    """Stands in for the tf.Session: the test is about waiting, not about TensorFlow."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def make_servable(name: str, version: int, path: Path) -> Servable:
    return Servable(name, version, path, RecordingSession(), meta_graph_pb2.MetaGraphDef())


def publish(base: Path, version: int) -> None:
    (base / str(version)).mkdir(parents=True)
    (base / str(version) / "saved_model.pb").write_bytes(b"")


def test_servable_unload_gives_up_waiting_after_its_timeout(tmp_path: Path) -> None:
    servable = make_servable("m", 1, tmp_path)
    assert servable.acquire()  # a request that never finishes
    assert servable.unload(timeout=0.1) is False
    assert servable.session.closed.is_set()
    assert servable.acquire() is False  # no new request gets the closed version


def test_a_hung_request_does_not_block_the_next_version(tmp_path: Path) -> None:
    publish(tmp_path, 1)
    model = ModelVersions(ModelConfig("m", tmp_path), make_servable, threading.Event(),
                          unload_timeout=0.2)
    model.poll_once()
    hung = model.hold(Spec("m"))
    old = hung.__enter__()  # held and never released, like a hung inference
    publish(tmp_path, 2)
    poller = threading.Thread(target=model.poll_once)
    poller.start()
    poller.join(60)  # without the timeout this poll would wait for the hung request forever
    assert not poller.is_alive()
    assert {s.version: s.state for s in model.statuses()} == {2: AVAILABLE, 1: END}
    assert old.session.closed.is_set()


def test_a_model_removed_from_the_config_is_unloaded(tmp_path: Path) -> None:
    publish(tmp_path, 1)
    model = ModelVersions(ModelConfig("m", tmp_path), make_servable, threading.Event())
    poller = threading.Thread(target=model.run, args=(3600,))
    poller.start()
    wait_until(lambda: model.available_versions() == {1}, 30, "version 1 loaded")
    loaded = model.statuses()[0].servable
    model.retire()
    poller.join(30)
    assert not poller.is_alive()
    assert {s.version: s.state for s in model.statuses()} == {1: END}
    assert loaded.session.closed.is_set()
