"""Gateway checks that need no broker: the example configuration, the status of every reason, ingest ids."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hookbus.config import load_config
from hookbus.request import Reason
from ingest.decision import check_sources
from ingest.gateway import STATUS_BY_REASON, new_ingest_id

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"


def test_example_config_passes_the_startup_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OFFICERND_SECRET", "OCTOBER_SECRET", "OCTAMILE_API_KEY"):
        monkeypatch.setenv(name, f"example-{name.lower()}")
    config = load_config(EXAMPLE)
    check_sources(config.sources, file=config.path)
    assert [source.name for source in config.sources] == ["officernd", "october", "octamile"]
    officernd = config.source("officernd")
    assert officernd is not None
    assert len(officernd.secrets) == 1


def test_every_rejection_reason_has_a_client_error_status() -> None:
    assert all(400 <= STATUS_BY_REASON[reason] < 500 for reason in Reason)


def test_ingest_ids_are_unique_time_ordered_uuids() -> None:
    ids = [new_ingest_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(text).version for text in ids} == {7}
    # The first 48 bits are milliseconds: ids issued later never sort before earlier ones.
    prefixes = [text[:13] for text in ids]
    assert prefixes == sorted(prefixes)
