"""Benchmark single-image Predict over gRPC against the floor (run it as scripts/bench-model-server,
which puts model.service and the repository on the path).

The floor is the same signature called in-process through a session callable (the tests'
reference model, tests/support/reference.py). The server runs as a child process
(`python -m model_server`, grpcio's server) on a 127.0.0.1 port; both are measured side by side in
one run, in alternating rounds so that both see the same machine state, and only one is busy at a
time (the machine has few cores and is shared: keep runs short).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

# scripts/bench-model-server puts the repository on the path: the benchmark measures against the
# tests' own reference model and waits the tests' way.
from tests.support.ports import free_port
from tests.support.reference import article_input, load_reference_model
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "fixtures"
AVAILABLE = 30


def leaf_input(photos: Path) -> np.ndarray:
    """One real leaf photo with the article's preprocessing, or noise if there is none."""
    found = sorted(photos.glob("*.jpg"))
    if not found:
        return np.random.default_rng(0).random((1, 150, 150, 3), dtype=np.float32)
    return article_input(found[0])


def start_server(model_name: str, base_path: Path, port: int, extra: list[str], log_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "model.service")}
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_server", f"--port={port}", f"--model_name={model_name}",
         f"--model_base_path={base_path}", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = model_name
    models = model_service_pb2_grpc.ModelServiceStub(channel)

    def available() -> bool:
        reply = models.GetModelStatus(status, timeout=2)
        return any(v.state == AVAILABLE for v in reply.model_version_status)

    def exited() -> str | None:
        return None if proc.poll() is None else f"model server exited: see {log_path}"

    try:
        wait_until(available, 120, "AVAILABLE model", ignore=(grpc.RpcError,), gave_up=exited)
    except (RuntimeError, TimeoutError) as error:
        proc.kill()
        raise SystemExit(f"{error}; see {log_path}") from None
    return proc, channel, log


def interleaved(calls, count: int, block: int = 50) -> list[list[float]]:
    """Time the calls in alternating blocks so that all see the same machine state (a shared
    VM's speed drifts by tens of percent within seconds). Blocks rather than single calls: each
    side's idle TensorFlow threads spin for a moment after work and would tax the other side."""
    samples: list[list[float]] = [[] for _ in calls]
    while len(samples[0]) < count:
        for call, times in zip(calls, samples, strict=True):
            for _ in range(min(block, count - len(times))):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
    return samples


def throughput(call, threads: int, seconds: float) -> float:
    """Calls per second with `threads` callers looping for `seconds`."""
    done = [0] * threads
    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set():
            call()
            done[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} logical CPUs (load average {load}), "
            f"{platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, grpcio "
            f"{grpc.__version__}")


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="saved_model")
    parser.add_argument("--base-path", type=Path, default=SHARED / "seed-model" / "saved_model")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--photos", type=Path, default=SHARED / "leaf-photos")
    parser.add_argument("--calls", type=int, default=1000, help="latency calls of each kind")
    parser.add_argument("--threads", type=int, default=4, help="callers for throughput")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--server-flag", action="append", default=[],
                        help="extra flag for the server, e.g. --server-flag=--grpc_max_threads=4")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    batch = leaf_input(args.photos)
    floor = load_reference_model(args.base_path / str(args.version), args.signature)
    input_name = floor.input_name
    servers = []
    try:
        port = free_port()
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-model-server-{port}.log"
        servers.append(("server", *start_server(args.model_name, args.base_path, port,
                                                args.server_flag, log_path)))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = args.model_name
        request.model_spec.signature_name = args.signature
        tensor = request.inputs[input_name]
        tensor.dtype = types_pb2.DT_FLOAT
        for size in batch.shape:
            tensor.tensor_shape.dim.add().size = size
        tensor.tensor_content = batch.tobytes()

        def floor_call():
            return floor(batch)

        def caller(channel):
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            return lambda: stub.Predict(request, timeout=30)

        calls = {"floor": floor_call}
        calls.update({name: caller(channel) for name, _, channel, _ in servers})
        difference = 0.0
        for name, _, _, _ in servers:
            (output,) = calls[name]().outputs.values()
            difference = max(difference,
                             float(np.max(np.abs(tf.make_ndarray(output) - floor_call()))))
        interleaved(list(calls.values()), 50)  # warm-up
        samples = dict(zip(calls, interleaved(list(calls.values()), args.calls), strict=True))
        results = {
            "machine": machine(),
            "model": f"{args.model_name} v{args.version} ({args.base_path})",
            "calls": args.calls,
            "max_abs_diff_server_vs_floor": difference,
        }
        for name, call in calls.items():
            results[name] = {**percentiles(samples[name]),
                             "throughput_1": throughput(call, 1, args.seconds),
                             f"throughput_{args.threads}": throughput(call, args.threads,
                                                                      args.seconds)}
        results["added_p50_ms"] = results["server"]["p50_ms"] - results["floor"]["p50_ms"]
        results["added_p99_ms"] = results["server"]["p99_ms"] - results["floor"]["p99_ms"]
    finally:
        for _, proc, channel, log in servers:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            channel.close()
        floor.close()

    print(f"machine: {results['machine']}")
    print(f"model:   {results['model']}; {results['calls']} single-image calls each, "
          f"max |server - floor| = {difference:.2e}")
    print(f"{'':28}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'1 caller/s':>12}"
          f"{f'{args.threads} callers/s':>13}")
    for name, label in (("floor", "in-process (floor)"), ("server", "gRPC server (grpcio)")):
        row = results[name]
        print(f"{label:28}{row['p50_ms']:9.2f}{row['p99_ms']:9.2f}{row['mean_ms']:9.2f}"
              f"{row['throughput_1']:12.1f}{row[f'throughput_{args.threads}']:13.1f}")
    print(f"the server adds {results['added_p50_ms']:.2f} ms at p50, "
          f"{results['added_p99_ms']:.2f} ms at p99")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
