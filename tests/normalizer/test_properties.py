"""Property tests: whatever the body and the kept headers, a mapper raises nothing but a
NormalizerError (and never the catch-all ``mapper_failed``, which would mean a bug), and a
mapped event is valid, encodes in both Kafka modes and reads back equal.

Bodies include what JSON parsers disagree on: integers beyond 64 bits, decimals beyond a
double, numbers beyond a double's range, nesting around and far beyond the limit, NUL,
lone surrogate escapes, invalid UTF-8, and non-JSON bodies under every content type."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hookbus.cloudevent import CloudEvent, JsonError, Mode, decode_json, encode_json
from hookbus.config import SourceConfig
from hookbus.rawevent import AuthMethod, RawEvent
from normalizer.errors import NORMALIZE_ERRORS
from normalizer.normalizer import Normalizer

SOURCES = {
    source.name: source
    for source in (
        SourceConfig(name="october", provider="october"),
        SourceConfig(name="officernd", provider="officernd"),
        SourceConfig(name="offerte", provider="offerte_adviseur"),
        SourceConfig(name="octamile", provider="octamile"),
        SourceConfig(name="crm", provider="generic"),
        SourceConfig(
            name="shop",
            provider="generic",
            options={
                "mapping": {
                    "type": "header:X-Kind",
                    "id": "/id",
                    "subject": "/a/0",
                    "time": "/at",
                    "partition_key": "/a/b",
                }
            },
        ),
    )
}
NORMALIZER = Normalizer(SOURCES)
# Field names each provider reads, so generated objects often look nearly right.
FIELD_NAMES = st.sampled_from(
    [
        "event", "eventType", "data", "object", "_id", "previousAttributes", "createdAt", "invoice", "company",
        "member", "requestId", "offerId", "diff", "property", "after", "id", "type", "payload", "lead_id",
        "invoice_id", "trnsctnId", "status", "crtfct", "crtfctType", "a", "b", "at", "0",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "member.updated", "invoice.charge.created", "company.paymentdetails.removed", "lead.sold",
            "invoice.paid", "update_request", "new_offer", "new_report", "a", "d", "jpg", "png", "pdf",
            "2020-10-19T10:38:15.127Z", "2020-10-19T10:38:15", "/9j/4AAQ", "iVBORw0KGgo=", "JVBERi0xLjQ=",
        ]
    ),
)  # fmt: skip
# A leaf replaced, in the encoded body, by one of the raw JSON texts below.
SPECIAL = "\x01special\x01"
SPECIAL_ENCODED = b'"\\u0001special\\u0001"'
SPECIAL_TEXTS = st.sampled_from(
    [
        b"123456789012345678901234567890", b"-18446744073709551616", b"18446744073709551615",
        b"0.1000000000000000055511151231257827", b"1.5e400", b"-2E+308", b"1e-400", b"9" * 5000, b"-0",
        b"1E2", b"12345678901234567.5", b'"\\u0000"', b'"a\\u0000b"', b'"\\ud800"', b'"\\udc00x"',
        b'"\\ud83d\\ude00"', b'"\\ud83d"', b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b"NaN", b"Infinity",
        b"[" * 199 + b"]" * 199, b"[" * 201 + b"]" * 201, b"[" * 300 + b"]" * 300, b'{"a":' * 260 + b"1" + b"}" * 260,
        b"[" * 2000 + b"]" * 2000, b"[" * 100_000, b'"5f8d6c9747120500116899e4"', b'": 1234567890123456789"',
    ]
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS
    | st.just(SPECIAL),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(FIELD_NAMES | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=25,
)
HEADERS = st.dictionaries(
    st.sampled_from(["x-o5r-timestamp", "x-kind", "officernd-signature"]) | st.text(min_size=1, max_size=8),
    st.text(max_size=16),
    max_size=4,
)


CONTENT_TYPES = st.sampled_from(
    [
        "application/json", "", "application/json; charset=utf-8", "application/cloudevents+json",
        "application/x-www-form-urlencoded", "text/plain", "application/xml", "application/octet-stream",
    ]
)  # fmt: skip


def _raw(source: str, body: bytes, headers: dict[str, str], content_type: str = "application/json") -> RawEvent:
    return RawEvent(
        source=source,
        provider=SOURCES[source].provider,
        ingest_id="ing",
        received_at=1767225600.0,
        body=body,
        content_type=content_type,
        auth=AuthMethod.SIGNATURE,
        headers=headers,
        query={"page": "2"},
    )


def _only_normalizer_errors(raw: RawEvent) -> None:
    """Maps to a valid event that survives both Kafka modes, or raises a normalizer error
    with a reason of its own; anything else escapes and fails the test."""
    try:
        event = NORMALIZER.normalize(raw)
    except NORMALIZE_ERRORS as exc:
        error: Exception | None = exc
    else:
        error = None
    if error is not None:
        assert getattr(error, "reason", None) != "mapper_failed", repr(error.__cause__)
        return
    NORMALIZER.validate(event)
    for mode in Mode:
        _, value, headers = event.to_kafka(mode)
        assert CloudEvent.from_kafka(headers, value) == event


def _serializable(value: Any, special: bytes = SPECIAL_ENCODED) -> bytes | None:
    try:
        body = encode_json(value)
    except JsonError:
        return None
    return body.replace(SPECIAL_ENCODED, special)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(sorted(SOURCES)), document=JSON, headers=HEADERS, special=SPECIAL_TEXTS, cut=st.booleans()
)
def test_any_json_maps_or_raises_a_normalizer_error(
    source: str, document: Any, headers: dict[str, str], special: bytes, cut: bool
) -> None:
    body = _serializable(document, special)
    if body is not None:
        # Cut short too: a body that stops mid-token or mid-character.
        _only_normalizer_errors(_raw(source, body[: len(body) // 2] if cut else body, headers))


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(sorted(SOURCES)),
    body=st.binary(max_size=64) | SPECIAL_TEXTS,
    headers=HEADERS,
    content_type=CONTENT_TYPES,
)
def test_any_bytes_map_or_raise_a_normalizer_error(
    source: str, body: bytes, headers: dict[str, str], content_type: str
) -> None:
    _only_normalizer_errors(_raw(source, body, headers, content_type))


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=5),
    raw_tail=st.binary(max_size=12),
    content_type=CONTENT_TYPES,
)
def test_generic_bodies_of_any_content_type_map(
    fields: list[tuple[str, str]], raw_tail: bytes, content_type: str
) -> None:
    body = urlencode(fields).encode("ascii") + raw_tail
    try:
        event = NORMALIZER.normalize(_raw("crm", body, {}, content_type))
    except NORMALIZE_ERRORS as exc:
        error: Exception | None = exc
    else:
        error = None
    # Whatever it says it is, a body that is not nested too deeply maps: these never are.
    assert error is None, repr(error)
    NORMALIZER.validate(event)
    for mode in Mode:
        _, value, headers = event.to_kafka(mode)
        assert CloudEvent.from_kafka(headers, value) == event


@settings(max_examples=300, deadline=None)
@given(
    event_type=TEXTS,
    object_=st.dictionaries(FIELD_NAMES, JSON, max_size=4),
    data_extra=st.dictionaries(FIELD_NAMES, JSON, max_size=3),
    created=JSON,
)
def test_officernd_envelopes_with_arbitrary_contents(
    event_type: str, object_: dict[str, Any], data_extra: dict[str, Any], created: Any
) -> None:
    document = {"event": "e1", "eventType": event_type, "data": {**data_extra, "object": object_}, "createdAt": created}
    body = _serializable(document)
    if body is not None:
        _only_normalizer_errors(_raw("officernd", body, {}))


ENVELOPES = {
    "october": st.fixed_dictionaries(
        {"event": TEXTS, "requestId": TEXTS}, optional={"offerId": JSON, "diff": JSON, "extra": JSON}
    ),
    "offerte": st.fixed_dictionaries(
        {"id": TEXTS, "type": TEXTS, "payload": st.dictionaries(FIELD_NAMES, JSON, max_size=4)}, optional={"x": JSON}
    ),
    "octamile": st.fixed_dictionaries(
        {"trnsctnId": TEXTS, "status": TEXTS}, optional={"crtfct": JSON, "crtfctType": JSON, "statusNote": JSON}
    ),
}


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    source=st.sampled_from(sorted(ENVELOPES)),
    timestamp=st.text(max_size=13) | st.integers(min_value=0, max_value=10**20).map(str),
    special=SPECIAL_TEXTS,
)
def test_nearly_right_envelopes_with_arbitrary_contents(
    source: str, data: st.DataObject, timestamp: str, special: bytes
) -> None:
    body = _serializable(data.draw(ENVELOPES[source]), special)
    if body is not None:
        _only_normalizer_errors(_raw(source, body, {"x-o5r-timestamp": timestamp}))


# Documented envelopes, for the "nothing is lost" property: each maps, whatever it adds.
VALID_ENVELOPES = {
    "october": {"event": "update_offer", "offerId": "o1", "diff": {"property": "stage", "after": "x"}},
    "officernd": {"event": "e1", "eventType": "fee.created", "data": {"object": {"_id": "f1"}}},
    "offerte": {"id": "x", "type": "lead.sold", "payload": {"lead_id": 1}},
    "octamile": {"trnsctnId": "t1", "status": "d"},
    "crm": {"customer": "c1"},
}
ADDED_NAMES = st.text(min_size=1, max_size=8).map(lambda name: "zz_" + name)


def _holds(tree: Any, name: str, value: Any) -> bool:
    """Whether ``{name: value}`` is an entry of some object in ``tree``."""
    if isinstance(tree, dict):
        return (name in tree and tree[name] == value) or any(_holds(child, name, value) for child in tree.values())
    if isinstance(tree, list):
        return any(_holds(child, name, value) for child in tree)
    return False


@settings(max_examples=200, deadline=None)
@given(
    source=st.sampled_from(sorted(VALID_ENVELOPES)),
    added=st.dictionaries(ADDED_NAMES, JSON, min_size=1, max_size=3),
    inside=st.booleans(),
)
def test_every_field_a_provider_sends_reaches_the_event(source: str, added: dict[str, Any], inside: bool) -> None:
    document = {**VALID_ENVELOPES[source]}
    # Added at the top, or inside the part of the body that carries the resource.
    inner = {"officernd": "data", "offerte": "payload"}.get(source) if inside else None
    if inner is not None:
        document[inner] = {**document[inner], **added}
    else:
        document.update(added)
    body = _serializable(document, b"123456789012345678901234567890")
    assume(body is not None)
    assert body is not None
    event = NORMALIZER.normalize(_raw(source, body, {"x-o5r-timestamp": "1647937499151"}))
    sent = decode_json(body)
    where = sent[inner] if inner is not None else sent
    for name in added:
        assert _holds(event.data, name, where[name]), name
