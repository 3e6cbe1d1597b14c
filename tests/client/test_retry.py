"""Retry-After and backoff (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cassava_survey.retry import backoff_delay, parse_retry_after

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0), (" 0 ", 0.0), ("99999", 600.0),                    # capped at 10 minutes
    ("Mon, 05 Jan 2026 12:00:30 GMT", 30.0),                         # an HTTP-date
    ("Mon, 05 Jan 2026 11:59:00 GMT", 0.0),                          # already past
    ("-3", None), ("soon", None), ("", None), (None, None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_wins_over_backoff() -> None:
    assert backoff_delay(1, 7.0, jitter=0.9) == 7.0
    assert backoff_delay(6, 0.0, jitter=0.9) == 0.0


def test_exponential_backoff_with_equal_jitter_and_a_cap() -> None:
    assert [backoff_delay(n, None, jitter=0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff_delay(n, None, jitter=1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(20, None, jitter=1.0, cap=60) == 60.0
    with pytest.raises(ValueError):
        backoff_delay(0, None, jitter=0.5)
