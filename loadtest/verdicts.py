"""What an answer means for a load run (pure: no Locust, no gevent)."""

from __future__ import annotations

# Answers by which the edge sheds load on purpose, documented as the limits working
# (docs/edge.md, docs/reliability.md): counted apart, not as failed requests.
SHED = frozenset({(429, "uploads_busy")})


def judge(status: int, code: str | None, expected: frozenset[int]) -> str:
    """"ok" (an expected status), "shed" (the edge shedding load on purpose) or "failure"."""
    if status in expected:
        return "ok"
    return "shed" if (status, code) in SHED else "failure"
