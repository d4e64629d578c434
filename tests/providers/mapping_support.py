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

from hookbus.config import SourceConfig
from hookbus.provider import provider, providers
from hookbus.rawevent import AuthMethod, RawEvent

UPDATE_GOLDEN = os.environ.get("HOOKBUS_UPDATE_GOLDEN") == "1"
GOLDEN_PROVIDERS = tuple(providers())
VECTORS_GOLDEN = Path(__file__).parent / "vectors_golden.json"
"""What the shared signed-request vectors normalize to."""


def raw_event(
    source: SourceConfig,
    body: bytes | str,
    *,
    headers: Mapping[str, str] | None = None,
    received_at: float = 1767225600.0,
    ingest_id: str = "ing-test",
    auth: AuthMethod = AuthMethod.SIGNATURE,
) -> RawEvent:
    return RawEvent(
        source=source.name,
        provider=source.provider,
        ingest_id=ingest_id,
        received_at=received_at,
        body=body.encode("utf-8") if isinstance(body, str) else body,
        content_type="application/json",
        auth=auth,
        headers=dict(headers or {}),
    )


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
