"""TF Serving's HTTP/REST API subset: model status, metadata and :predict, JSON in and out.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            -> GetModelStatus as JSON
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   -> GetModelMetadata as JSON
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    -> {"predictions"|"outputs": ...}

Errors are `{"error": "..."}` with the HTTP status TF Serving maps the canonical code to.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from model_server import handlers, monitoring, rest_json
from model_server.errors import ServingError, invalid_argument
from model_server.manager import ModelRegistry

log = logging.getLogger("model_server")

ROUTE = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<method>predict|classify|regress)|/(?P<metadata>metadata))?",
    re.IGNORECASE)
MAX_BODY_BYTES = 256 * 1024 * 1024


def to_json(message) -> dict:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                     preserving_proto_field_name=True)


class RestApi:
    """The REST calls on a registry; each returns (HTTP status, JSON-ready body)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def _model_spec(self, request, match: re.Match) -> None:
        request.model_spec.name = match["name"]
        if match["version"]:
            request.model_spec.version.value = int(match["version"])
        if match["label"]:
            request.model_spec.version_label = match["label"]

    def status(self, match: re.Match) -> dict:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request, match)
        return to_json(handlers.get_model_status(self.registry, request))

    def metadata(self, match: re.Match) -> dict:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request, match)
        request.metadata_field.append(handlers.SIGNATURE_DEF_FIELD)
        response = handlers.get_model_metadata(self.registry, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[handlers.SIGNATURE_DEF_FIELD].Unpack(signature_map)
        return {"model_spec": to_json(response.model_spec),
                "metadata": {handlers.SIGNATURE_DEF_FIELD: to_json(signature_map)}}

    def predict(self, match: re.Match, body: bytes):
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise invalid_argument(f"JSON Parse error: {error}") from None
        if not isinstance(document, dict):
            raise invalid_argument("JSON Value not an object")
        signature_name = document.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid_argument("'signature_name' must be a string")
        spec = self.registry.spec(match["name"],
                                  int(match["version"]) if match["version"] else None,
                                  match["label"])
        row_format = []

        def decode(signature):
            inputs, rows = rest_json.decode_request(document, signature)
            row_format.append(rows)
            return inputs

        result = handlers.run_signature(self.registry, spec, signature_name, decode)
        return rest_json.encode_response(result.outputs, row_format[0])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TensorFlowServing-compatible"
    api: RestApi  # set on the subclass made by start()
    metrics_path: str | None = None  # --monitoring_config_file's prometheus_config.path

    def log_message(self, format: str, *args) -> None:
        log.debug("REST %s", format % args)

    def _send(self, status: int, body) -> None:
        payload = rest_json.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_metrics(self) -> None:
        page = monitoring.page()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", monitoring.CONTENT_TYPE)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _route(self, method: str):
        path = self.path.split("?", 1)[0]
        match = ROUTE.fullmatch(path)
        if match is None:
            self._error(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {path}")
            return None
        return match

    def _answer(self, call) -> None:
        try:
            self._send(HTTPStatus.OK, call())
        except ServingError as error:
            self._error(error.http_status, error.message)
        except Exception as error:  # nothing a client sends may kill the handler silently
            log.exception("REST request failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")

    def do_GET(self) -> None:
        if self.metrics_path and self.path.split("?", 1)[0] == self.metrics_path:
            self._send_metrics()
            return
        match = self._route("GET")
        if match is None:
            return
        if match["method"]:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED,
                        f"Malformed request: GET {self.path} (:{match['method']} needs POST)")
        elif match["metadata"]:
            self._answer(lambda: self.api.metadata(match))
        else:
            self._answer(lambda: self.api.status(match))

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "POST needs a Content-Length")
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"request body exceeds {MAX_BODY_BYTES} bytes")
            return
        body = self.rfile.read(int(length))
        match = self._route("POST")
        if match is None:
            return
        if match["method"] is None or match["metadata"]:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED,
                        f"Malformed request: POST {self.path} (POST needs :predict)")
        elif match["method"].lower() != "predict":
            self._error(HTTPStatus.NOT_IMPLEMENTED, f"The :{match['method']} API is not "
                        "supported by this server (only :predict)")
        else:
            self._answer(lambda: self.api.predict(match, body))


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(registry: ModelRegistry, address: str, port: int, metrics_path: str | None = None,
          ) -> tuple[RestServer, threading.Thread]:
    """Serve the REST API on address:port in a background thread (and the Prometheus metrics
    page on metrics_path, when given)."""
    handler = type("BoundHandler", (Handler,), {"api": RestApi(registry),
                                                "metrics_path": metrics_path})
    server = RestServer((address, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="rest", daemon=True)
    thread.start()
    return server, thread

