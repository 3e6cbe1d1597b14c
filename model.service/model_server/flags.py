"""tensorflow_model_server's command-line flags: `--flag=value`, `--flag value`, bools as `--flag`.

Flags the real server knows but this one does not implement are accepted and ignored with a warning,
so a command line written for TF Serving (e.g. `--enable_batching`) starts this server unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_server.grpc_options import DEFAULT_MAX_CONCURRENT_RPCS, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES

TRUE_WORDS = {"true", "1", "yes", "t", "y"}
FALSE_WORDS = {"false", "0", "no", "f", "n"}

# TF Serving flags this server does not implement (main.cc, 2.x): accepted, ignored, warned about.
IGNORED_TF_SERVING_FLAGS = frozenset({
    "grpc_socket_path", "rest_api_enable_cors_support",
    "enable_batching", "batching_parameters_file", "num_load_threads", "num_unload_threads",
    "flush_filesystem_caches", "tensorflow_session_parallelism", "use_alts_credentials",
    "ssl_config_file", "platform_config_file", "per_process_gpu_memory_fraction",
    "enable_model_warmup", "num_request_iterations_for_warmup",
    "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model",
    "num_tflite_interpreters_per_pool", "num_tflite_pools", "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled", "enable_profiler", "thread_pool_factory_config_file",
    "mixed_precision", "skip_initialize_tpu", "enable_grpc_healthcheck_service",
    "use_tflite_model", "tensorflow_session_config_file",
    "rest_api_num_threads", "enable_batching_dynamic_padding", "tfrt_runtime",
    "use_tfrt", "enable_cors_support",
})


@dataclass(frozen=True)
class Flag:
    name: str
    kind: type  # int, float, str or bool
    default: object
    help: str


FLAGS: tuple[Flag, ...] = (
    Flag("port", int, 8500, "TCP port for gRPC (TF Serving binds 0.0.0.0)"),
    Flag("rest_api_port", int, 0, "TCP port for the HTTP/REST API; 0 = off"),
    Flag("rest_api_timeout_in_ms", int, 30_000,
         "time a REST request's headers, and then its body, may take to arrive"),
    Flag("rest_api_max_connections", int, 64,
         "REST connections at once; more are answered 503 (this server's own flag)"),
    Flag("model_name", str, "default", "name of the model (single-model mode)"),
    Flag("model_base_path", str, "", "path of the model's versions (single-model mode)"),
    Flag("model_config_file", str, "", "text-format ModelServerConfig (model_config_list)"),
    Flag("model_config_file_poll_wait_seconds", int, 0,
         "seconds between re-reads of --model_config_file; 0 = read once at start-up"),
    Flag("allow_version_labels_for_unavailable_models", bool, False,
         "a new (or unchanged) version label may name a version that is not loaded yet"),
    Flag("servable_unload_timeout_seconds", float, 30.0,
         "longest wait for a version's running requests before it is unloaded anyway "
         "(this server's own flag)"),
    Flag("monitoring_config_file", str, "",
         "text-format MonitoringConfig; prometheus_config { enable: true } serves metrics on the "
         "REST port"),
    Flag("file_system_poll_wait_seconds", int, 1,
         "seconds between polls of the model directories; 0 = poll once, < 0 = never"),
    Flag("saved_model_tags", str, "serve", "comma-separated MetaGraphDef tags to load"),
    Flag("max_num_load_retries", int, 5, "retries of a failed version load"),
    Flag("load_retry_interval_micros", int, 60_000_000, "wait between load retries"),
    Flag("tensorflow_intra_op_parallelism", int, 0, "threads per TF op; 0 = TF chooses"),
    Flag("tensorflow_inter_op_parallelism", int, 0, "threads across TF ops; 0 = TF chooses"),
    Flag("bind_address", str, "0.0.0.0",
         "address the gRPC and REST ports bind to; TF Serving always binds 0.0.0.0 "
         "(this server's own flag, so a laptop can keep it on 127.0.0.1)"),
    Flag("grpc_max_threads", int, 8, "threads that wait for and run gRPC calls"),
    Flag("grpc_max_concurrent_rpcs", int, DEFAULT_MAX_CONCURRENT_RPCS,
         "gRPC calls running or waiting for a thread; more are refused with RESOURCE_EXHAUSTED "
         "(this server's own flag)"),
    Flag("grpc_max_receive_message_bytes", int, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
         "largest gRPC request message, after decompression (TF Serving: 2 GiB - 1) "
         "(this server's own flag)"),
    Flag("grpc_channel_arguments", str, "",
         "comma-separated gRPC channel arguments for the server, e.g. "
         "grpc.max_connection_age_ms=60000; they override this server's defaults"),
    Flag("predict_response_tensor_serialization_option", str, "as_proto_field",
         "reply tensors as typed value fields (TF Serving's default) or as_proto_content "
         "(tensor_content) (this server's own flag)"),
    Flag("version", bool, False, "print the version and exit"),
)
FLAGS_BY_NAME = {flag.name: flag for flag in FLAGS}


class FlagError(ValueError):
    """A command line that cannot be understood."""


@dataclass(frozen=True)
class ParsedFlags:
    values: dict[str, Any]  # each of its flag's kind (Flag.kind), looked up by name at run time
    ignored: tuple[str, ...]  # TF Serving flags given but not implemented here

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def convert(flag: Flag, text: str) -> object:
    """Turn a flag's text into its type, the way gflags/absl would accept it."""
    try:
        if flag.kind is bool:
            word = text.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(text)
        return flag.kind(text)
    except ValueError:
        raise FlagError(f"invalid value for --{flag.name}: {text!r}") from None


