"""Benchmarks: run with `make bench`, never part of the test suite."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Seeding a million rows and a minute of load outlast the suite's per-test limit.
    for item in items:
        item.add_marker(pytest.mark.timeout(1800))
