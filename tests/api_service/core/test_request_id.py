"""X-Request-ID: sane incoming ids are kept, anything else replaced."""

from __future__ import annotations

import re
import uuid

import pytest

from app.core.request_id import choose_request_id


@pytest.mark.parametrize("incoming", ["abc-123", "3f2a9c0d4e5b4a7f8e1d2c3b4a596877",
                                      "req:1/2@edge.example=+_"])
def test_sane_ids_are_kept(incoming: str) -> None:
    assert choose_request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "a b", "x" * 129, "évil", "a\r\nSet-Cookie: x",
                                      "<script>"])
def test_other_ids_are_replaced_by_a_fresh_one(incoming: str | None) -> None:
    chosen = choose_request_id(incoming)
    assert chosen != incoming
    # A fresh random id: 32 lowercase hex digits of a version 4 (random) UUID, new each time.
    assert re.fullmatch(r"[0-9a-f]{32}", chosen), chosen
    assert uuid.UUID(hex=chosen).version == 4
    assert choose_request_id(incoming) != chosen
