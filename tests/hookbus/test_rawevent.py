"""The raw event's Kafka form: any received bytes survive it exactly, every query parameter
survives it in order, and building it never fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from hookbus.rawevent import RawEvent, parse_query, text_of, wire_bytes, without_credentials

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
