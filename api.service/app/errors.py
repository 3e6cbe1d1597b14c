"""Every error the API answers with: the catalogue (stable codes) and the exception handlers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app import imaging
from app.core.body_limit import BodyTooLarge
from app.core.config import Settings
from app.core.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    ProblemError,
    http_status_code,
    problem_body,
    problem_response,
)
from app.core.request_id import request_id_of
from app.decode_budget import BudgetExhausted
from app.prediction_service import LabelsMismatch
from app.tfserving.client import ModelFailed, ModelTimeout, ModelUnavailable

log = logging.getLogger(__name__)

EXAMPLE_REQUEST_ID = "3f2a9c0d4e5b4a7f8e1d2c3b4a596877"


@dataclass(frozen=True)
class ProblemType:
    """One documented error: status, stable code, title and an example detail for /docs."""

    status: int
    code: str
    title: str
    example: str

    def error(self, detail: str | None = None, headers: dict[str, str] | None = None
              ) -> ProblemError:
        return ProblemError(self.status, self.code, detail or self.example, title=self.title,
                            headers=headers)


EMPTY_IMAGE = ProblemType(400, "empty_image", "Empty image", "The uploaded file is empty.")
UNDECODABLE_IMAGE = ProblemType(400, "undecodable_image", "Undecodable image",
                                "The uploaded JPEG image is corrupt and could not be decoded.")
TRUNCATED_IMAGE = ProblemType(400, "truncated_image", "Truncated image",
                              "The uploaded JPEG image is truncated (incomplete file).")
BODY_TOO_LARGE = ProblemType(413, "body_too_large", "Request body too large",
                             BodyTooLarge(10485760).detail)
IMAGE_TOO_LARGE = ProblemType(413, "image_too_large", "Image has too many pixels",
                              "The image has too many pixels (at most 50,000,000 allowed); "
                              "send a smaller photo.")
IMAGE_TOO_COSTLY = ProblemType(413, "image_too_costly", "Image needs too much memory to decode",
                               "Decoding this image would need about 686 MiB of memory (at most "
                               "512 MiB per image); send a JPEG or a smaller photo.")
UNSUPPORTED_MEDIA_TYPE = ProblemType(415, "unsupported_media_type", "Unsupported image type",
                                     "The uploaded file is not a JPEG or PNG image: "
                                     "send a JPEG or PNG photo.")
MISSING_FIELD = ProblemType(422, "missing_field", "Missing image field",
                            "No file in the multipart field 'image_to_predict'.")
TOO_MANY_FILES = ProblemType(422, "too_many_files", "More than one file",
                             "The request holds 2 files; send exactly one photo in "
                             "'image_to_predict'.")
TOO_MANY_IMAGES = ProblemType(413, "too_many_images", "Too many photos in one request",
                              "The request holds 17 photos; send at most 16 per request.")
UNEXPECTED_FILE = ProblemType(422, "unexpected_file", "File in an unexpected field",
                              "The request holds files outside the field 'images' "
                              "(image_to_predict); send every photo in 'images'.")
NOT_MULTIPART = ProblemType(422, "not_multipart", "Body is not multipart/form-data",
                            "Send the photo as multipart/form-data in the field "
                            "'image_to_predict' (got Content-Type application/json).")
MALFORMED_MULTIPART = ProblemType(422, "malformed_multipart", "Malformed multipart body",
                                  "The multipart body could not be parsed: Missing boundary in "
                                  "multipart.")
IMAGE_TOO_SMALL = ProblemType(422, "image_too_small", "Image too small to show a leaf",
                              "The image is 1x1 pixels: too small to show a leaf (at least 32 "
                              "pixels on the short side); send a photo of one leaf.")
BLANK_IMAGE = ProblemType(422, "blank_image", "Blank image",
                          "The picture is almost one flat colour (lens covered, too dark or "
                          "blank): it cannot show a leaf; take a photo of one leaf in daylight.")
INVALID_REQUEST = ProblemType(422, "invalid_request", "Invalid request",
                              "query.limit: Input should be a valid integer")
MODEL_ERROR = ProblemType(502, "model_error", "Model server error",
                          "The model server failed to answer this request.")
MODEL_UNAVAILABLE = ProblemType(503, "model_unavailable", "Model unavailable",
                                "The model is not available right now; retry later.")
DECODER_BUSY = ProblemType(503, "decoder_busy", "Too many large images at once",
                           "Too many large images are being decoded right now; retry in 5 s.")
MODEL_MISCONFIGURED = ProblemType(503, "model_misconfigured", "Service misconfigured",
                                  "The labels file lists 4 classes but the model outputs 5.")
MODEL_TIMEOUT = ProblemType(504, "model_timeout", "Model timed out",
                            "The model did not answer within 5 s.")
NOT_FOUND = ProblemType(404, "not_found", "Not Found", "No such endpoint: GET /predict.")
ON_DEVICE_NOT_FOUND = ProblemType(
    404, "on_device_model_not_found", "No such on-device model",
    "Version 1 has no on-device model with SHA-256 0000000000000000000000000000000000000000000000"
    "000000000000000000; GET /v1/model names the current one.")
METHOD_NOT_ALLOWED = ProblemType(405, "method_not_allowed", "Method Not Allowed",
                                 "Method GET not allowed on /predict/image.")
INTERNAL_ERROR = ProblemType(500, "internal_error", "Internal server error",
                             "An unexpected error occurred; it has been logged.")

# ImageRejected subclasses, most specific first (TruncatedImage is an UndecodableImage).
_IMAGE_PROBLEMS: tuple[tuple[type[imaging.ImageRejected], ProblemType], ...] = (
    (imaging.EmptyImage, EMPTY_IMAGE),
    (imaging.TruncatedImage, TRUNCATED_IMAGE),
    (imaging.UndecodableImage, UNDECODABLE_IMAGE),
    (imaging.UnsupportedImageFormat, UNSUPPORTED_MEDIA_TYPE),
    (imaging.TooManyPixels, IMAGE_TOO_LARGE),
    (imaging.TooCostlyToDecode, IMAGE_TOO_COSTLY),
    (imaging.ImageTooSmall, IMAGE_TOO_SMALL),
    (imaging.BlankImage, BLANK_IMAGE),
)


def image_problem(error: imaging.ImageRejected) -> ProblemError:
    """The problem for a rejected image; imaging's messages are written for clients."""
    for kind, problem in _IMAGE_PROBLEMS:
        if isinstance(error, kind):
            detail = str(error) or problem.example
            if problem is UNSUPPORTED_MEDIA_TYPE:
                detail = f"{detail.rstrip('.')}: send a JPEG or PNG photo."
            return problem.error(detail)
    return UNDECODABLE_IMAGE.error(str(error) or None)


