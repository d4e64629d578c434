"""The request log's entry format: what it keeps of a request, and that it reads back."""

from __future__ import annotations

import pytest

from hookbus.requestlog import (
    REDACTED,
    RawPointer,
    RequestLogEntry,
    RequestLogFormatError,
    clip_source,
    logged_headers,
    logged_query,
)


def entry(**changes: object) -> RequestLogEntry:
    fields: dict[str, object] = {
        "id": "0193a8b2-0000-7000-8000-000000000001",
        "time": 1_767_225_600.25,
        "source": "lend",
        "known_source": True,
        "provider": "october",
        "method": "POST",
        "client_addr": "203.0.113.7",
        "verdict": "reject",
        "reason": "bad_signature",
        "detail": "no secret of the source signed this body",
        "status": 401,
        "size": 5,
        "duration_ms": 0.4,
        "headers": {"content-type": "application/json", "x-o5r-signature": REDACTED},
        "query": (("tag", "a"), ("tag", "b")),
        "body_prefix": b"\x00{\xff}",
    }
    fields.update(changes)
    return RequestLogEntry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "original",
    [
        entry(),
        entry(
            verdict="accept",
            reason=None,
            detail=None,
            status=200,
            body_prefix=None,
            body_omitted="accepted",
            ingest_id="0193a8b2-0000-7000-8000-000000000001",
            raw=RawPointer("hookbus.raw", 2, 41),
        ),
        entry(raw=RawPointer("hookbus.raw", spooled=True), known_source=False, provider=None),
    ],
)
def test_an_entry_reads_back_as_written(original: RequestLogEntry) -> None:
    assert RequestLogEntry.from_json(original.to_json()) == original


def test_only_harmless_header_values_are_kept_and_every_name_is() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "October/1.0"),
        ("X-O5R-Signature", "3f2a..."),
        ("officernd-signature", "t=1,signature=abc"),
        ("Authorization", "Bearer secret-token"),
        ("X-Api-Key", "key-123"),
        ("X-Anything", "whatever a shared token header holds"),
        ("content-type", "a second value is not kept"),
    ]
    assert logged_headers(headers) == {
        "content-type": "application/json",
        "user-agent": "October/1.0",
        "x-o5r-signature": REDACTED,
        "officernd-signature": REDACTED,
        "authorization": REDACTED,
        "x-api-key": REDACTED,
        "x-anything": REDACTED,
    }


def test_headers_and_query_are_bounded_and_unicode() -> None:
    many = [(f"x-h{number}", "v") for number in range(500)]
    assert len(logged_headers(many)) == 64
    long_value = logged_headers([("user-agent", "u" * 10_000)])["user-agent"]
    assert len(long_value) <= 513
    # A header byte that is not UTF-8 reaches the gateway as a lone surrogate: JSON cannot hold it.
    text = logged_headers([("user-agent", "bad\udcff")])["user-agent"]
    assert text == "bad\ufffd"
    assert RequestLogEntry.from_json(entry(headers={"user-agent": text}).to_json()).headers["user-agent"] == text
    assert len(logged_query((f"p{number}", "v") for number in range(500))) == 64
    assert clip_source("s" * 300).startswith("s" * 64)
    assert len(clip_source("s" * 300)) == 65


@pytest.mark.parametrize("value", [b"", b"not json", b"[]", b'{"v": 2}', b'{"v": 1, "id": "x"}'])
def test_a_record_that_is_not_an_entry_is_refused_with_a_reason(value: bytes) -> None:
    with pytest.raises(RequestLogFormatError) as caught:
        RequestLogEntry.from_json(value)
    assert caught.value.reason == "not_a_request_log_entry"
