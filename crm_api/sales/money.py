"""Money is kept in minor units (kopecks) as integers, so sums are exact on SQLite and
PostgreSQL alike, and travels as a decimal with two places."""

from __future__ import annotations

from decimal import Decimal


def to_minor(amount: Decimal) -> int:
    return int(amount * 100)


def from_minor(minor: int | None) -> Decimal:
    return (Decimal(minor or 0) / 100).quantize(Decimal("0.01"))
