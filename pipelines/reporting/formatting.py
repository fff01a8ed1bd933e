"""How the report writes numbers and moments, the same in the terminal and on the HTML page."""

from __future__ import annotations

import datetime as dt


def signed(value: int) -> str:
    """A change with its sign and thousands separators (`+1,204`, `-3`), or `0`."""
    return f"{value:+,}" if value else "0"


def utc(moment: dt.datetime, seconds: bool = True) -> str:
    """`moment` in UTC as `2026-11-27 06:00:00Z` (without the seconds when `seconds` is False)."""
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M{':%S' if seconds else ''}}Z"


def count(n: int, noun: str) -> str:
    """`n` with thousands separators and `noun`, plural unless `n` is 1: `1 project`, `1,200 images`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
