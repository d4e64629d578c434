"""The CloudEvents Kafka binding: an event reads back as it was written, in either mode."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest

from hookbus import cloudevent
from hookbus.cloudevent import CloudEvent, CloudEventError, Mode, decode_json, encode_json


def _canonical(known_type: bool) -> CloudEvent:
    return CloudEvent(
        id="october:5f0c",
        source="/webhooks/october",
        type="october.request.updated",
        subject="64a1",
        time="2024-05-01T10:00:00.000000Z",
        data={"resource": "request", "action": "updated"},
        extensions={"provider": "october", "partitionkey": "october:request:64a1", "knowntype": known_type},
    )


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("known_type", [True, False])
def test_an_event_reads_back_as_written_booleans_included(mode: Mode, known_type: bool) -> None:
    event = _canonical(known_type)
    _, value, headers = event.to_kafka(mode)

    read = CloudEvent.from_kafka(headers, value)

    assert read == event
    assert read.extensions["knowntype"] is known_type


def test_a_boolean_extension_that_is_not_true_or_false_stays_text() -> None:
    event = _canonical(True)
    _, value, headers = event.to_kafka(Mode.BINARY)
    foreign = [(name, b"yes" if name == "ce_knowntype" else text) for name, text in headers]

    assert CloudEvent.from_kafka(foreign, value).extensions["knowntype"] == "yes"


# --- exact JSON: numbers keep their digits, any nesting encodes ------------------------------

BIG_INT = 123456789012345678901234567890
LONG_DECIMAL = "0.1000000000000000055511151231257827"


def _with_data(data: object) -> CloudEvent:
    return dataclasses.replace(_canonical(True), data=data)


@pytest.mark.parametrize("mode", list(Mode))
def test_numbers_beyond_a_double_keep_their_exact_digits_both_ways(mode: Mode) -> None:
    event = _with_data({"big": BIG_INT, "negative": -(2**70), "long": Decimal(LONG_DECIMAL), "huge": Decimal("1E+400")})
    _, value, headers = event.to_kafka(mode)

    assert b"123456789012345678901234567890" in value
    assert LONG_DECIMAL.encode() in value
    read = CloudEvent.from_kafka(headers, value)
    assert read == event
    assert read.data["big"] == BIG_INT
    assert isinstance(read.data["big"], int)
    assert str(read.data["long"]) == LONG_DECIMAL


def test_a_record_written_by_someone_else_reads_back_exactly() -> None:
    value = b'{"n": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827, "e": 1e400}'
    read = CloudEvent.from_kafka([("content-type", b"application/json"), *_required_headers()], value)
    assert read.data == {"n": BIG_INT, "f": Decimal(LONG_DECIMAL), "e": Decimal("1e400")}


def _required_headers() -> list[tuple[str, bytes]]:
    _, _, headers = _canonical(True).to_kafka(Mode.BINARY)
    return [(name, text) for name, text in headers if name != "content-type"]


def test_ordinary_events_take_the_fast_path_and_encode_as_orjson_does() -> None:
    data = {"amount": 120.5, "count": 2**63 - 1, "name": "Jonathan \u0000 Brown", "nested": [[{"a": None}]]}
    event = _with_data(data)
    assert event.data_bytes() == orjson.dumps(data)
    assert event.to_json() == orjson.dumps(event.to_dict())


def _nested(depth: int) -> list[object]:
    nested: list[object] = []
    for _ in range(depth - 1):
        nested = [nested]
    return nested


@pytest.mark.parametrize("mode", list(Mode))
def test_nesting_beyond_orjson_s_254_levels_encodes_and_reads_back(mode: Mode) -> None:
    event = _with_data({"deep": _nested(300)})
    _, value, headers = event.to_kafka(mode)
    assert CloudEvent.from_kafka(headers, value) == event


@pytest.mark.parametrize("mode", list(Mode))
def test_any_nesting_encodes_and_what_is_too_deep_to_read_is_refused_by_name(mode: Mode) -> None:
    # Written iteratively, so no depth raises RecursionError; read back, such a record is a
    # CloudEventError with its reason, never a RecursionError.
    _, value, headers = _with_data({"deep": _nested(100_000)}).to_kafka(mode)
    with pytest.raises(CloudEventError) as caught:
        CloudEvent.from_kafka(headers, value)
    assert caught.value.reason == "too_deeply_nested"


def test_a_value_json_cannot_hold_is_a_cloudevent_error_not_a_type_error() -> None:
    with pytest.raises(CloudEventError) as caught:
        _with_data({"when": object(), "big": BIG_INT}).to_kafka()
    assert caught.value.reason == "not_json"


@pytest.mark.parametrize("value", [b"{not json", b"\xff", b"NaN", b'"\\ud800"'])
def test_a_record_value_that_is_not_json_is_not_a_cloudevent(value: bytes) -> None:
    # The reason sinks dead-letter such a record with, as before the exact reader.
    with pytest.raises(CloudEventError) as caught:
        CloudEvent.from_kafka(_required_headers(), value)
    assert caught.value.reason == "not_a_cloudevent"


@pytest.mark.parametrize(
    "before",
    [b"", b'"2020-10-14T00:00:00Z", ' * 40, b'"5f8d6c9747120500116899e4", "x0e-000", ', b'{"a": -1}, ' * 40],
)
@pytest.mark.parametrize(
    "number",
    [b"123456789012345678901234567890", b"-1.0000000000000000001", b"1e-400", b"-2.5E-330", b"1.5e+400"],
)
def test_a_number_a_double_would_change_is_found_wherever_it_is(before: bytes, number: bytes) -> None:
    document = decode_json(b"[" + before + number + b"]")
    assert document[-1] == (int(number) if number.isdigit() else Decimal(number.decode()))


def test_an_ordinary_document_reads_as_orjson_reads_it() -> None:
    body = b'{"id": "5f8d6c9747120500116899e4", "at": "2020-10-14T15:14:18.042Z", "n": [1.5, -2, 1e-5, 0.1, 1e300]}'
    assert decode_json(body) == orjson.loads(body)


def test_ordinary_documents_never_take_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def taken(*args: object, **kwargs: object) -> object:
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(cloudevent, "_decode_exactly", taken)
    monkeypatch.setattr(cloudevent, "_encode_exactly", taken)
    bodies = [
        b'{"event": "5f8d6c9747120500116899e4", "eventType": "fee.created", "createdAt": "2020-10-14T15:14:18.042Z"}',
        # Up to 15 digits: a number with 16 or more takes the exact path, which reads the
        # same value for those within 64 bits (the check stays a byte search, not a parse).
        b'{"amount": 120.5, "ids": [999999999999999, -1.23456789012345], "at": 1647937499151, "e": 1e-99}',
        b'{"crtfct": "' + b"JVBERi0xLjQgMTIzNDU2Nzg5MDEyMzQ1Njc4OTBlLTQwMA==" * 3000 + b'", "dates": ["2020-10-14"]}',
    ]
    for body in bodies:
        document = decode_json(body, max_depth=200)
        assert encode_json(document) == orjson.dumps(orjson.loads(body))
