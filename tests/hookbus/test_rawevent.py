"""The raw event's Kafka form: any received bytes survive it exactly, every query parameter
survives it in order, and building it never fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from hookbus.config import parse_source
from hookbus.rawevent import AuthMethod, RawEvent, parse_query, text_of, wire_bytes, without_credentials
from hookbus.request import RawRequest
from hookbus.tracecontext import TRACE_HEADERS
from ingest.capture import capture
from ingest.decision import check_sources, kept_headers, required_headers_read

# Every code point, lone surrogates included: text that no decoding of bytes gives must not
# make building the record fail either.
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)


def event(**fields: object) -> RawEvent:
    return RawEvent(
        source="crm", provider="generic", ingest_id="ing-1", received_at=1767225600.25, body=b"{}", **fields
    )  # type: ignore[arg-type]


@given(value=st.binary(max_size=60))
def test_any_header_bytes_travel_exactly_and_read_back_as_the_same_text(value: bytes) -> None:
    raw = event(content_type=text_of(value), headers={"x-event": text_of(value)})
    sent = dict(raw.kafka_headers())
    assert sent["hookbus-content-type"] == value
    assert sent["hookbus-h-x-event"] == value
    back = RawEvent.from_kafka(raw.kafka_headers(), raw.body)
    assert back == raw
    assert back.header_bytes("X-Event") == value


@given(text=ANY_TEXT, name=ANY_TEXT)
def test_building_the_record_never_fails(text: str, name: str) -> None:
    raw = event(
        content_type=text, client_addr=text, headers={"x-h": text}, query=MultiDictProxy(MultiDict([(name, text)]))
    )
    assert raw.kafka_headers()


@given(pairs=st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8).map(text_of)), max_size=8))
def test_every_query_parameter_travels_in_order(pairs: list[tuple[str, str]]) -> None:
    raw = event(query=MultiDictProxy(MultiDict(pairs)))
    back = RawEvent.from_kafka(raw.kafka_headers(), raw.body)
    assert list(back.query.items()) == pairs


def test_a_query_parses_every_parameter_in_order_without_replacing_any_byte() -> None:
    query = parse_query("tag=b&page=2&tag=a&tag=%FF&c=x+y&flag&tag=")
    assert list(query.items()) == [
        ("tag", "b"),
        ("page", "2"),
        ("tag", "a"),
        ("tag", "\udcff"),
        ("c", "x y"),
        ("flag", ""),
        ("tag", ""),
    ]
    assert wire_bytes(query.getall("tag")[2]) == b"\xff"


def test_credentials_are_dropped_and_every_other_parameter_kept() -> None:
    kept = without_credentials([("a", "1"), ("api-key", "k"), ("a", "2"), ("API_KEY", "k"), ("token", "t"), ("a", "3")])
    assert list(kept.items()) == [("a", "1"), ("a", "2"), ("a", "3")]


GENERIC_WITH_TOKEN = {
    "api_key": "gen-key-3a9c",
    "required_headers": {"X-Shared-Token": "tok-9f1e"},
    "mapping": {"type": "header:X-Event-Type"},
}


def test_capture_never_keeps_a_required_header_whatever_it_is_asked() -> None:
    source = parse_source(GENERIC_WITH_TOKEN, name="crm", provider="generic")
    request = RawRequest.build(
        method="POST",
        body=b"{}",
        client_addr="192.0.2.9",
        headers={"X-Shared-Token": "tok-9f1e", "X-Event-Type": "updated"},
        query={"token": "t", "page": "1"},
    )
    asked = frozenset({"x-shared-token", "x-event-type"})
    raw = capture(source, request, AuthMethod.API_KEY, 1767225600.0, "ing-1", asked)
    assert raw.headers == {"x-event-type": "updated"}
    assert "tok-9f1e" not in repr(raw.kafka_headers())
    assert kept_headers(source) == {"x-event-type"} | TRACE_HEADERS


def test_a_mapping_that_reads_a_required_header_is_told_and_still_gets_no_value() -> None:
    source = parse_source(
        {**GENERIC_WITH_TOKEN, "mapping": {"type": "header:x-shared-token"}}, name="crm", provider="generic"
    )
    check_sources([source])
    assert required_headers_read(source) == {"x-shared-token"}
    assert "x-shared-token" not in kept_headers(source)
