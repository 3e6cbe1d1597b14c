"""grpcio's server options, set the way TF Serving sets its own, with safer defaults.

TF Serving builds its server with gRPC's ServerBuilder (model_servers/server.cc): max message size
INT32_MAX both ways, gRPC's default keepalive enforcement, and whatever `--grpc_channel_arguments`
adds. This server does the same with grpcio, with limits where TF Serving's defaults let one client
hurt the process (docs/model-server.md); `--grpc_channel_arguments` overrides any of them, as on
TF Serving. Pure: no gRPC import, so the fast tests check it.
"""

from __future__ import annotations

from collections.abc import Mapping

# What a request message may inflate to. gRPC checks it on the wire and again while it
# decompresses (it stops inflating there), so a gzip bomb costs at most this much memory.
# TF Serving allows INT32_MAX (2 GiB): a 1 MB gzip request then inflates to 1 GiB before the
# protobuf parse fails. The API never sends more than 32 MiB (its own send cap).
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_SEND_MESSAGE_BYTES = 2**31 - 1  # replies are ours: TF Serving's INT32_MAX

# Channel arguments applied before the user's --grpc_channel_arguments (which win). The names
# are gRPC core's (include/grpc/impl/channel_arg_names.h).
SERVER_ARGUMENTS: dict[str, int] = {
    # HTTP/2's recommended minimum; further calls wait in the client, they do not fail.
    "grpc.max_concurrent_streams": 100,
    # Keepalive enforcement: client pings are accepted every 60 s or slower during calls (gRPC's
    # default is 5 min). The API pings every 5 min, only during calls, so it is never struck.
    "grpc.http2.min_ping_interval_without_data_ms": 60_000,
    "grpc.http2.max_ping_strikes": 2,
    # The server's own pings find peers that vanished without a FIN (default: 2 hours).
    "grpc.keepalive_time_ms": 120_000,
    "grpc.keepalive_timeout_ms": 20_000,
    # A connection without calls for 5 min is closed with GOAWAY (a gRPC client reconnects on
    # its next call without failing it); one that never completes its handshake after 20 s.
    "grpc.max_connection_idle_ms": 300_000,
    "grpc.server_handshake_timeout_ms": 20_000,
    # Every connection ends after ~10 min (+-10 % jitter, gRPC's), so clients re-resolve and
    # spread over replicas behind a load balancer; calls in flight get 30 s to finish.
    "grpc.max_connection_age_ms": 600_000,
    "grpc.max_connection_age_grace_ms": 30_000,
    # Two servers on one port would silently share its traffic: refuse to bind instead.
    "grpc.so_reuseport": 0,
}
# Calls running or queued for a thread; beyond that RESOURCE_EXHAUSTED at once.
DEFAULT_MAX_CONCURRENT_RPCS = 128


def server_options(max_receive_message_bytes: int,
                   channel_arguments: Mapping[str, int | str]) -> list[tuple[str, int | str]]:
    """grpcio's server options: TF Serving's message sizes, our defaults, the user's arguments."""
    options: dict[str, int | str] = {
        "grpc.max_receive_message_length": max_receive_message_bytes,
        "grpc.max_send_message_length": MAX_SEND_MESSAGE_BYTES,
        **SERVER_ARGUMENTS,
    }
    options.update(channel_arguments)
    return list(options.items())
