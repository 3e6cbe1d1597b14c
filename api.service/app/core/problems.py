"""RFC 9457 problem details: the one shape of every error this API returns."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"
# A tag URI (RFC 4151) names each problem type without pretending it is a web page.
PROBLEM_TYPE_PREFIX = "tag:cassava-api,2025:problem:"


class Problem(BaseModel):
    """An error, as application/problem+json (RFC 9457) with a stable machine-readable `code`."""

    type: str = Field(examples=[f"{PROBLEM_TYPE_PREFIX}undecodable_image"])
    title: str = Field(examples=["Undecodable image"])
    status: int = Field(examples=[400])
    detail: str = Field(examples=["The uploaded JPEG image is corrupt and could not be decoded."])
    code: str = Field(examples=["undecodable_image"], description="stable; see docs")
    request_id: str | None = Field(None, description="same as the X-Request-ID header")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").capitalize()
        self.headers = dict(headers or {})


def problem_body(status: int, code: str, detail: str, *, title: str | None = None,
                 request_id: str | None = None) -> dict[str, object]:
    """The JSON object of a problem document."""
    return Problem(type=PROBLEM_TYPE_PREFIX + code,
                   title=title or code.replace("_", " ").capitalize(),
                   status=status, detail=detail, code=code,
                   request_id=request_id).model_dump(exclude_none=True)


def problem_response(error: ProblemError, request_id: str | None = None) -> JSONResponse:
    """A ProblemError as an HTTP response."""
    return JSONResponse(
        problem_body(error.status, error.code, error.detail, title=error.title,
                     request_id=request_id),
        status_code=error.status, headers=error.headers, media_type=PROBLEM_MEDIA_TYPE)


def http_status_code(status: int) -> str:
    """A snake_case code for a bare HTTP status: 404 -> not_found, 405 -> method_not_allowed."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"
