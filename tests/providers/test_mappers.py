"""What the mappers refuse, and the properties of ids, times and partition keys."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.mapping import MappingError
from hookbus.provider import provider
from normalizer.errors import SchemaViolationError, UnknownSourceError
from normalizer.normalizer import Normalizer
from providers.generic.options import options_of
from tests.providers.mapping_support import GENERIC, NORMALIZER, OCTAMILE, OCTOBER, OFFERTE, OFFICERND, raw_event

# OfficeRnD's documented member.removed example, as published: a trailing comma after "email".
OFFICERND_DOC_EXAMPLE = b"""{
  "event": "5f8715ca1e74e400d4164ea6",
  "eventType": "member.removed",
  "data": {
    "object": {
      "_id": "5e8c9df14d46c7001064c3ef",
      "status": "active",
      "name": "Jonathan Brown",
      "email": "jonathan.brown@example.com",
    }
  },
  "createdAt": "2020-10-14T15:14:18.042Z"
}"""


def _october(body: dict[str, Any], timestamp: str = "1647937499151", **kwargs: Any) -> Any:
    return raw_event(OCTOBER, orjson.dumps(body), headers={"x-o5r-timestamp": timestamp}, **kwargs)


def _reason(source: SourceConfig, body: bytes | str, **kwargs: Any) -> str:
    with pytest.raises(MappingError) as caught:
        NORMALIZER.normalize(raw_event(source, body, **kwargs))
    return caught.value.reason


def test_officernd_documented_example_with_its_trailing_comma_is_unparseable() -> None:
    assert _reason(OFFICERND, OFFICERND_DOC_EXAMPLE) == "unparseable_body"


@pytest.mark.parametrize(
    ("source", "body", "reason"),
    [
        (OFFICERND, b"", "unparseable_body"),
        (OFFICERND, b"\xff\xfe", "unparseable_body"),
        (OFFICERND, b"[1, 2]", "not_an_object"),
        (OFFERTE, b'"lead.created"', "not_an_object"),
        (OCTAMILE, b"null", "not_an_object"),
        (OFFICERND, b'{"eventType": "member.removed", "data": {"object": {"_id": "m1"}}}', "missing_field"),
        (OFFICERND, b'{"event": "e1", "eventType": "member.removed", "data": {}}', "missing_field"),
        (
            OFFICERND,
            b'{"event": "e1", "eventType": "member.removed", "data": {"object": {"_id": 7}}}',
            "bad_field_type",
        ),
        # A documented subresource event without its parent cannot be ordered with it.
        (
            OFFICERND,
            b'{"event": "e1", "eventType": "invoice.charge.created", "data": {"object": {"_id": "c1"}}}',
            "missing_field",
        ),
        (
            OFFICERND,
            b'{"event": "e1", "eventType": "member.created", "data": {"object": {"_id": "m1"}}, '
            b'"createdAt": "yesterday"}',
            "bad_field_type",
        ),
        (
            OFFICERND,
            b'{"event": "e1", "eventType": "member.created", "data": {"object": {"_id": "m1"}}, '
            b'"createdAt": "2020-10-14T15:14:18"}',
            "bad_field_type",
        ),
        (OFFERTE, b'{"id": "x", "type": "lead.sold", "payload": {}}', "missing_field"),
        (OFFERTE, b'{"id": "x", "type": "lead.sold", "payload": {"lead_id": true}}', "bad_field_type"),
        (OFFERTE, b'{"id": "x", "type": "lead.sold", "payload": [1]}', "bad_field_type"),
        (OCTAMILE, b'{"status": "a"}', "missing_field"),
        (OCTAMILE, b'{"trnsctnId": "t1", "status": 1}', "bad_field_type"),
    ],
)
def test_what_a_mapper_cannot_map_is_a_mapping_error_with_a_reason(
    source: SourceConfig, body: bytes, reason: str
) -> None:
    assert _reason(source, body) == reason


def test_october_needs_its_timestamp_header_for_the_id() -> None:
    assert _reason(OCTOBER, b'{"event": "new_report", "requestId": "r1"}') == "missing_field"


def test_october_known_types_need_their_resource_id() -> None:
    with pytest.raises(MappingError) as caught:
        NORMALIZER.normalize(_october({"event": "update_offer", "diff": {"property": "stage", "after": "x"}}))
    assert caught.value.reason == "missing_field"


def test_an_error_message_never_carries_body_content() -> None:
    with pytest.raises(MappingError) as caught:
        NORMALIZER.normalize(
            raw_event(OFFERTE, b'{"id": "x", "type": "lead.sold", "payload": {"lead_id": ["secret-42"]}}')
        )
    assert "secret-42" not in str(caught.value)


def test_unknown_source_and_reconfigured_provider_are_routing_errors() -> None:
    with pytest.raises(UnknownSourceError) as unknown:
        NORMALIZER.normalize(raw_event(SourceConfig(name="gone", provider="october"), b"{}"))
    assert unknown.value.reason == "unknown_source"
    with pytest.raises(UnknownSourceError) as mismatch:
        NORMALIZER.normalize(raw_event(SourceConfig(name="rnd", provider="october"), b"{}"))
    assert mismatch.value.reason == "provider_mismatch"


def test_october_exact_redelivery_shares_the_id_a_resent_attempt_does_not() -> None:
    accepted = {"event": "update_request", "requestId": "r1", "diff": {"property": "status", "after": "accepted"}}
    pending = {**accepted, "diff": {"property": "status", "after": "pending"}}
    first = NORMALIZER.normalize(_october(accepted, "1000", ingest_id="a", received_at=1.0))
    replayed = NORMALIZER.normalize(_october(accepted, "1000", ingest_id="b", received_at=9.0))
    flipped = NORMALIZER.normalize(_october(pending, "2000"))
    flipped_back = NORMALIZER.normalize(_october(accepted, "3000"))
    assert first.id == replayed.id
    assert len({first.id, flipped.id, flipped_back.id}) == 3
    assert {first.partition_key, flipped.partition_key, flipped_back.partition_key} == {"october:request:r1"}


def test_ids_come_from_the_provider_and_are_namespaced_by_source() -> None:
    body = b'{"id": "evt-1", "type": "lead.sold", "payload": {"lead_id": 5}}'
    other = SourceConfig(name="offerte-2", provider="offerte_adviseur")
    normalizer = Normalizer({OFFERTE.name: OFFERTE, other.name: other})
    ids = {normalizer.normalize(raw_event(source, body)).id for source in (OFFERTE, other)}
    assert ids == {"offerte:evt-1", "offerte-2:evt-1"}


def test_octamile_id_is_the_transaction_and_status_not_the_delivery() -> None:
    approved = {"trnsctnId": "t1", "status": "d", "statusNote": "no"}
    first = NORMALIZER.normalize(raw_event(OCTAMILE, orjson.dumps(approved), ingest_id="a", received_at=1.0))
    again = NORMALIZER.normalize(
        raw_event(OCTAMILE, orjson.dumps({**approved, "statusNote": "no "}), ingest_id="b", received_at=2.0)
    )
    approved_later = NORMALIZER.normalize(raw_event(OCTAMILE, orjson.dumps({**approved, "status": "a"})))
    assert first.id == again.id
    assert first.id != approved_later.id


def test_generic_default_id_is_the_delivery_not_the_body() -> None:
    first = NORMALIZER.normalize(raw_event(GENERIC, b'{"a": 1}', received_at=1.0, ingest_id="ing-1"))
    replayed = NORMALIZER.normalize(raw_event(GENERIC, b'{"a": 1}', received_at=50.0, ingest_id="ing-1"))
    resent = NORMALIZER.normalize(raw_event(GENERIC, b'{"a": 1}', ingest_id="ing-2"))
    assert first.id == replayed.id == "crm:ing-1" != resent.id
    assert first.partition_key == "crm"


def test_time_is_the_received_time_when_the_provider_gives_none() -> None:
    event = NORMALIZER.normalize(raw_event(OCTAMILE, b'{"trnsctnId": "t1", "status": "d"}', received_at=1767225600.5))
    assert event.time == event.extensions["receivedtime"] == "2026-01-01T00:00:00.500000Z"


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ("/type", "mapping"),
        ({"kind": "/type"}, "mapping.kind"),
        ({"type": "type"}, "mapping.type"),
        ({"id": "/a/~2"}, "mapping.id"),
        ({"subject": 5}, "mapping.subject"),
        ({"time": "header:bad header"}, "mapping.time"),
        ({"partition_key": "header:X-API-Key"}, "mapping.partition_key"),
    ],
)
def test_a_bad_mapping_is_a_config_error_at_startup(mapping: Any, key: str) -> None:
    source = SourceConfig(name="crm", provider="generic", options={"mapping": mapping})
    with pytest.raises(ConfigError) as caught:
        options_of(source)
    assert (caught.value.key, caught.value.source) == (key, "crm")
    with pytest.raises(ConfigError):
        Normalizer({"crm": source})


def test_mapping_reads_pointers_with_escapes_array_indices_and_headers() -> None:
    source = SourceConfig(
        name="crm",
        provider="generic",
        options={"mapping": {"type": "header:X-Kind", "id": "/a~1b/0", "subject": "/m~0n", "partition_key": "/list/1"}},
    )
    assert provider("generic").verifier.kept_headers(source) == frozenset({"x-kind"})
    body = b'{"a/b": ["id-1"], "m~n": 42, "list": ["x", "key-2"]}'
    event = Normalizer({"crm": source}).normalize(raw_event(source, body, headers={"x-kind": "updated"}))
    assert (event.type, event.id, event.subject, event.partition_key) == (
        "generic.crm.updated",
        "crm:id-1",
        "42",
        "crm:key-2",
    )


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b'{"id": "1"}', {}, "missing_field"),
        (b'{"id": {"x": 1}}', {"x-kind": "k"}, "bad_field_type"),
        (b'{"id": "1", "at": "soon"}', {"x-kind": "k"}, "bad_field_type"),
        (b'{"id": "1", "at": true}', {"x-kind": "k"}, "bad_field_type"),
        (b'{"id": "1"}', {"x-kind": "k"}, "missing_field"),
    ],
)
def test_mapped_fields_are_required_and_typed(body: bytes, headers: dict[str, str], reason: str) -> None:
    source = SourceConfig(
        name="crm", provider="generic", options={"mapping": {"type": "header:X-Kind", "id": "/id", "time": "/at"}}
    )
    with pytest.raises(MappingError) as caught:
        Normalizer({"crm": source}).normalize(raw_event(source, body, headers=headers))
    assert caught.value.reason == reason


def test_an_oversized_unknown_type_violates_the_schema() -> None:
    body = orjson.dumps({"id": "x", "type": "t" * 600, "payload": {"id": 1}})
    with pytest.raises(SchemaViolationError) as caught:
        NORMALIZER.normalize(raw_event(OFFERTE, body))
    assert caught.value.stage == "validate"
