"""When to try a request again, and how long to wait first. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 429: the proxy's per-client rate limit; 502/503: the API or the model is down or restarting;
# 504: too slow this time. Everything else is an answer that will not change by asking again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 600.0  # a server asking for more than 10 minutes is not trusted beyond that


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After (RFC 9110 §10.2.3) as seconds from now: delay-seconds or an HTTP-date.
    None when absent or unreadable; never negative, never more than MAX_RETRY_AFTER."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff_delay(attempt: int, retry_after: float | None, *, jitter: float,
                  base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...). The server's Retry-After wins
    when it gave one; otherwise exponential backoff, base * 2^(attempt-1) up to `cap`, with
    `jitter` in [0, 1) spreading clients over the upper half of that window ("equal jitter")."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if retry_after is not None:
        return retry_after
    window = min(cap, base * 2.0 ** (attempt - 1))
    return window / 2 + window / 2 * min(max(jitter, 0.0), 1.0)
