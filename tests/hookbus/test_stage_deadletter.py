"""Dead-letter headers, one encoding for every stage: the original record kept whole, the error said shortly."""

from __future__ import annotations

from hookbus.errors import HookbusError
from hookbus.rawevent import RawEvent, format_time
from hookbus.stage.deadletter import (
    MAX_DETAIL_CHARS,
    Failure,
    Origin,
    dead_letter_headers,
    original_headers,
    short_detail,
)

RAW = RawEvent(source="rnd", provider="officernd", ingest_id="ing-1", received_at=1_700_000_000.0, body=b"{}")
ORIGIN = Origin(topic="hookbus.raw", partition=2, offset=41)


def test_the_headers_are_the_original_ones_then_the_error_and_the_origin() -> None:
    original = RAW.kafka_headers()
    failure = Failure.of(HookbusError("no source 'rnd' in the configuration", reason="unknown_source"), stage="route")

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


def test_a_stage_adds_its_own_headers_after_the_common_ones_and_replaces_earlier_ones() -> None:
    failure = Failure(stage="write", reason="http_400", detail="line one\nline two")
    earlier = dead_letter_headers([("x-trace", b"abc")], failure, ORIGIN, extra={"sink": "old"})

    headers = dead_letter_headers(earlier, failure, ORIGIN, extra={"sink": "archive"}, now=1_700_000_060.0)

    assert headers[0] == ("x-trace", b"abc")
    assert [name for name, _ in headers].count("hookbus-dlq-sink") == 1
    assert headers[-1] == ("hookbus-dlq-sink", b"archive")
    assert dict(headers)["hookbus-dlq-detail"] == b"line one line two"


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
