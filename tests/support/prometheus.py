"""Read Prometheus text exposition (prometheus-client's parser) into comparable samples."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

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
