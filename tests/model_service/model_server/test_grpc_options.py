"""grpcio's server options: TF Serving's message sizes, the limits it lacks, overrides that win."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.tfserving import client
from model_server import flags, grpc_options


def options(**overrides: int | str) -> dict[str, int | str]:
    return dict(grpc_options.server_options(grpc_options.DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
                                            overrides))


def test_messages_the_api_may_send_are_accepted_and_bombs_are_not():
    received = options()["grpc.max_receive_message_length"]
    assert client.MAX_SEND_MESSAGE_BYTES <= received <= 64 * 1024 * 1024
    assert options()["grpc.max_send_message_length"] == 2**31 - 1  # TF Serving's INT32_MAX


def test_the_apis_keepalive_pings_are_never_struck():
    """A client pinging more often than the server's minimum gets GOAWAY too_many_pings."""
    assert options()["grpc.http2.min_ping_interval_without_data_ms"] <= client.KEEPALIVE_TIME_MS


@pytest.mark.parametrize("name", ["grpc.max_concurrent_streams", "grpc.max_connection_idle_ms",
                                  "grpc.max_connection_age_ms", "grpc.max_connection_age_grace_ms",
                                  "grpc.server_handshake_timeout_ms"])
def test_limits_grpc_leaves_unbounded_are_set(name):
    assert 0 < options()[name] < 2**31 - 1


def test_connection_age_grace_outlasts_a_call():
    """A connection aged out lets its calls finish: the grace exceeds the API's call deadline."""
    deadline = Settings.model_fields["MODEL_DEADLINE_SECONDS"].default
    assert options()["grpc.max_connection_age_grace_ms"] > deadline * 1000


def test_channel_arguments_flag_overrides_the_defaults():
    parsed = flags.channel_arguments("grpc.max_connection_age_ms=1000,grpc.primary_user_agent=x")
    assert parsed == {"grpc.max_connection_age_ms": 1000, "grpc.primary_user_agent": "x"}
    assert options(**parsed)["grpc.max_connection_age_ms"] == 1000
    assert flags.channel_arguments("big=4294967296") == {"big": "4294967296"}  # not an int32
    assert flags.channel_arguments("") == {}


@pytest.mark.parametrize("text", ["grpc.max_connection_age_ms", "=1"])
def test_malformed_channel_arguments_are_refused(text):
    with pytest.raises(flags.FlagError):
        flags.channel_arguments(text)
