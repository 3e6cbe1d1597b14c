"""Read Prometheus text exposition (prometheus-client's parser) into comparable samples."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """Every sample: (sample name, labels) -> value."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none). The
    parser names counter samples NAME_total even where the page says NAME (TF Serving's way),
    so a counter is found under either."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items()
               if n in (name, f"{name}_total") and wanted <= found)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def label_values(samples: Samples, name: str, label: str) -> Mapping[str, float]:
    """label value -> summed sample value, for one sample name."""
    out: dict[str, float] = {}
    for (n, found), v in samples.items():
        if n == name:
            key = dict(found).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def queries_without_data(queries: list[tuple[str, str]], ask: Callable[[str], object],
                         timeout: float, every: float) -> list[str]:
    """"title: query" of each (title, PromQL) pair that still has no data after polling (with
    wait_until) for up to `timeout` seconds; [] once every one has. A dashboard's panels fill in
    as Prometheus scrapes each target twice (their scrape offsets differ)."""
    def empty() -> list[str]:
        return [f"{title}: {promql}" for title, promql in queries if not ask(promql)]

    with contextlib.suppress(TimeoutError):  # the caller names what is still empty
        wait_until(lambda: not empty(), timeout, "data for every query", every=every)
    return empty()
