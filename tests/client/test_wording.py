"""Counts in the survey tool's messages: "1 file", "2 files", "0 files"."""

from __future__ import annotations

import pytest

from cassava_survey.wording import counted


@pytest.mark.parametrize(("number", "text"), [(0, "0 files"), (1, "1 file"), (2, "2 files")])
def test_counted(number: int, text: str) -> None:
    assert counted(number, "file") == text
