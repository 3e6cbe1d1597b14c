"""TFServingClient over real gRPC channels to several replicas: round_robin spreads calls evenly,
and a call a replica answers UNAVAILABLE is retried on another replica (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from app.tfserving.client import ModelUnavailable, TFServingClient, channel_options, service_config
from app.tfserving.protos import predict_pb2, prediction_service_pb2_grpc
from app.tfserving.signature import Signature
from app.tfserving.tensors import to_tensor_proto

SIGNATURE = Signature(model_name="cassava", version=1, name="serving_default", input_name="x",
                      height=150, width=150, output_name="y", num_classes=2)
# The cassava model's input size: 270 kB, more than gRPC's default per-call retry buffer
# (256 KiB), past which a call is committed and never retried.
IMAGE = np.zeros((1, 150, 150, 3), dtype=np.float32)
CALLS = 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_round_robin_is_the_default_policy() -> None:
    assert service_config(3)["loadBalancingConfig"] == [{"round_robin": {}}]
    assert service_config(3, "pick_first")["loadBalancingConfig"] == [{"pick_first": {}}]
    options = dict(channel_options(3, "pick_first"))
    assert json.loads(options["grpc.service_config"]) == service_config(3, "pick_first")


class Replica(prediction_service_pb2_grpc.PredictionServiceServicer):
    """A model-server replica that counts its Predict calls; `down` answers UNAVAILABLE."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.hung = False  # accepts calls and never answers: a node cut off mid-call

    async def Predict(self, request: predict_pb2.PredictRequest,
                      context: grpc.aio.ServicerContext) -> predict_pb2.PredictResponse:
        self.calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "replica going away")
        if self.hung:
            await asyncio.sleep(3600)
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = request.model_spec.name
        reply.model_spec.version.value = 1
        reply.outputs["y"].CopyFrom(to_tensor_proto(np.array([[0.25, 0.75]], np.float32)))
        return reply


@dataclass
class Replicas:
    replicas: list[Replica]
    target: str  # one gRPC target resolving to every replica, as DNS of tasks.<service> does


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    servers, replicas, addresses = [], [], []
    for _ in range(3):
        server = grpc.aio.server()
        replica = Replica()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(replica, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        replicas.append(replica)
        addresses.append(f"127.0.0.1:{port}")
    try:
        yield Replicas(replicas, "ipv4:" + ",".join(addresses))
    finally:
        for server in servers:
            await server.stop(None)


async def predict_many(client: TFServingClient, count: int) -> None:
    for _ in range(count):
        output = await client.predict(SIGNATURE, IMAGE)
        assert output.values.tolist() == [0.25, 0.75]


@pytest.mark.anyio
async def test_calls_spread_evenly_over_replicas(replicas: Replicas) -> None:
    client = TFServingClient(replicas.target, "cassava")
    try:
        await predict_many(client, CALLS)
    finally:
        await client.close()
    counts = [replica.calls for replica in replicas.replicas]
    even = CALLS / len(counts)
    assert sum(counts) == CALLS
    assert all(abs(count - even) <= 0.25 * even for count in counts), counts


@pytest.mark.anyio
async def test_pick_first_pins_one_replica(replicas: Replicas) -> None:
    """The contrast: without round_robin one replica takes every call."""
    client = TFServingClient(replicas.target, "cassava", lb_policy="pick_first")
    try:
        await predict_many(client, 30)
    finally:
        await client.close()
    assert sorted(replica.calls for replica in replicas.replicas) == [0, 0, 30]


@pytest.mark.anyio
async def test_unavailable_is_retried_on_another_replica(replicas: Replicas) -> None:
    replicas.replicas[0].down = True
    client = TFServingClient(replicas.target, "cassava", retry_attempts=3)
    try:
        await predict_many(client, 30)  # every call succeeds: retries skip the replica going away
    finally:
        await client.close()
    assert replicas.replicas[0].calls > 0  # it was tried, and its calls were retried elsewhere
    assert replicas.replicas[1].calls + replicas.replicas[2].calls == 30


@pytest.mark.anyio
async def test_without_retries_unavailable_reaches_the_caller(replicas: Replicas) -> None:
    replicas.replicas[0].down = True
    client = TFServingClient(replicas.target, "cassava", retry_attempts=1)
    try:
        with pytest.raises(ModelUnavailable):
            await predict_many(client, 30)
    finally:
        await client.close()


@pytest.mark.anyio
async def test_reopened_channel_reaches_replicas_added_since(replicas: Replicas) -> None:
    """gRPC resolves a target again only when a connection closes; the reopened channel
    resolves afresh. Here the target's answer changes as DNS does when replicas are added."""
    first = replicas.target.removeprefix("ipv4:").split(",")[0]
    client = TFServingClient(f"ipv4:{first}", "cassava", reopen_seconds=0.2)
    try:
        await predict_many(client, 10)
        assert [replica.calls for replica in replicas.replicas] == [10, 0, 0]
        client.address = replicas.target  # the name now resolves to three replicas
        await asyncio.sleep(0.3)
        await predict_many(client, 30)
    finally:
        await client.close()
    assert all(replica.calls >= 5 for replica in replicas.replicas[1:]), \
        [replica.calls for replica in replicas.replicas]


@pytest.mark.anyio
async def test_no_reopen_by_default_keeps_the_first_resolution(replicas: Replicas) -> None:
    first = replicas.target.removeprefix("ipv4:").split(",")[0]
    client = TFServingClient(f"ipv4:{first}", "cassava")
    try:
        await predict_many(client, 5)
        client.address = replicas.target
        await asyncio.sleep(0.3)
        await predict_many(client, 10)
    finally:
        await client.close()
    assert [replica.calls for replica in replicas.replicas] == [15, 0, 0]


@pytest.mark.anyio
async def test_an_attempt_that_hangs_is_retried_on_another_replica(replicas: Replicas) -> None:
    replicas.replicas[0].hung = True
    # The fakes answer in well under a millisecond: a 0.5 s attempt timeout is a margin of
    # hundreds for a loaded machine, and the deadline leaves room for every detour.
    client = TFServingClient(replicas.target, "cassava", deadline=30.0, attempt_timeout=0.5)
    try:
        await predict_many(client, 9)  # every call succeeds, a few after a 0.5 s detour
    finally:
        await client.close()
    assert replicas.replicas[0].calls > 0
    # Each of the 9 answered by a healthy replica (one more only if a loaded machine stalled an
    # attempt past its timeout, which is then retried, as it should be).
    assert replicas.replicas[1].calls + replicas.replicas[2].calls >= 9
