"""Raw record keys: for every golden case of every installed provider, the gateway keys the
raw record by the entity the mapper keys the event by (``<source>/<partitionkey>``), so one
entity's requests keep their order in the raw topic as its events do in the canonical one.
A mapper that keys by the source's name alone (a generic source without a
``partition_key`` mapping) has nothing finer to give, and the record is keyed by the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from hookbus.provider import provider
from hookbus.rawevent import AuthMethod, wire_bytes
from hookbus.request import Accept, RawRequest
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from ingest.keys import entity_of, raw_keys
from normalizer.normalizer import Normalizer
from tests.providers.mapping_support import GOLDEN_PROVIDERS, golden_file, golden_sources, read_golden
from tests.support import vector_files
from tools.vectors import load_vectors


def _cases() -> list[Any]:
    return [
        pytest.param(name, index, id=f"{name}/{case['name']}")
        for name in GOLDEN_PROVIDERS
        for index, case in enumerate(read_golden(golden_file(name))["cases"])
    ]


@pytest.mark.parametrize("provider_name", GOLDEN_PROVIDERS)
def test_every_installed_provider_reads_raw_keys(provider_name: str) -> None:
    assert provider(provider_name).raw_key is not None


@pytest.mark.parametrize(("provider_name", "index"), _cases())
def test_the_raw_record_is_keyed_by_the_entity_of_the_golden_event(provider_name: str, index: int) -> None:
    document = read_golden(golden_file(provider_name))
    case = document["cases"][index]
    source = golden_sources(document)[case["source"]]
    raw = case["raw"]
    # As the gateway has them: case-insensitive, the content type among them.
    headers = CIMultiDict(raw["headers"])
    headers["Content-Type"] = raw.get("content_type", "application/json")
    body = raw["body"].encode("utf-8")
    request = RawRequest(method="POST", body=body, client_addr="198.51.100.7", headers=CIMultiDictProxy(headers))
    entity = entity_of(source.name, raw_keys([source]).get(source.name), body, headers)
    record = capture(source, request, AuthMethod(raw["auth"]), raw["received_at"], "ing-1", frozenset(), entity=entity)

    partition_key = case["event"]["partitionkey"]
    expected = source.name if partition_key == source.name else f"{source.name}/{partition_key}"
    assert record.kafka_key == wire_bytes(expected)


@pytest.mark.vectors
def test_accepted_vectors_are_keyed_by_the_entity_of_their_event(vectors_dir: Path) -> None:
    """The shared signed requests, through the gateway's own decision: each raw record's key
    names the entity its event is keyed by."""
    judged = 0
    for path in vector_files(vectors_dir):
        for entry in load_vectors(path):
            verdict = decide(entry.source, entry.request, entry.now)
            if not isinstance(verdict, Accept):
                continue
            source, request = entry.source, entry.request
            entity = entity_of(source.name, raw_keys([source]).get(source.name), request.body, request.headers)
            raw = capture(source, request, verdict.auth, entry.now, "ing-1", kept_headers(source), entity=entity)
            partition_key = Normalizer({source.name: source}).normalize(raw).partition_key
            expected = source.name if partition_key == source.name else f"{source.name}/{partition_key}"
            assert raw.kafka_key == wire_bytes(expected), f"{path.stem}/{entry.name}"
            judged += 1
    assert judged
