"""Golden cases: a raw Gitea request in, the exact CloudEvent out, through hookbus's own
decision, capture and normalizer (``hookbus_gitea/golden.json``, reviewed by hand).

The golden requests are signed with :data:`GOLDEN_KEY`, so each is also verified first.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson
import pytest
from hookbus_gitea import PROVIDER
from hookbus_gitea.mapper import KNOWN_TYPES, map_event

from hookbus.cloudevent import CloudEvent
from hookbus.config import SourceConfig, parse_source
from hookbus.mapping import MappingError
from hookbus.rawevent import AuthMethod, RawEvent
from hookbus.request import Accept, RawRequest
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from normalizer.errors import SchemaViolationError
from normalizer.normalizer import Normalizer

GOLDEN_KEY = "golden-gitea-webhook-key"
GOLDEN: dict[str, Any] = orjson.loads((resources.files("hookbus_gitea") / "golden.json").read_bytes())
DELIVERY = "5d6bd1a4-3bb0-4a3c-9d6e-0f4e8c2b7a11"


def _source(name: str) -> SourceConfig:
    spec = GOLDEN["sources"][name]
    return parse_source({"secrets": [GOLDEN_KEY], **spec}, name=name)


def _from_request(case: dict[str, Any]) -> CloudEvent:
    source = _source(case["source"])
    raw = case["raw"]
    request = RawRequest.build(
        method="POST",
        body=raw["body"].encode("utf-8"),
        client_addr="198.51.100.7",
        headers={"Content-Type": "application/json", **raw["headers"]},
    )
    verdict = decide(source, request, raw["received_at"])
    assert verdict == Accept(AuthMethod(raw["auth"]))
    event = capture(source, request, verdict.auth, raw["received_at"], raw["ingest_id"], kept_headers(source))
    return Normalizer({source.name: source}).normalize(event)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[case["name"] for case in GOLDEN["cases"]])
def test_a_golden_request_becomes_its_reviewed_event(case: dict[str, Any]) -> None:
    event = _from_request(case)
    assert event.to_dict() == case["event"]
    # The stored event is itself valid, and survives the JSON round trip unchanged.
    source = _source(case["source"])
    Normalizer({source.name: source}).validate(CloudEvent.from_dict(case["event"]))


def test_every_known_type_has_a_golden_case_and_one_undocumented_passes_through() -> None:
    events = [case["event"] for case in GOLDEN["cases"]]
    assert {event["type"] for event in events if event["knowntype"]} == set(PROVIDER.mapper.known_types.values())
    assert set(PROVIDER.mapper.known_types) == set(KNOWN_TYPES) == set(PROVIDER.examples.event_types)
    assert any(not event["knowntype"] and event["type"].startswith("gitea.") for event in events)


def test_one_repository_is_one_partition() -> None:
    keys = {case["event"]["partitionkey"] for case in GOLDEN["cases"]}
    assert keys == {"gitea:repository:140"}


# --- what cannot be mapped ---------------------------------------------------------------

BODY_WORD = "confidential-issue-title"


def _raw(body: bytes, **headers: str) -> RawEvent:
    kept = {"x-gitea-event": "issues", "x-gitea-delivery": DELIVERY, **headers}
    return RawEvent(
        source="gitea-acme",
        provider="gitea",
        ingest_id="ing-test",
        received_at=1_764_670_000.0,
        body=body,
        content_type="application/json",
        auth=AuthMethod.SIGNATURE,
        headers={name: value for name, value in kept.items() if value},
    )


ISSUE = orjson.dumps(
    {
        "action": "opened",
        "number": 3,
        "issue": {"id": 9, "number": 3, "title": BODY_WORD},
        "repository": {"id": 140, "full_name": "acme/widgets"},
    }
)


@pytest.mark.parametrize(
    ("raw", "reason", "names"),
    [
        (_raw(ISSUE, **{"x-gitea-event": ""}), "missing_field", "x-gitea-event"),
        (_raw(ISSUE, **{"x-gitea-delivery": ""}), "missing_field", "x-gitea-delivery"),
        (_raw(ISSUE, **{"x-gitea-delivery": BODY_WORD}), "bad_field_type", "x-gitea-delivery"),
        (_raw(ISSUE, **{"x-gitea-event": "Issues; " + BODY_WORD}), "bad_field_type", "x-gitea-event"),
        (_raw(b"payload=" + ISSUE), "unparseable_body", "JSON"),
        (_raw(b"[" + ISSUE + b"]"), "not_an_object", "array"),
        (_raw(ISSUE.replace(b'"number":3,', b"")), "missing_field", "number"),
        (_raw(ISSUE.replace(b'"full_name":"acme/widgets"', b'"full_name":{"x":1}')), "bad_field_type", "full_name"),
        (_raw(ISSUE.replace(b'"opened"', b'"Opened ' + BODY_WORD.encode() + b'"')), "bad_field_type", "action"),
        (_raw(ISSUE.replace(b'"issue":{', b'"issue_":{')), "missing_field", "issue"),
    ],
)
def test_a_body_that_cannot_be_mapped_says_why_without_its_content(raw: RawEvent, reason: str, names: str) -> None:
    with pytest.raises(MappingError) as raised:
        map_event(raw)
    assert raised.value.reason == reason
    assert names in str(raised.value)
    assert BODY_WORD not in str(raised.value)


def test_an_undocumented_event_without_a_repository_is_passed_on() -> None:
    mapped = map_event(_raw(b'{"action":"created","package":{"id":5}}', **{"x-gitea-event": "package"}))
    assert (mapped.type, mapped.known_type, mapped.subject, mapped.partition_key) == (
        "gitea.package.created",
        False,
        None,
        "gitea",
    )
    assert mapped.data["extra"] == {"package": {"id": 5}}


def test_changes_in_a_shape_gitea_does_not_document_stay_in_extra() -> None:
    body = orjson.loads(ISSUE)
    body["action"] = "edited"
    body["changes"] = {"title": "was something else"}
    mapped = map_event(_raw(orjson.dumps(body)))
    assert mapped.data["changes"] == []
    assert mapped.data["extra"]["changes"] == {"title": "was something else"}


def test_the_normalizer_names_and_applies_the_packaged_schema() -> None:
    source = _source("gitea-acme")
    normalizer = Normalizer({source.name: source})
    event = normalizer.normalize(_raw(ISSUE))
    assert event.dataschema == "https://hookbus.dev/schemas/data/gitea/v1.json"
    # The packaged schema is the one applied: an object Gitea never sends (a list) is refused.
    event.data["object"] = []
    with pytest.raises(SchemaViolationError):
        normalizer.validate(event)


def test_an_empty_action_is_kept_as_sent() -> None:
    body = orjson.loads(ISSUE)
    body["action"] = ""
    mapped = map_event(_raw(orjson.dumps(body)))
    assert (mapped.type, mapped.known_type, mapped.data["action"]) == ("gitea.issues", False, None)
    assert mapped.data["extra"]["action"] == ""


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[case["name"] for case in GOLDEN["cases"]])
def test_the_raw_key_is_the_entity_the_event_is_keyed_by(case: dict[str, Any]) -> None:
    assert PROVIDER.raw_key is not None
    source = _source(case["source"])
    read = PROVIDER.raw_key(source)
    assert read(case["raw"]["body"].encode("utf-8"), case["raw"]["headers"]) == case["event"]["partitionkey"]
