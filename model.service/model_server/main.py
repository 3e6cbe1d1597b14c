"""Wire flags, models, pollers and servers together; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it; set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model_server import __version__, config, flags, logs, monitoring

GRPC_STOP_GRACE_SECONDS = 0.5


def _configs(parsed: flags.ParsedFlags) -> list[config.ModelConfig]:
    if parsed.model_config_file:
        return config.load_model_config_file(Path(parsed.model_config_file))
    return config.single_model(parsed.model_name, parsed.model_base_path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = logs.setup()
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv):
        print(flags.usage())
        return 0
    try:
        parsed = flags.parse(argv)
    except flags.FlagError as error:
        print(f"ERROR: {error}\n\n{flags.usage()}", file=sys.stderr)
        return 2
    if parsed.version:
        print(f"TensorFlow ModelServer: {__version__}-compatible (model_server, Python)")
        return 0
    for name in parsed.ignored:
        log.warning(f"Flag --{name} is accepted for compatibility with tensorflow_model_server "
                    "but ignored by this server")
    if parsed.predict_response_tensor_serialization_option not in ("as_proto_field",
                                                                    "as_proto_content"):
        print("ERROR: --predict_response_tensor_serialization_option must be as_proto_field or "
              "as_proto_content", file=sys.stderr)
        return 2
    try:
        channel_arguments = flags.channel_arguments(parsed.grpc_channel_arguments)
    except flags.FlagError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    try:
        models = _configs(parsed)
    except config.ConfigError as error:
        log.error(str(error))
        return 1
    prometheus = None
    if parsed.monitoring_config_file:
        try:
            prometheus = monitoring.load_config(Path(parsed.monitoring_config_file))
        except monitoring.ConfigError as error:
            log.error(str(error))
            return 1
    if parsed.model_config_file:
        log.info(f"Loading model config from {parsed.model_config_file}")
    else:
        log.info("Building single TensorFlow model file config:  model_name: "
                 f"{parsed.model_name} model_base_path: {parsed.model_base_path}")

    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        log.info(f"Received {signal.Signals(signum).name}: shutting down")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # TensorFlow loads only now, after the cheap checks (and with the signal handlers in place).
    from model_server import grpc_service, rest, rest_server, servable
    from model_server.manager import ModelRegistry, ModelVersions
    from model_server.reload import ConfigReloader

    tags = [t for t in parsed.saved_model_tags.split(",") if t]
    session_config = servable.session_config(parsed.tensorflow_intra_op_parallelism,
                                             parsed.tensorflow_inter_op_parallelism)

    def load(name: str, version: int, path: Path):
        log.info(f"Reading SavedModel from: {path}")
        with monitoring.timed_load(path):
            return servable.load(name, version, path, tags, session_config)

    def make(model: config.ModelConfig) -> ModelVersions:
        return ModelVersions(model, load, stop, parsed.max_num_load_retries,
                             parsed.load_retry_interval_micros / 1e6,
                             parsed.servable_unload_timeout_seconds)

    pollers: list[ModelVersions] = []  # started once the servers listen
    registry = ModelRegistry()
    log.info("Adding/updating models.")
    try:
        registry.apply(models, make, pollers.append,
                       parsed.allow_version_labels_for_unavailable_models)
    except config.ConfigError as error:
        log.error(f"Failed to start server. Error: {error}")
        return 1

    try:
        grpc_server = grpc_service.start(
            registry, parsed.bind_address, parsed.port, parsed.grpc_max_threads,
            parsed.predict_response_tensor_serialization_option == "as_proto_content",
            max_receive_message_bytes=parsed.grpc_max_receive_message_bytes,
            max_concurrent_rpcs=parsed.grpc_max_concurrent_rpcs,
            channel_arguments=channel_arguments)
    except RuntimeError as error:
        log.error(f"Failed to start the gRPC server on {parsed.bind_address}:{parsed.port}: "
                  f"{error}")
        return 1
    log.info(f"Running gRPC ModelServer at {parsed.bind_address}:{parsed.port} ...")
    http_server = None
    if parsed.rest_api_port:
        try:
            http_server = rest_server.RestServer(
                rest.app(registry, parsed.rest_api_timeout_in_ms / 1000,
                         extra_routes=monitoring.routes(prometheus)),
                parsed.bind_address, parsed.rest_api_port,
                rest_server.Limits(header_timeout=parsed.rest_api_timeout_in_ms / 1000,
                                   max_connections=parsed.rest_api_max_connections)).start()
        except OSError as error:
            log.error(f"Failed to start HTTP Server at localhost:{parsed.rest_api_port}: {error}")
            grpc_server.stop(0)
            return 1
        log.info(f"Exporting HTTP/REST API at:localhost:{parsed.rest_api_port} ...")
        if prometheus:
            log.info(f"Prometheus metrics at:localhost:{parsed.rest_api_port}{prometheus.path}")
    elif prometheus:
        log.warning("--monitoring_config_file enables Prometheus metrics, but they are served on "
                    "the REST port and --rest_api_port is 0")

    def start_polling(model: ModelVersions) -> None:
        threading.Thread(target=model.run, args=(parsed.file_system_poll_wait_seconds,),
                         name=f"poll-{model.name}", daemon=True).start()

    for model in pollers:
        start_polling(model)
    if parsed.model_config_file and parsed.model_config_file_poll_wait_seconds > 0:
        reloader = ConfigReloader(Path(parsed.model_config_file), registry, make, start_polling,
                                  parsed.allow_version_labels_for_unavailable_models)
        threading.Thread(target=reloader.run, args=(parsed.model_config_file_poll_wait_seconds,
                                                    stop),
                         name="poll-model-config", daemon=True).start()

    while not stop.wait(3600):
        pass
    grpc_stopped = grpc_server.stop(GRPC_STOP_GRACE_SECONDS)
    if http_server is not None:
        http_server.stop(timeout=1.0)
    grpc_stopped.wait(GRPC_STOP_GRACE_SECONDS + 0.5)
    log.info("Server stopped.")
    for handler in log.handlers:
        handler.flush()
    # A poller may be inside a TensorFlow load that cannot be interrupted: do not wait for it,
    # and skip interpreter teardown, which can stall on TensorFlow's threads.
    sys.stdout.flush()
    os._exit(0)
