"""Errors as TF Serving reports them: a canonical status code and a message, on gRPC and REST."""

from __future__ import annotations

import grpc

# TF Serving's REST handler maps canonical codes to HTTP statuses like this (ToHTTPStatusCode).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request TF Serving would fail with `code` and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    @property
    def code_number(self) -> int:
        """tensorflow.error.Code, which numbers the codes exactly as gRPC does."""
        return self.code.value[0]

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def from_exception(error: BaseException) -> ServingError:
    """A TensorFlow or loader exception as a canonical status (OpError carries TF's own code)."""
    if isinstance(error, ServingError):
        return error
    code_number = getattr(error, "error_code", None)
    if isinstance(code_number, int) and code_number in CODE_BY_NUMBER:
        message = getattr(error, "message", None) or str(error)
        return ServingError(CODE_BY_NUMBER[code_number], message)
    return ServingError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")
