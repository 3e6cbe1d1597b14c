"""app.core.logs: the text format keeps every record on one line, whatever a client sent."""

from __future__ import annotations

import logging
import sys

from app.core.logs import formatter


def record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    made = logging.LogRecord("app.access", logging.INFO, __file__, 1, message, args,
                             sys.exc_info() if exc_info else None)
    made.request_id = "rid"
    return made


def test_a_path_with_cr_lf_cannot_forge_a_line() -> None:
    # uvicorn percent-decodes the path: /predict%0d%0a2026-01-01 ... arrives as CR LF.
    path = "/predict\r\n2026-01-01 00:00:00,000 INFO app.access [x] GET /admin 200 1.0 ms"
    line = formatter("text").format(record("%s %s %d %.1f ms", "GET", path, 404, 1.0))
    assert "\n" not in line and "\r" not in line
    assert "/predict\\x0d\\x0a2026-01-01" in line


def test_every_control_character_is_escaped() -> None:
    line = formatter("text").format(record("a\x1b[31mb\x00c\x7fd\x85e\u2028f\tg"))
    assert line.endswith("a\\x1b[31mb\\x00c\\x7fd\\x85e\\u2028f\\x09g")


def test_a_traceback_keeps_its_lines_each_indented() -> None:
    try:
        raise ValueError("bad\nINFO forged")
    except ValueError:
        line = formatter("text").format(record("failed", exc_info=True))
    first, *rest = line.split("\n")
    assert first.endswith("failed") and rest
    assert all(part.startswith("    ") for part in rest)


def test_json_lines_stay_json() -> None:
    line = formatter("json").format(record("GET %s", "/a\r\nb"))
    assert "\n" not in line and '\\r\\nb' in line