def openapi_responses(*problems: ProblemType) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` documenting these problems, grouped by status, one example each."""
    responses: dict[int | str, dict[str, Any]] = {}
    for problem in problems:
        entry = responses.setdefault(problem.status, {
            "description": problem.title,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"},
                                             "examples": {}}}})
        if problem.title not in entry["description"].split(" | "):
            entry["description"] += f" | {problem.title}"
        entry["content"][PROBLEM_MEDIA_TYPE]["examples"][problem.code] = {
            "summary": problem.title,
            "value": problem_body(problem.status, problem.code, problem.example,
                                  title=problem.title, request_id=EXAMPLE_REQUEST_ID),
        }
    return responses


def add_problem_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the Problem schema that openapi_responses() refers to into the OpenAPI components."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return openapi


def decoder_busy(retry_after: int) -> ProblemError:
    """The problem for a decode that did not get its memory in time (a whole request, or one
    photo of a batch)."""
    return DECODER_BUSY.error(f"Too many large images are being decoded right now; retry in "
                              f"{retry_after} s.", headers={"Retry-After": str(retry_after)})


def text_part_problem(field: str) -> ProblemError:
    """The problem for a text part where a photo (a file part) belongs."""
    return MISSING_FIELD.error(f"This part of '{field}' is a text field, not a file; send each "
                               "photo as a file part (with a filename).")


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Turn every exception into application/problem+json; nothing leaks internals."""

    def respond(request: Request, error: ProblemError) -> Response:
        return problem_response(error, request_id_of(request.scope))

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        return respond(request, error)

    async def on_image_rejected(request: Request, error: Exception) -> Response:
        assert isinstance(error, imaging.ImageRejected)
        return respond(request, image_problem(error))

    async def on_unavailable(request: Request, error: Exception) -> Response:
        log.warning("model unavailable: %s", error)
        return respond(request, MODEL_UNAVAILABLE.error(
            f"The model is not available right now; retry in {settings.RETRY_AFTER_SECONDS} s.",
            headers={"Retry-After": str(settings.RETRY_AFTER_SECONDS)}))

    async def on_timeout(request: Request, error: Exception) -> Response:
        log.warning("model deadline exceeded: %s", error)
        return respond(request, MODEL_TIMEOUT.error(
            f"The model did not answer within {settings.MODEL_DEADLINE_SECONDS:g} s."))

    async def on_decoder_busy(request: Request, error: Exception) -> Response:
        log.warning("decode budget exhausted: %s", error)
        return respond(request, decoder_busy(settings.RETRY_AFTER_SECONDS))

    async def on_model_failed(request: Request, error: Exception) -> Response:
        log.error("model server error: %s", error)
        return respond(request, MODEL_ERROR.error())

    async def on_labels_mismatch(request: Request, error: Exception) -> Response:
        log.error("misconfigured: %s", error)
        return respond(request, MODEL_MISCONFIGURED.error(str(error)))

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 404:
            problem = NOT_FOUND.error(f"No such endpoint: {request.method} {request.url.path}.")
        elif error.status_code == 405:
            problem = METHOD_NOT_ALLOWED.error(
                f"Method {request.method} not allowed on {request.url.path}.")
        else:
            detail = error.detail if isinstance(error.detail, str) else None
            problem = ProblemError(error.status_code, http_status_code(error.status_code),
                                   detail or "HTTP error.")
        problem.headers.update(error.headers or {})
        return respond(request, problem)

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}"
                          for e in error.errors())
        return respond(request, INVALID_REQUEST.error(where or None))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        # The operator gets the traceback with the request id; the client learns nothing internal.
        log.error("unexpected error in request %s", request_id_of(request.scope), exc_info=error)
        return respond(request, INTERNAL_ERROR.error())

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(imaging.ImageRejected, on_image_rejected)
    app.add_exception_handler(ModelUnavailable, on_unavailable)
    app.add_exception_handler(ModelTimeout, on_timeout)
    app.add_exception_handler(BudgetExhausted, on_decoder_busy)
    app.add_exception_handler(ModelFailed, on_model_failed)
    app.add_exception_handler(LabelsMismatch, on_labels_mismatch)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
