"""Property tests: whatever the body and the kept headers, a mapper raises nothing but a
NormalizerError (and never the catch-all ``mapper_failed``, which would mean a bug)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookbus.config import SourceConfig
from hookbus.mapping import MappingError
from hookbus.rawevent import AuthMethod, RawEvent
from normalizer.canonical import Normalizer
from normalizer.errors import NORMALIZE_ERRORS, NormalizerError

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
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXTS,
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


def _raw(source: str, body: bytes, headers: dict[str, str]) -> RawEvent:
    return RawEvent(
        source=source,
        provider=SOURCES[source].provider,
        ingest_id="ing",
        received_at=1767225600.0,
        body=body,
        auth=AuthMethod.SIGNATURE,
        headers=headers,
    )


def _only_normalizer_errors(raw: RawEvent) -> None:
    try:
        event = NORMALIZER.normalize(raw)
    except NORMALIZE_ERRORS as exc:
        error: NormalizerError | MappingError | None = exc
    else:
        error = None
        NORMALIZER.validate(event)
    assert error is None or error.reason != "mapper_failed", repr(error.__cause__ if error else None)


def _serializable(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(SOURCES)), document=JSON, headers=HEADERS)
def test_any_json_maps_or_raises_a_normalizer_error(source: str, document: Any, headers: dict[str, str]) -> None:
    body = _serializable(document)
    if body is not None:
        _only_normalizer_errors(_raw(source, body, headers))


@settings(max_examples=200, deadline=None)
@given(source=st.sampled_from(sorted(SOURCES)), body=st.binary(max_size=64), headers=HEADERS)
def test_any_bytes_map_or_raise_a_normalizer_error(source: str, body: bytes, headers: dict[str, str]) -> None:
    _only_normalizer_errors(_raw(source, body, headers))


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
@given(data=st.data(), source=st.sampled_from(sorted(ENVELOPES)), timestamp=st.text(max_size=13))
def test_nearly_right_envelopes_with_arbitrary_contents(source: str, data: st.DataObject, timestamp: str) -> None:
    body = _serializable(data.draw(ENVELOPES[source]))
    if body is not None:
        _only_normalizer_errors(_raw(source, body, {"x-o5r-timestamp": timestamp}))
