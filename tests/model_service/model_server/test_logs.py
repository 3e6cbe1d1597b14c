"""model_server.logs: TF Serving-shaped text lines stay one line per record."""

from __future__ import annotations

import logging
import sys

from model_server.logs import formatter


def test_control_characters_cannot_forge_a_line() -> None:
    record = logging.LogRecord("model_server", logging.WARNING, __file__, 1, "no model %s",
                               ("x\r\n2026-01-01 00:00:00.000000: I model_server/x.py:1] f",),
                               None)
    record.request_id = "rid\x1b[2J"
    line = formatter("text").format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\\x0d\\x0a2026" in line and "[request rid\\x1b[2J]" in line


def test_a_traceback_keeps_its_lines_each_indented() -> None:
    try:
        raise ValueError("bad\nforged")
    except ValueError:
        record = logging.LogRecord("model_server", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    first, *rest = formatter("text").format(record).split("\n")
    assert first.endswith("failed") and rest
    assert all(part.startswith("    ") for part in rest)
