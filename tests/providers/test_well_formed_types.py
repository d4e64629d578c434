"""Valid events are never dead-lettered: every type a provider documents maps to its own
type, every other well-formed one passes flagged (``knowntype: false``), and a field a
provider adds never fails its schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hookbus.config import SourceConfig
from hookbus.mapping import MappingError
from tests.providers.mapping_support import (
    NORMALIZER,
    OCTAMILE,
    OCTOBER,
    OFFERTE,
    OFFICERND,
    TIMESTAMP,
    mapped,
    raw_event,
)


@pytest.mark.parametrize("event_name", ["new_report", "update_request", "new_offer", "update_offer", "offer_won"])
def test_october_events_may_carry_both_ids(event_name: str) -> None:
    body = {"event": event_name, "requestId": "r1", "offerId": "o1", "diff": {"property": "stage", "after": "x"}}
    event = mapped(OCTOBER, orjson.dumps(body), headers=TIMESTAMP)
    parents = event.data["parents"]
    assert {"request": "r1", "offer": "o1"}.items() >= parents.items()
    assert {event.data["resource_id"], *parents.values()} == {"r1", "o1"}


def test_offerte_adviseur_undocumented_type_passes_flagged() -> None:
    body = b'{"id": "evt-9", "type": "lead.status.changed", "payload": {"lead_id": 12345, "status": "won"}}'
    event = mapped(OFFERTE, body)
    assert (event.type, event.extensions["knowntype"], event.subject) == (
        "offerte_adviseur.lead.status.changed",
        False,
        "12345",
    )
    assert (event.data["resource"], event.data["action"]) == ("lead", "status.changed")
    assert event.partition_key == "offerte_adviseur:lead:12345"


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt-9", "type": "account.deleted", "payload": {}}',
        b'{"id": "evt-9", "type": "ping"}',
    ],
)
def test_offerte_adviseur_undocumented_type_without_an_id_passes(body: bytes) -> None:
    event = mapped(OFFERTE, body)
    assert event.extensions["knowntype"] is False
    assert event.subject is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "e1", "eventType": "space.archived", "data": {}, "createdAt": "2020-10-14T15:14:18.042Z"}',
        b'{"event": "e1", "eventType": "space.archived"}',
        b'{"event": "e1", "eventType": "space.archived", "data": {"object": {"name": "no id"}}}',
    ],
)
def test_officernd_undocumented_type_with_empty_data_passes(body: bytes) -> None:
    event = mapped(OFFICERND, body)
    assert (event.type, event.extensions["knowntype"]) == ("officernd.space.archived", False)
    assert event.partition_key.startswith("officernd:space")


def test_a_documented_officernd_type_still_needs_its_object() -> None:
    with pytest.raises(MappingError) as caught:
        NORMALIZER.normalize(raw_event(OFFICERND, b'{"event": "e1", "eventType": "member.removed", "data": {}}'))
    assert caught.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("source", "body", "headers"),
    [
        (OCTOBER, {"event": "new_offer", "offerId": "o1", "newField": {"a": 1}}, TIMESTAMP),
        (OFFERTE, {"id": "x", "type": "lead.sold", "payload": {"lead_id": 1}, "newField": [1]}, {}),
        (
            OFFICERND,
            {"event": "e", "eventType": "member.created", "data": {"object": {"_id": "m"}, "x": 1}, "newField": 2},
            {},
        ),
        (OCTAMILE, {"trnsctnId": "t", "status": "d", "newField": True}, {}),
    ],
)
def test_a_field_a_provider_adds_never_fails_its_schema(
    source: SourceConfig, body: dict[str, Any], headers: dict[str, str]
) -> None:
    event = mapped(source, orjson.dumps(body), headers=headers)
    assert b"newField" in event.data_bytes()
