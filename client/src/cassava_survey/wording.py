"""Counts in messages, with the noun's plural right ("1 photo", "2 photos")."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
