"""The normalizer's metrics: records in, events out and dead letters, by provider.

Counted once a batch is acknowledged (what was published, not what was tried). The provider is
the one the record's source is configured with (``hookbus-source``), :data:`~hookbus.metrics.UNKNOWN`
for a record of no configured source. An event's type is a label only when its provider documents
it (``Mapper.known_types``; a ``<source>`` placeholder stands for each configured source of the
provider), else :data:`~hookbus.metrics.OTHER`: a type read from a payload (Standard Webhooks,
a generic source's mapping) is the sender's choice, and would make the series unbounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from prometheus_client import Counter

from hookbus.config import SourceConfig
from hookbus.metrics import OTHER, UNKNOWN
from hookbus.provider import provider
from hookbus.rawevent import SOURCE_HEADER
from hookbus.stage.record import KafkaHeaders
from hookbus.stage.runtime import Outgoing

__all__ = ["DEAD_LETTERS", "EVENTS", "RECORDS", "NormalizerMetrics"]

RECORDS: Final = Counter(
    "hookbus_normalizer_records_total", "Raw records read and settled (as an event or a dead letter).", ["provider"]
)
EVENTS: Final = Counter(
    "hookbus_normalizer_events_total", "CloudEvents published to the events topic.", ["provider", "type"]
)
DEAD_LETTERS: Final = Counter(
    "hookbus_normalizer_dead_letters_total",
    "Raw records sent to the dead-letter topic, by reason.",
    ["provider", "reason"],
)
_SOURCE_PLACEHOLDER = "<source>"


def _documented_types(provider_name: str, source_names: Iterable[str]) -> frozenset[str]:
    types: set[str] = set()
    for canonical in provider(provider_name).mapper.known_types.values():
        if _SOURCE_PLACEHOLDER in canonical:
            types.update(canonical.replace(_SOURCE_PLACEHOLDER, name) for name in source_names)
        else:
            types.add(canonical)
    # What still holds a placeholder (a type named by the payload) matches no event exactly.
    return frozenset(name for name in types if "<" not in name)


class NormalizerMetrics:
    """The counters, their children bound per source at start (what every record touches)."""

    def __init__(self, sources: Iterable[SourceConfig]) -> None:
        sources = tuple(sources)
        self._provider_of: Mapping[bytes, str] = {source.name.encode(): source.provider for source in sources}
        self._types: Mapping[str, frozenset[str]] = {
            name: _documented_types(name, [source.name for source in sources if source.provider == name])
            for name in {source.provider for source in sources}
        }
        self._records = {name: RECORDS.labels(name) for name in [*self._types, UNKNOWN]}

    def count(self, published: Sequence[Outgoing]) -> None:
        """Count a batch's outputs and dead letters (the normalizer makes one of either of each record)."""
        for item in published:
            provider_name = self._provider(item.source.headers)
            self._records[provider_name].inc()
            if item.dead_letter:
                DEAD_LETTERS.labels(provider_name, item.label).inc()
            else:
                known = self._types.get(provider_name, frozenset())
                EVENTS.labels(provider_name, item.label if item.label in known else OTHER).inc()

    def _provider(self, headers: KafkaHeaders) -> str:
        for name, value in headers:
            if name == SOURCE_HEADER:
                return self._provider_of.get(value, UNKNOWN)
        return UNKNOWN
