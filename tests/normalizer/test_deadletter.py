"""The normalizer's dead letters: the failure of each stage, and a dead letter read back."""

from __future__ import annotations

import pytest

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.mapping import MappingError
from hookbus.rawevent import RawEvent
from hookbus.stage.deadletter import Failure, Origin, dead_letter_headers
from normalizer.deadletter import DeadLetter
from normalizer.errors import DeadLetterError, SchemaViolationError, UnknownSourceError
from normalizer.service import map_record

RAW = RawEvent(source="rnd", provider="officernd", ingest_id="ing-1", received_at=1_700_000_000.0, body=b"{}")
ORIGIN = Origin(topic="hookbus.raw", partition=2, offset=41)


class _Unreachable:
    def normalize(self, raw: RawEvent) -> CloudEvent:
        raise AssertionError("a record that is not a raw event is never mapped")


def _failure(error: UnknownSourceError | MappingError | SchemaViolationError) -> Failure:
    return Failure.of(error, stage=error.stage)


def test_a_dead_letter_reads_back_to_its_failure_origin_and_original_record() -> None:
    failure = _failure(MappingError("the body is not JSON", reason="unparseable_body"))
    headers = dead_letter_headers(RAW.kafka_headers(), failure, ORIGIN, now=1_700_000_060.0)

    letter = DeadLetter.from_kafka(b"rnd", headers, b'{"a": 1,}')

    assert letter.failure == Failure(stage="map", reason="unparseable_body", detail="the body is not JSON")
    assert letter.origin == ORIGIN
    assert letter.dead_lettered_at == 1_700_000_060.0
    assert (letter.key, letter.value) == (b"rnd", b'{"a": 1,}')
    assert list(letter.headers) == RAW.kafka_headers()
    assert RawEvent.from_kafka(letter.headers, letter.value).ingest_id == "ing-1"


def test_dead_lettering_again_replaces_the_earlier_error() -> None:
    first = dead_letter_headers(RAW.kafka_headers(), _failure(UnknownSourceError("gone")), ORIGIN)
    later_origin = Origin(topic="hookbus.raw", partition=0, offset=7)

    again = dead_letter_headers(first, _failure(SchemaViolationError("data.amount missing")), later_origin)

    letter = DeadLetter.from_kafka(None, again, b"{}")
    assert [name for name, _ in again].count("hookbus-dlq-reason") == 1
    assert letter.failure.reason == "schema_violation"
    assert letter.origin == later_origin


def test_a_record_that_is_not_a_raw_event_fails_in_the_read_stage() -> None:
    failure = map_record(
        _Unreachable(), [("content-type", b"application/json")], b"\x00\xff", mode=Mode.BINARY, tries=1
    )

    assert isinstance(failure, Failure)
    assert (failure.stage, failure.reason) == ("read", "not_a_raw_event")
    assert "hookbus-source" in failure.detail


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
