"""Run scripts/model-server (the TF-Serving-compatible server) for tests, and wait for AVAILABLE."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from tests.support.paths import SCRIPTS_DIR
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess

AVAILABLE = 30  # tensorflow.serving.ModelVersionStatus.State.AVAILABLE


@dataclass
class RunningModelServer:
    process: ManagedProcess
    grpc_port: int
    rest_port: int
    model_name: str
    base_path: Path

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def model_available(self, version: int | None = None) -> bool:
        # Imported here: TF Serving's API imports TensorFlow, which only heavy tests may load.
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = self.model_name
            if version is not None:
                request.model_spec.version.value = version
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                request, timeout=2)
        return any(v.state == AVAILABLE for v in reply.model_version_status)

    def stop(self) -> int | None:
        return self.process.stop()


def start_model_server(model_name: str, base_path: Path, log_dir: Path, *extra_flags: str,
                       grpc_port: int | None = None, rest_port: int | None = None,
                       wait: bool = True, timeout: float = 120.0,
                       env: dict[str, str] | None = None) -> RunningModelServer:
    """Start the server on free ports with tensorflow_model_server's own flags."""
    grpc_port = grpc_port or free_port()
    rest_port = rest_port or free_port()
    process = ManagedProcess(
        f"model-server-{model_name}-{grpc_port}",
        [SCRIPTS_DIR / "model-server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_name={model_name}", f"--model_base_path={base_path}", *extra_flags],
        log_dir, env,
    )
    server = RunningModelServer(process, grpc_port, rest_port, model_name, base_path)
    if wait:
        try:
            process.wait_until(server.model_available, timeout, "AVAILABLE model")
        except Exception:
            process.stop()
            raise
    return server
