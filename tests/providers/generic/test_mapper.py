"""Generic sources: deliveries are never merged by their body alone, the request around
the body is in the event, and a body of any content type maps."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from multidict import MultiDict, MultiDictProxy

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.mapping import MappingError
from hookbus.rawevent import RawEvent
from tests.providers.mapping_support import GENERIC, NORMALIZER, mapped, mapped_raw, raw_event


def test_generic_deliveries_with_the_same_body_are_distinct_events() -> None:
    bodies = [b'{"customer": "c1", "status": "active"}', b'{"customer": "c1", "status": "inactive"}']
    events = [
        mapped(GENERIC, body, ingest_id=f"ing-{index}") for index, body in enumerate([bodies[0], bodies[1], bodies[0]])
    ]
    assert len({event.id for event in events}) == 3
    replayed = mapped(GENERIC, bodies[0], ingest_id="ing-2", received_at=99.0)
    assert replayed.id == events[2].id


def _generic(body: bytes, content_type: str, **fields: Any) -> RawEvent:
    return raw_event(GENERIC, body, content_type=content_type, **fields)


def test_generic_events_carry_method_query_and_content_type() -> None:
    event = mapped_raw(_generic(b'{"a": 1}', "application/json; charset=utf-8", method="PUT", query={"list": "7"}))
    assert event.data["extra"] == {
        "method": "PUT",
        "query": {"list": "7"},
        "content_type": "application/json; charset=utf-8",
        "body_encoding": "json",
    }


def test_generic_form_bodies_map_to_their_fields_repeated_keys_as_lists() -> None:
    event = mapped_raw(
        _generic(b"name=Ana+Lima&tag=a&tag=b&empty=&caf%C3%A9=%E2%82%AC", "application/x-www-form-urlencoded")
    )
    assert event.data["object"] == {"name": "Ana Lima", "tag": ["a", "b"], "empty": "", "café": "€"}
    assert event.data["extra"]["body_encoding"] == "form"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "kept"),
    [
        (b"<order><id>7</id></order>", "application/xml", "text", "<order><id>7</id></order>"),
        (b"hello \xc3\xa9", "text/plain", "text", "hello é"),
        (b'{"a": 1}', "text/plain", "text", '{"a": 1}'),
        (b"\x89PNG\r\n\x1a\n\xff", "image/png", "base64", base64.b64encode(b"\x89PNG\r\n\x1a\n\xff").decode()),
        (b"not json at all", "", "text", "not json at all"),
        (b"", "", "text", ""),
    ],
)
def test_generic_non_json_bodies_are_kept(body: bytes, content_type: str, encoding: str, kept: str) -> None:
    event = mapped_raw(_generic(body, content_type))
    assert (event.data["object"], event.data["extra"]["body_encoding"]) == (kept, encoding)
    assert event.data["extra"]["content_type"] == content_type


@pytest.mark.parametrize(
    ("body", "encoding"),
    [(b"<xml/>", "text"), (b'{"trailing": 1,}', "text"), (b'"\\ud800"', "text"), (b"\xff{", "base64")],
)
def test_generic_body_declared_json_that_is_not_is_kept_not_dead_lettered(body: bytes, encoding: str) -> None:
    # A sender that mislabels its body loses nothing: the event says how object holds it.
    event = mapped_raw(_generic(body, "application/json"))
    assert (event.data["extra"]["body_encoding"], event.data["extra"]["content_type"]) == (encoding, "application/json")


def test_generic_json_nested_too_deeply_is_still_a_mapping_error() -> None:
    with pytest.raises(MappingError) as caught:
        NORMALIZER.normalize(_generic(b"[" * 300 + b"]" * 300, "application/json"))
    assert caught.value.reason == "too_deeply_nested"


@pytest.mark.parametrize(
    ("body", "kept", "encoding"),
    [
        # Unescaped UTF-8, as some clients send it: still the form's fields.
        ("naam=Zoë&stad=Utrecht".encode(), {"naam": "Zoë", "stad": "Utrecht"}, "form"),
        # A percent-escape of another charset (Latin-1 "ë") is not UTF-8: kept as sent.
        (b"naam=Zo%EB", "naam=Zo%EB", "text"),
        (b"naam=Zo\xeb", base64.b64encode(b"naam=Zo\xeb").decode(), "base64"),
    ],
)
def test_generic_form_bodies_that_are_not_plain_ascii(body: bytes, kept: Any, encoding: str) -> None:
    event = mapped_raw(_generic(body, "application/x-www-form-urlencoded; charset=utf-8"))
    assert (event.data["object"], event.data["extra"]["body_encoding"]) == (kept, encoding)


def test_generic_events_keep_every_repeated_query_parameter() -> None:
    query = MultiDictProxy(MultiDict([("tag", "b"), ("page", "2"), ("tag", "a")]))
    event = mapped_raw(_generic(b"{}", "application/json", query=query))
    assert event.data["extra"]["query"] == {"tag": ["b", "a"], "page": "2"}


def test_request_text_that_is_not_utf8_is_reported_as_unicode_and_the_event_encodes() -> None:
    # The gateway hands on a byte that is not UTF-8 as a lone surrogate (hookbus.rawevent);
    # no JSON string can hold one, so the event reports it as U+FFFD (the raw record keeps it).
    raw = _generic(b"{}", "application/json; x=\udcff", query={"q": "a\udcfeb"})
    event = mapped_raw(raw)
    assert event.data["extra"]["content_type"] == "application/json; x=\ufffd"
    assert event.data["extra"]["query"] == {"q": "a\ufffdb"}
    for mode in Mode:
        _key, value, headers = event.to_kafka(mode)
        assert CloudEvent.from_kafka(headers, value).data == event.data