def parse(argv: list[str]) -> ParsedFlags:
    """Parse tensorflow_model_server's command line; unknown non-TF-Serving flags are errors."""
    values: dict[str, object] = {flag.name: flag.default for flag in FLAGS}
    ignored: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg in {"-", "--"}:
            raise FlagError(f"unexpected argument {arg!r}")
        name, has_value, text = arg.lstrip("-").partition("=")
        name = name.replace("-", "_")
        flag = FLAGS_BY_NAME.get(name)
        negated = flag is None and name.startswith("no") and FLAGS_BY_NAME.get(name[2:])
        if negated and negated.kind is bool and not has_value:
            values[negated.name] = False
            continue
        if flag is None:
            if {name, name.removeprefix("no")} & IGNORED_TF_SERVING_FLAGS:
                ignored.append(name)
                # `--flag value` form: swallow the value of an ignored flag too.
                if not has_value and args and not args[0].startswith("-"):
                    args.pop(0)
                continue
            raise FlagError(f"unknown command line flag '{name}'")
        if not has_value:
            if flag.kind is bool:
                # `--flag`, or `--flag true|false` like absl allows.
                if args and args[0].lower() in TRUE_WORDS | FALSE_WORDS:
                    text = args.pop(0)
                else:
                    text = "true"
            elif args:
                text = args.pop(0)
            else:
                raise FlagError(f"flag --{name} is missing its value")
        values[flag.name] = convert(flag, text)
    return ParsedFlags(values, tuple(ignored))


def channel_arguments(text: str) -> dict[str, int | str]:
    """`--grpc_channel_arguments` as TF Serving reads it: key=value pairs, ints where they parse."""
    arguments: dict[str, int | str] = {}
    for item in filter(None, text.split(",")):
        key, has_value, value = item.partition("=")
        if not key or not has_value:
            raise FlagError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            number = int(value)
        except ValueError:
            number = None
        # gRPC takes int32 or string arguments; TF Serving passes what fits an int32 as one.
        arguments[key] = number if number is not None and -2**31 <= number < 2**31 else value
    return arguments


def usage() -> str:
    lines = ["usage: tensorflow_model_server [--flag=value ...]", "Flags:"]
    for flag in FLAGS:
        lines.append(f"  {f'--{flag.name}={flag.default}':<48} {flag.help}")
    lines.append("Accepted for compatibility and ignored: " + ", ".join(
        f"--{name}" for name in sorted(IGNORED_TF_SERVING_FLAGS)))
    return "\n".join(lines)
