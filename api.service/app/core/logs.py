"""Logging: one JSON object per line (LOG_FORMAT=json, python-json-logger) or plain text for a
terminal (LOG_FORMAT=text), each record with the request id of the request it belongs to; and
uvicorn's access log switched off: app.core.metrics writes ours (uvicorn's would log client
addresses, which are personal data)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from app.core import request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators -> visible escapes.
# A client controls parts of some log lines (the request path of the access log, which the HTTP
# server has percent-decoded): raw, a CR LF there would forge a line of its own (issue 20).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """`text` on one line: every control character as a visible escape (\\x0d, \\x1b...)."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT with every field on one line (control characters escaped, whoever wrote
    them); a traceback keeps its lines, each indented, so no line of it starts a record."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.CURRENT.get()
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # timestamp (ISO 8601, UTC), level, logger, message, then every `extra` field.
        return JsonFormatter("{levelname}{name}{message}", style="{", timestamp=True,
                             rename_fields={"levelname": "level", "name": "logger"})
    return TextFormatter()


def configure(log_format: str, level: str = "INFO") -> None:
    """Root handler on stderr; uvicorn's loggers go through it; uvicorn's access log is off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
