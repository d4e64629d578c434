"""Helpers of the mapping tests: raw events from plain values, and the golden files.

Every installed provider's golden cases are the file its :class:`~hookbus.provider.Provider`
names (``providers/<name>/golden.json`` for hookbus's own), so a new provider is tested as
soon as it is installed, and one without golden cases cannot be registered at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import SourceConfig
from hookbus.provider import provider, providers
from hookbus.rawevent import AuthMethod, RawEvent
from normalizer.normalizer import Normalizer

UPDATE_GOLDEN = os.environ.get("HOOKBUS_UPDATE_GOLDEN") == "1"
GOLDEN_PROVIDERS = tuple(providers())
VECTORS_GOLDEN = Path(__file__).parent / "vectors_golden.json"
"""What the shared signed-request vectors normalize to."""

# One source of each provider, and a normalizer for them, shared by the mapping tests.
OCTOBER = SourceConfig(name="october-live", provider="october")
OFFICERND = SourceConfig(name="rnd", provider="officernd")
OFFERTE = SourceConfig(name="offerte", provider="offerte_adviseur")
OCTAMILE = SourceConfig(name="octamile", provider="octamile")
GENERIC = SourceConfig(name="crm", provider="generic")
NORMALIZER = Normalizer({source.name: source for source in (OCTOBER, OFFICERND, OFFERTE, OCTAMILE, GENERIC)})
TIMESTAMP = {"x-o5r-timestamp": "1647937499151"}
"""October's timestamp header, as in its documentation's example."""


def raw_event(
    source: SourceConfig,
    body: bytes | str,
    *,
    headers: Mapping[str, str] | None = None,
    received_at: float = 1767225600.0,
    ingest_id: str = "ing-test",
    auth: AuthMethod = AuthMethod.SIGNATURE,
    content_type: str = "application/json",
    method: str = "POST",
    query: Mapping[str, str] | None = None,
) -> RawEvent:
    return RawEvent(
        source=source.name,
        provider=source.provider,
        ingest_id=ingest_id,
        received_at=received_at,
        body=body.encode("utf-8") if isinstance(body, str) else body,
        content_type=content_type,
        method=method,
        auth=auth,
        headers=dict(headers or {}),
        query=query if query is not None else {},
    )


def mapped_raw(raw: RawEvent) -> CloudEvent:
    """``raw`` normalized by :data:`NORMALIZER`: valid, and read back equal from a Kafka
    record in either mode."""
    event = NORMALIZER.normalize(raw)
    NORMALIZER.validate(event)
    for mode in Mode:
        _, value, headers = event.to_kafka(mode)
        assert CloudEvent.from_kafka(headers, value) == event
    return event


def mapped(source: SourceConfig, body: bytes | str, **kwargs: Any) -> CloudEvent:
    """:func:`mapped_raw` of a raw event built by :func:`raw_event`."""
    return mapped_raw(raw_event(source, body, **kwargs))


def golden_sources(document: Mapping[str, Any]) -> dict[str, SourceConfig]:
    return {
        name: SourceConfig(name=name, provider=spec["provider"], options=spec.get("options", {}))
        for name, spec in document["sources"].items()
    }


def golden_raw(source: SourceConfig, case: Mapping[str, Any]) -> RawEvent:
    raw = case["raw"]
    return raw_event(
        source,
        raw["body"],
        headers=raw["headers"],
        received_at=raw["received_at"],
        ingest_id=raw["ingest_id"],
        auth=AuthMethod(raw["auth"]),
        # A case names the request's content type, method and query when they matter.
        content_type=raw.get("content_type", "application/json"),
        method=raw.get("method", "POST"),
        query=raw.get("query"),
    )


def golden_file(provider_name: str) -> Path:
    """The golden cases of an installed provider (a file of its package)."""
    return Path(str(provider(provider_name).golden_cases))


def read_golden(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def write_golden(path: Path, document: Any) -> None:
    """Rewrite a golden file (HOOKBUS_UPDATE_GOLDEN=1); review the diff before committing it."""
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8")
    path.write_text(text + "\n", encoding="utf-8")
