"""Log lines on stderr: shaped like TF Serving's (LOG_FORMAT=text, the default)

    2024-05-01 10:00:00.123456: I model_server/manager.py:42] message

or one JSON object per line (LOG_FORMAT=json, python-json-logger): timestamp, level, logger,
message, and the request id of the gRPC call being served (the API sends it as metadata),
model name/version and duration where a record has them.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime

from pythonjsonlogger.json import JsonFormatter

from model_server import monitoring

LEVEL_LETTERS = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators -> visible escapes:
# clients control parts of some records (a REST path, a model name asked for), and raw, a CR LF
# there would forge a line of its own (issue 20). The API's text format does the same.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


class TfServingFormatter(logging.Formatter):
    """One record, one line (control characters escaped); a traceback keeps its lines, each
    indented, so no line of it starts a record."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        letter = LEVEL_LETTERS.get(record.levelname, "I")
        where = f"model_server/{record.filename}:{record.lineno}"
        line = f"{when}: {letter} {where}] {record.getMessage()}"
        request_id = getattr(record, "request_id", None)
        if request_id:
            line += f" [request {request_id}]"
        line = line.translate(_ESCAPES)
        if record.exc_info:
            line += "".join("\n    " + part.translate(_ESCAPES)
                            for part in self.formatException(record.exc_info).split("\n"))
        return line


class RequestIdFilter(logging.Filter):
    """Stamps every record with the request id of the call this thread serves (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = monitoring.REQUEST_ID.get()
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter("{levelname}{name}{message}", style="{", timestamp=True,
                             rename_fields={"levelname": "level", "name": "logger"})
    return TfServingFormatter()


def setup(log_format: str | None = None) -> logging.Logger:
    """The `model_server` logger writing to stderr, line by line (LOG_FORMAT: text or json)."""
    log_format = log_format or os.environ.get("LOG_FORMAT", "text")
    logger = logging.getLogger("model_server")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def servable_id(name: str, version: int) -> str:
    """TF Serving's ServableId::DebugString."""
    return f"{{name: {name} version: {version}}}"
