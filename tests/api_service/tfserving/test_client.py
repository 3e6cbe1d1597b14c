"""TFServingClient over a real channel to the real model server: discovery, versions, options."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import pytest

from app.imaging import image_to_tensor
from app.labels import load_labels
from app.prediction_service import PredictionService
from app.tfserving.client import (
    ModelFailed,
    ModelTimeout,
    ModelUnavailable,
    TFServingClient,
    channel_options,
    error_for,
    service_config,
)
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SEED_LABELS, SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.waiting import wait_until_async


def test_retry_policy_retries_only_unavailable() -> None:
    (method,) = service_config(3)["methodConfig"]
    assert {n["service"] for n in method["name"]} == {"tensorflow.serving.PredictionService",
                                                      "tensorflow.serving.ModelService"}
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 3
    assert method["waitForReady"] is False  # a dead server must give a fast 503, not a hang
    assert "retryPolicy" not in service_config(1)["methodConfig"][0]


def test_channel_options_tf_serving_accepts() -> None:
    options = dict(channel_options(3))
    assert options["grpc.enable_retries"] == 1
    assert json.loads(options["grpc.service_config"]) == service_config(3)
    # gRPC servers (TF Serving included) GOAWAY clients pinging more often than every 5 min.
    assert options["grpc.keepalive_time_ms"] >= 300_000
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.max_reconnect_backoff_ms"] <= 5_000


def test_a_silent_replica_is_dropped_within_one_call_deadline() -> None:
    # The keepalive timeout is also the sockets' TCP_USER_TIMEOUT: a replica whose node vanished
    # must be dropped from round_robin before a second call's deadline (5 s) runs out on it.
    options = dict(channel_options(4, attempt_timeout=1.5))
    assert options["grpc.keepalive_time_ms"] != 2**31 - 1  # setting it enables TCP_USER_TIMEOUT
    assert 1_500 < options["grpc.keepalive_timeout_ms"] < 5_000


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.UNAVAILABLE, ModelUnavailable), (grpc.StatusCode.NOT_FOUND, ModelUnavailable),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ModelUnavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, ModelTimeout),
    (grpc.StatusCode.INVALID_ARGUMENT, ModelFailed), (grpc.StatusCode.INTERNAL, ModelFailed),
])
def test_grpc_status_classification(code: grpc.StatusCode, kind: type) -> None:
    assert type(error_for(code, "details")) is kind


def seed_client(server: RunningModelServer, **kwargs: object) -> TFServingClient:
    return TFServingClient(server.grpc_target, SEED_MODEL_NAME, **kwargs)


@pytest.mark.slow
@pytest.mark.anyio
async def test_signature_discovered_from_metadata(seed_model_server: RunningModelServer) -> None:
    client = seed_client(seed_model_server)
    try:
        signature = await client.signature()
        assert (signature.input_name, signature.output_name) == ("conv2d_4_input", "dense_3")
        assert (signature.height, signature.width, signature.num_classes) == (150, 150, 5)
        assert (signature.model_name, signature.version) == (SEED_MODEL_NAME, 1)
        assert await client.available_versions() == [1]
    finally:
        await client.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_pinned_version(seed_model_server: RunningModelServer,
                              leaf_photo_paths: list[Path]) -> None:
    image = image_to_tensor(leaf_photo_paths[0].read_bytes(), height=150, width=150,
                            max_pixels=10**8)
    pinned = seed_client(seed_model_server, version=1)
    missing = seed_client(seed_model_server, version=2)
    try:
        output = await pinned.predict(await pinned.signature(), image)
        assert output.version == 1 and output.values.shape == (5,)
        with pytest.raises(ModelUnavailable):  # TF Serving: NOT_FOUND for an unserved version
            await missing.signature()
    finally:
        await pinned.close()
        await missing.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_new_model_version_refreshes_the_cached_signature(
        tmp_path: Path, logs_dir: Path, leaf_photo_paths: list[Path]) -> None:
    repository = tmp_path / SEED_MODEL_NAME
    shutil.copytree(SEED_MODEL_BASE_PATH / "1", repository / "1")
    server = start_model_server(SEED_MODEL_NAME, repository, logs_dir,
                                "--file_system_poll_wait_seconds=1")
    client = seed_client(server)
    image = image_to_tensor(leaf_photo_paths[0].read_bytes(), height=150, width=150,
                            max_pixels=10**8)
    try:
        first = await client.predict(await client.signature(), image)
        assert first.version == 1

        shutil.copytree(SEED_MODEL_BASE_PATH / "1", repository / "2")
        async def only_version_2() -> bool:
            return await client.available_versions() == [2]

        try:
            await wait_until_async(only_version_2, 30, "version 2 as the only AVAILABLE one")
        except TimeoutError as error:
            pytest.fail(f"{error}:\n{server.process.log()}")

        # The first reply from version 2 reveals the change; the next lookup refetches metadata.
        stale = await client.signature()
        assert stale.version == 1
        second = await client.predict(stale, image)
        assert second.version == 2
        fresh = await client.signature()
        assert fresh.version == 2
        assert sorted(client._signatures) == [1, 2]
        np.testing.assert_allclose(second.values, first.values, atol=1e-6)
    finally:
        await client.close()
        server.stop()


T = TypeVar("T")


class RecordingPool(ThreadPoolExecutor):
    """A real thread pool that remembers which functions it ran, and on which threads."""

    def __init__(self) -> None:
        super().__init__(2, thread_name_prefix="decode")
        self.ran: list[str] = []

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        def run() -> T:
            target = inspect.unwrap(fn)  # through the API's wrappers (prediction_service)
            self.ran.append(
                f"{getattr(target, 'func', target).__name__}@{threading.current_thread().name}")
            return fn(*args, **kwargs)
        return super().submit(run)


@pytest.mark.slow
@pytest.mark.anyio
async def test_decoding_runs_in_the_worker_pool(seed_model_server: RunningModelServer,
                                                leaf_photo_paths: list[Path]) -> None:
    client = seed_client(seed_model_server)
    pool = RecordingPool()
    service = PredictionService(client, load_labels(SEED_LABELS), pool, max_pixels=10**8,
                          low_confidence_threshold=0.5)
    try:
        photos = [path.read_bytes() for path in leaf_photo_paths]
        replies = await asyncio.gather(*(service.predict(p, f"r{i}")
                                         for i, p in enumerate(photos)))
        assert [r.request_id for r in replies] == [f"r{i}" for i in range(len(photos))]
        assert len(pool.ran) == len(photos)
        assert all(entry.startswith("image_to_tensor@decode") for entry in pool.ran)
    finally:
        await client.close()
        pool.shutdown()
