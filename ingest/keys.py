"""The raw record's key: the entity a verified request is about, else its source.

One entity's requests share a partition of the raw topic, in the order the gateway
acknowledged them, while different entities spread over every partition (docs/operations.md
says what each choice costs). The provider reads the entity (its ``raw_key``,
:mod:`hookbus.rawkey`); a provider without one, or a request it cannot tell, is keyed by its
source, as every request once was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hookbus.config import SourceConfig
from hookbus.logging import get_logger
from hookbus.provider import provider
from hookbus.rawkey import RawKey
from ingest.errors import described


def raw_keys(sources: Iterable[SourceConfig]) -> dict[str, RawKey]:
    """Each source's key reader, bound once; sources whose provider has none are left out."""
    bound: dict[str, RawKey] = {}
    for source in sources:
        binder = provider(source.provider).raw_key
        if binder is not None:
            bound[source.name] = binder(source)
    return bound


def entity_of(source: str, read: RawKey | None, body: bytes, headers: Mapping[str, str]) -> str | None:
    """The entity of a verified request, or ``None`` to key it by its source.

    A reader that raises (a provider's bug) costs the request its entity key, never its 2xx:
    the source key keeps its order with every request the reader could not tell.
    """
    if read is None:
        return None
    try:
        return read(body, headers)
    except Exception as exc:
        get_logger(service="gateway").error("raw_key_failed", source=source, **described(exc))
        return None
