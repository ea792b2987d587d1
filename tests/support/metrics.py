"""Reading a Callcard process's Prometheus metrics the way Prometheus does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series not there yet (a counter never moved)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Summed over every series of `name` matching `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def scrape(url: str) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
