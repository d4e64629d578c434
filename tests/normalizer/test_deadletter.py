"""Dead-letter headers: the original record kept whole, the error said shortly, and read back."""

from __future__ import annotations

import pytest

from hookbus.mapping import MappingError
from hookbus.rawevent import RawEvent, RawEventError, format_time
from normalizer.deadletter import (
    MAX_DETAIL_CHARS,
    DeadLetter,
    Failure,
    Origin,
    dead_letter_headers,
    original_headers,
    short_detail,
)
from normalizer.errors import DeadLetterError, SchemaViolationError, UnknownSourceError

RAW = RawEvent(source="rnd", provider="officernd", ingest_id="ing-1", received_at=1_700_000_000.0, body=b"{}")
ORIGIN = Origin(topic="hookbus.raw", partition=2, offset=41)


def test_the_headers_are_the_original_ones_then_the_error_and_the_origin() -> None:
    original = RAW.kafka_headers()
    failure = Failure.of(UnknownSourceError("no source 'rnd' in the configuration"))

    headers = dead_letter_headers(original, failure, ORIGIN, now=1_700_000_060.0)

    assert headers[: len(original)] == original
    assert dict(headers[len(original) :]) == {
        "hookbus-dlq-stage": b"route",
        "hookbus-dlq-reason": b"unknown_source",
        "hookbus-dlq-detail": b"no source 'rnd' in the configuration",
        "hookbus-dlq-time": format_time(1_700_000_060.0).encode(),
        "hookbus-dlq-topic": b"hookbus.raw",
        "hookbus-dlq-partition": b"2",
        "hookbus-dlq-offset": b"41",
    }


def test_a_dead_letter_reads_back_to_its_failure_origin_and_original_record() -> None:
    failure = Failure.of(MappingError("the body is not JSON", reason="unparseable_body"))
    headers = dead_letter_headers(RAW.kafka_headers(), failure, ORIGIN, now=1_700_000_060.0)

    letter = DeadLetter.from_kafka(b"rnd", headers, b'{"a": 1,}')

    assert letter.failure == Failure(stage="map", reason="unparseable_body", detail="the body is not JSON")
    assert letter.origin == ORIGIN
    assert letter.dead_lettered_at == 1_700_000_060.0
    assert (letter.key, letter.value) == (b"rnd", b'{"a": 1,}')
    assert list(letter.headers) == RAW.kafka_headers()
    assert RawEvent.from_kafka(letter.headers, letter.value).ingest_id == "ing-1"


def test_dead_lettering_again_replaces_the_earlier_error() -> None:
    first = dead_letter_headers(RAW.kafka_headers(), Failure.of(UnknownSourceError("gone")), ORIGIN)
    later_origin = Origin(topic="hookbus.raw", partition=0, offset=7)

    again = dead_letter_headers(first, Failure.of(SchemaViolationError("data.amount missing")), later_origin)

    letter = DeadLetter.from_kafka(None, again, b"{}")
    assert [name for name, _ in again].count("hookbus-dlq-reason") == 1
    assert letter.failure.reason == "schema_violation"
    assert letter.origin == later_origin


def test_a_record_that_is_not_a_raw_event_fails_in_the_read_stage() -> None:
    with pytest.raises(RawEventError) as caught:
        RawEvent.from_kafka([("content-type", b"application/json")], b"\x00\xff")

    failure = Failure.of(caught.value)

    assert (failure.stage, failure.reason) == ("read", "not_a_raw_event")
    assert "hookbus-source" in failure.detail


def test_an_unexpected_error_is_described_by_its_class_only() -> None:
    failure = Failure.unexpected("normalize", "internal_error", KeyError("IBAN NL91ABNA0417164300"))

    assert failure == Failure(stage="normalize", reason="internal_error", detail="KeyError")


def test_the_detail_is_one_short_printable_line() -> None:
    detail = short_detail("line one\nline\ttwo\x00" + "x" * 500)

    assert detail.startswith("line one line two x")
    assert len(detail) == MAX_DETAIL_CHARS
    assert detail.endswith("...")
    assert detail.isprintable()


def test_original_headers_drop_only_the_dead_letter_ones() -> None:
    headers = [("hookbus-source", b"rnd"), ("hookbus-dlq-reason", b"x"), ("traceparent", None)]

    assert original_headers(headers) == [("hookbus-source", b"rnd"), ("traceparent", b"")]


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("hookbus-source", b"rnd")],
        [("hookbus-dlq-stage", b"map")],
        [("hookbus-dlq-stage", b"map"), ("hookbus-dlq-reason", b"x"), ("hookbus-dlq-offset", b"seven")],
        [("hookbus-dlq-stage", b"map"), ("hookbus-dlq-reason", b"x"), ("hookbus-dlq-time", b"yesterday")],
    ],
)
def test_a_record_without_valid_dead_letter_headers_is_refused(headers: list[tuple[str, bytes]]) -> None:
    with pytest.raises(DeadLetterError) as caught:
        DeadLetter.from_kafka(None, headers, b"{}")

    assert caught.value.reason == "not_a_dead_letter"
