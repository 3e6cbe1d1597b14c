"""TF Serving's HTTP/REST API subset: model status, metadata and :predict, JSON in and out.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            -> GetModelStatus as JSON
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   -> GetModelMetadata as JSON
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    -> {"predictions"|"outputs": ...}

Errors are `{"error": "..."}` with the HTTP status TF Serving maps the canonical code to.
The HTTP server is uvicorn (rest_server.py); this module is the Starlette app and its routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence
from http import HTTPStatus

import anyio
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from model_server import handlers, rest_json
from model_server.errors import ServingError, invalid_argument
from model_server.manager import ModelRegistry

log = logging.getLogger("model_server")

ROUTE = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<method>predict|classify|regress)|/(?P<metadata>metadata))?",
    re.IGNORECASE)
# Sized for the model server's 2 GiB memory limit (docker-compose.yml, deploy/),
# docs/model-server.md: a 150x150x3 float image is ~1.3 MB as JSON (12 of them fit in a body),
# and Python holds a body as up to ~10x that in objects while parsing it.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Inference calls run at once from REST.
INFERENCE_THREADS = 4
# Requests whose bodies are in memory at once (being read, waiting for a thread, or parsed). Further
# requests wait before their body is read, so it stays in the kernel's buffers and the client's;
# their number is bounded by the connection cap (rest_server.py). Worst case in memory:
# 8 x 16 MiB of bodies + 4 x ~160 MiB being parsed, well inside 2 GiB beside the model.
BODIES_IN_MEMORY = 2 * INFERENCE_THREADS


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
        except RecursionError:  # json's C parser counts its own nesting depth
            raise invalid_argument("JSON Parse error: the document is nested too deeply") from None
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


def _json(status: int, body) -> Response:
    return Response(rest_json.dumps(body), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


async def _body(request: Request, timeout: float) -> bytes:
    """The request body, at most MAX_BODY_BYTES, arriving within `timeout` seconds."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"request body exceeds {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                        f"request body exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(HTTPStatus.REQUEST_TIMEOUT,
                            f"the request body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


def app(registry: ModelRegistry, body_timeout: float = 30.0,
        extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The REST API as an ASGI app. `extra_routes` come first (e.g. a metrics endpoint)."""
    api = RestApi(registry)
    limiter = anyio.CapacityLimiter(INFERENCE_THREADS)
    bodies = anyio.CapacityLimiter(BODIES_IN_MEMORY)

    async def answer(call: Callable[[], object]) -> Response:
        try:
            return _json(HTTPStatus.OK, await anyio.to_thread.run_sync(call, limiter=limiter))
        except ServingError as error:
            return _error(error.http_status, error.message)
        except Exception as error:  # nothing a client sends may kill the handler silently
            log.exception("REST request failed")
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")

    async def models(request: Request) -> Response:
        path = request.url.path
        match = ROUTE.fullmatch(path)
        if match is None:
            return _error(HTTPStatus.NOT_FOUND, f"Malformed request: {request.method} {path}")
        if request.method in ("GET", "HEAD"):
            if match["method"]:
                return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"Malformed request: GET {path} "
                              f"(:{match['method']} needs POST)")
            if match["metadata"]:
                return await answer(lambda: api.metadata(match))
            return await answer(lambda: api.status(match))
        # A request that will be refused is refused before its body is read (or waited for).
        if match["method"] is None or match["metadata"]:
            return _error(HTTPStatus.METHOD_NOT_ALLOWED,
                          f"Malformed request: POST {path} (POST needs :predict)")
        if match["method"].lower() != "predict":
            return _error(HTTPStatus.NOT_IMPLEMENTED, f"The :{match['method']} API is not "
                          "supported by this server (only :predict)")
        async with bodies:
            body = await _body(request, body_timeout)
            return await answer(lambda: api.predict(match, body))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == HTTPStatus.NOT_FOUND:
            return _error(error.status_code,
                          f"Malformed request: {request.method} {request.url.path}")
        return _error(error.status_code, error.detail)

    async def client_gone(request: Request, error: Exception) -> Response:
        return _error(499, "the client closed the connection")  # nobody reads it

    routes = [*extra_routes, Route("/v1/models/{rest:path}", models, methods=["GET", "POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error,
                                                        ClientDisconnect: client_gone})
