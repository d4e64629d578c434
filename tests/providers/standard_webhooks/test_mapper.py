"""Standard Webhooks mapping beyond the golden cases: what is refused, what passes flagged, and
the properties of ids, types and partition keys (every event through the normalizer, so
through both schemas)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hookbus.cloudevent import CloudEvent
from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.mapping import MappingError
from normalizer.normalizer import Normalizer
from tests.providers.mapping_support import raw_event

ACME = SourceConfig(name="acme", provider="standard_webhooks")
BILLING = SourceConfig(name="billing", provider="standard_webhooks", options={"type_field": "kind"})
NORMALIZER = Normalizer({source.name: source for source in (ACME, BILLING)})
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
# The whole type is at most 512 characters, "standard_webhooks." included.
LONGEST_TYPE = "a" * (512 - len("standard_webhooks."))


def normalize(
    body: Any, *, source: SourceConfig = ACME, message_id: str | None = MESSAGE_ID, **kwargs: Any
) -> CloudEvent:
    headers = {"webhook-id": message_id} if message_id is not None else {}
    raw_body = body if isinstance(body, bytes) else orjson.dumps(body)
    return NORMALIZER.normalize(raw_event(source, raw_body, headers=headers, **kwargs))


def reason_of(body: Any, **kwargs: Any) -> str:
    with pytest.raises(MappingError) as caught:
        normalize(body, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "unparseable_body"),
        (b"type=invoice.paid", "unparseable_body"),
        (b'[{"type": "invoice.paid"}]', "not_an_object"),
        ({"type": "invoice.paid", "timestamp": "yesterday"}, "bad_field_type"),
        ({"type": "invoice.paid", "timestamp": "2026-01-05T09:12:44"}, "bad_field_type"),
        ({"type": "invoice.paid", "timestamp": True}, "bad_field_type"),
        ({"type": "invoice.paid", "timestamp": {"seconds": 1}}, "bad_field_type"),
    ],
    ids=["empty", "form-encoded", "array", "not-a-time", "no-offset", "boolean-time", "object-time"],
)
def test_refuses_what_cannot_be_an_event(body: Any, reason: str) -> None:
    assert reason_of(body) == reason


def test_refuses_an_event_without_its_webhook_id() -> None:
    assert reason_of({"type": "invoice.paid"}, message_id=None) == "missing_field"


@pytest.mark.parametrize(
    "value",
    [None, 7, True, ["invoice.paid"], {"name": "invoice.paid"}, "", "invoice\npaid", "tab\there", LONGEST_TYPE + "a"],
    ids=["null", "number", "boolean", "list", "object", "empty", "newline", "tab", "too-long"],
)
def test_an_unusable_type_passes_untyped_and_flagged_with_the_value_kept(value: Any) -> None:
    event = normalize({"type": value, "data": {"id": "inv_1"}})
    assert (event.type, event.extensions["knowntype"]) == ("standard_webhooks.untyped", False)
    assert event.data["extra"] == {"type": value}
    assert (event.data["resource"], event.data["action"]) == (None, None)
    # Still ordered with its entity: the type is not what names it.
    assert event.extensions["partitionkey"] == "standard_webhooks:acme:inv_1"


@pytest.mark.parametrize(
    "value",
    ["invoice.paid", "Invoice Paid", "ping", LONGEST_TYPE, "résumé.créé"],
    ids=["dotted", "spaced", "one-word", "longest", "non-ascii"],
)
def test_any_usable_type_is_the_sources_own_known_type(value: str) -> None:
    event = normalize({"type": value})
    assert (event.type, event.extensions["knowntype"]) == (f"standard_webhooks.{value}", True)
    assert "type" not in event.data["extra"]


@pytest.mark.parametrize(
    ("event_type", "resource", "action"),
    [("invoice.paid", "invoice", "paid"), ("invoice.line.created", "invoice.line", "created"), ("ping", None, None)],
)
def test_resource_and_action_split_the_type_at_its_last_dot(
    event_type: str, resource: str | None, action: str | None
) -> None:
    event = normalize({"type": event_type})
    assert (event.data["resource"], event.data["action"]) == (resource, action)


def test_the_type_field_option_reads_another_field_and_keeps_type_as_sent() -> None:
    event = normalize({"kind": "invoice.paid", "type": "v2-notification"}, source=BILLING)
    assert event.type == "standard_webhooks.invoice.paid"
    assert event.data["extra"] == {"type": "v2-notification"}
    untyped = normalize({"type": "invoice.paid"}, source=BILLING)
    assert (untyped.type, untyped.extensions["knowntype"]) == ("standard_webhooks.untyped", False)


def test_a_bad_type_field_option_is_refused_when_the_normalizer_is_built() -> None:
    with pytest.raises(ConfigError) as caught:
        Normalizer({"bad": SourceConfig(name="bad", provider="standard_webhooks", options={"type_field": 7})})
    assert (caught.value.source, caught.value.key) == ("bad", "type_field")


def test_the_id_is_the_webhook_id_so_retries_share_it() -> None:
    body = {"type": "invoice.paid", "data": {"id": "inv_1"}}
    first = normalize(body, received_at=1_767_600_000.0, ingest_id="ing-1")
    retry = normalize(body, received_at=1_767_600_305.0, ingest_id="ing-2")
    assert first.id == retry.id == f"acme:{MESSAGE_ID}"
    assert normalize(body, message_id="msg_other").id != first.id
    assert normalize(body, source=BILLING).id == f"billing:{MESSAGE_ID}"


def test_events_about_one_entity_share_a_partition_key_within_their_source() -> None:
    created = normalize({"type": "invoice.created", "data": {"id": "inv_1"}})
    paid = normalize({"type": "invoice.paid", "data": {"id": "inv_1"}})
    other = normalize({"type": "invoice.paid", "data": {"id": "inv_2"}})
    elsewhere = normalize({"kind": "invoice.paid", "data": {"id": "inv_1"}}, source=BILLING)
    assert created.extensions["partitionkey"] == paid.extensions["partitionkey"] == "standard_webhooks:acme:inv_1"
    assert other.extensions["partitionkey"] != paid.extensions["partitionkey"]
    assert elsewhere.extensions["partitionkey"] == "standard_webhooks:billing:inv_1"


@pytest.mark.parametrize(
    "data",
    [None, {"name": "no id"}, {"id": True}, {"id": 1.5}, {"id": ""}, {"id": {"value": "x"}}, "inv_1", [{"id": "a"}]],
    ids=["absent", "no-id", "boolean", "fraction", "empty", "object", "string", "list"],
)
def test_without_an_entity_id_the_source_is_the_partition_and_data_is_kept(data: Any) -> None:
    body = {"type": "invoice.paid"} if data is None else {"type": "invoice.paid", "data": data}
    event = normalize(body)
    assert event.extensions["partitionkey"] == "standard_webhooks:acme"
    assert event.subject is None
    assert event.data["resource_id"] is None
    assert event.data["object"] == data


def test_the_time_is_the_events_own_when_sent_else_the_received_time() -> None:
    sent = normalize({"type": "invoice.paid", "timestamp": "2022-11-03T20:26:10.344522+02:00"})
    assert sent.time == "2022-11-03T18:26:10.344522Z"
    assert normalize({"type": "invoice.paid", "timestamp": 1_667_507_170}).time == "2022-11-03T20:26:10.000000Z"
    unsent = normalize({"type": "invoice.paid", "timestamp": None}, received_at=1_767_600_000.5)
    assert unsent.time == "2026-01-05T08:00:00.500000Z"
    # A timestamp sent as null was sent all the same: it stays in extra.
    assert unsent.data["extra"] == {"timestamp": None}


def test_every_field_sent_is_kept() -> None:
    body = {
        "type": "invoice.paid",
        "timestamp": "2026-01-05T08:00:00Z",
        "data": {"id": "inv_1", "lines": [{"amount": 100}]},
        "api_version": "2025-10-01",
        "metadata": {"tenant": "t_1"},
    }
    event = normalize(body)
    assert event.data["object"] == body["data"]
    assert event.data["extra"] == {"api_version": "2025-10-01", "metadata": {"tenant": "t_1"}}
