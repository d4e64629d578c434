"""The gateway's raw key: a provider's reader that raises costs the request its entity key,
never its answer; the failure is logged without the body."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from hookbus.config import SourceConfig
from ingest.keys import entity_of, raw_keys


def broken_reader(body: bytes, headers: Mapping[str, str]) -> str | None:
    raise ValueError(body.decode())


def test_a_reader_that_raises_falls_back_to_the_source_and_is_logged_without_the_body() -> None:
    with structlog.testing.capture_logs() as logs:
        assert entity_of("crm", broken_reader, b'{"secret": "s-41"}', {}) is None
    assert [line["event"] for line in logs] == ["raw_key_failed"]
    assert logs[0]["source"] == "crm"
    assert "s-41" not in repr(logs)


def test_a_source_without_a_reader_is_keyed_by_its_source() -> None:
    assert entity_of("crm", None, b'{"id": "1"}', {}) is None


def test_every_source_gets_its_providers_reader_bound_to_it() -> None:
    sources = [
        SourceConfig(name="lender", provider="october"),
        SourceConfig(name="acme", provider="standard_webhooks"),
    ]
    bound = raw_keys(sources)
    assert bound["lender"](b'{"event": "new_offer", "offerId": "o-1"}', {}) == "october:offer:o-1"
    # Standard Webhooks keys by source as well as entity: the reader is the source's own.
    assert bound["acme"](b'{"type": "a.b", "data": {"id": 7}}', {}) == "standard_webhooks:acme:7"
