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
    return logging.Formatter(TEXT_FORMAT)


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
