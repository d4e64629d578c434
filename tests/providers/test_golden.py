"""Golden tests: for every documented event type of every provider, a raw event in and the
exact CloudEvent out, as stored in each provider's golden file (``providers/<name>/golden.json``)
and reviewed by hand. Every installed provider is covered: the list comes from the registry.

``HOOKBUS_UPDATE_GOLDEN=1 pytest tests/providers/test_golden.py`` rewrites the expected
events from the current code; the committed files, reviewed in the diff, stay the truth.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hookbus.cloudevent import CloudEvent
from hookbus.provider import provider
from hookbus.request import Accept
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from normalizer.normalizer import Normalizer
from tests.providers.mapping_support import (
    GOLDEN_PROVIDERS,
    UPDATE_GOLDEN,
    VECTORS_GOLDEN,
    golden_file,
    golden_raw,
    golden_sources,
    read_golden,
    write_golden,
)
from tests.support import vector_files
from tools.vectors import load_vectors


def _cases() -> list[Any]:
    return [
        pytest.param(name, index, id=f"{name}/{case['name']}")
        for name in GOLDEN_PROVIDERS
        for index, case in enumerate(read_golden(golden_file(name))["cases"])
    ]


def _has_a_vocabulary_of_its_own(provider_name: str) -> bool:
    """A provider whose type table names a placeholder (``generic.<source>.received``) maps
    whatever its sources call their events: none of its types is undocumented."""
    return any("<" in canonical for canonical in provider(provider_name).mapper.known_types.values())


def _normalize_case(document: dict[str, Any], index: int) -> CloudEvent:
    sources = golden_sources(document)
    case = document["cases"][index]
    normalizer = Normalizer(sources)
    return normalizer.normalize(golden_raw(sources[case["source"]], case))


@pytest.mark.parametrize(("provider_name", "index"), _cases())
def test_golden_case_maps_to_its_reviewed_event(provider_name: str, index: int) -> None:
    document = read_golden(golden_file(provider_name))
    event = _normalize_case(document, index)
    if UPDATE_GOLDEN:
        document["cases"][index]["event"] = event.to_dict()
        write_golden(golden_file(provider_name), document)
    expected = document["cases"][index]["event"]
    assert event.to_dict() == expected
    # The stored event is itself valid, and survives the JSON round trip unchanged.
    Normalizer(golden_sources(document)).validate(CloudEvent.from_dict(expected))


@pytest.mark.parametrize("provider_name", GOLDEN_PROVIDERS)
def test_every_documented_type_has_a_golden_case(provider_name: str) -> None:
    document = read_golden(golden_file(provider_name))
    covered = {
        case["event"]["type"].replace(f".{case['source']}.", ".<source>.")
        for case in document["cases"]
        if case["event"]["knowntype"]
    }
    documented = provider(provider_name).mapper.known_types.values()
    missing = {canonical for canonical in documented if not any(_instance_of(canonical, name) for name in covered)}
    assert not missing


def _instance_of(documented: str, event_type: str) -> bool:
    """Whether a golden case's type is the documented one. ``<source>`` is the case's own
    source; any other placeholder (``standard_webhooks.<type>``: every value of the source's
    type field) stands for any text, so one case of it covers it."""
    parts = re.split(r"(<(?!source>)[a-z_]+>)", documented)
    pattern = "".join(".+" if index % 2 else re.escape(part) for index, part in enumerate(parts))
    return re.fullmatch(pattern, event_type) is not None


@pytest.mark.parametrize("provider_name", [name for name in GOLDEN_PROVIDERS if not _has_a_vocabulary_of_its_own(name)])
def test_golden_files_also_hold_an_undocumented_type(provider_name: str) -> None:
    events = [case["event"] for case in read_golden(golden_file(provider_name))["cases"]]
    unknown = [event for event in events if not event["knowntype"]]
    assert unknown
    assert all(event["type"].startswith(f"{provider_name}.") for event in unknown)


@pytest.mark.vectors
def test_accepted_vectors_map_to_their_reviewed_events(vectors_dir: Path) -> None:
    """Every accepted entry of the shared vectors, through the gateway's own decision and
    capture, maps to the event stored for it (keyed by vector file and entry name)."""
    expected: dict[str, Any] = {} if UPDATE_GOLDEN else read_golden(VECTORS_GOLDEN)
    seen: dict[str, Any] = {}
    for path in vector_files(vectors_dir):
        for entry in load_vectors(path):
            verdict = decide(entry.source, entry.request, entry.now)
            if entry.expect != "accept":
                continue
            assert isinstance(verdict, Accept), entry.name
            raw = capture(
                entry.source,
                entry.request,
                verdict.auth,
                entry.now,
                f"offline-{entry.name}",
                kept_headers(entry.source),
            )
            event = Normalizer({entry.source.name: entry.source}).normalize(raw)
            seen[f"{path.stem}/{entry.name}"] = event.to_dict()
    if UPDATE_GOLDEN:
        write_golden(VECTORS_GOLDEN, seen)
        expected = seen
    assert seen == expected
