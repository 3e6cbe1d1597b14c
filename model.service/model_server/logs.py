"""Log lines shaped like TF Serving's, on stderr.

    2024-05-01 10:00:00.123456: I model_server/manager.py:42] message
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

LEVEL_LETTERS = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


class TfServingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        letter = LEVEL_LETTERS.get(record.levelname, "I")
        where = f"model_server/{record.filename}:{record.lineno}"
        line = f"{when}: {letter} {where}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup() -> logging.Logger:
    """The `model_server` logger writing TF Serving-style lines to stderr, line by line."""
    logger = logging.getLogger("model_server")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TfServingFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def servable_id(name: str, version: int) -> str:
    """TF Serving's ServableId::DebugString."""
    return f"{{name: {name} version: {version}}}"
