"""Capture: the raw event the gateway publishes for an accepted request."""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.rawevent import AuthMethod, RawEvent
from hookbus.request import RawRequest
from ingest.capture import capture

SOURCE = SourceConfig(name="crm", provider="generic")


def test_capture_keeps_the_body_and_only_the_kept_headers_without_credentials() -> None:
    body = b'{"a": 1}  \r\n'
    request = RawRequest.build(
        method="put",
        body=body,
        client_addr="192.0.2.9",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Event-Type": "updated",
            "X-API-Key": "k-123",
            "Authorization": "Bearer t",
            "Cookie": "s=1",
            "X-Other": "dropped",
        },
        query={"api-key": "k-123", "page": "2", "token": "t"},
    )
    raw = capture(
        SOURCE,
        request,
        AuthMethod.API_KEY,
        1767225600.25,
        "ing-1",
        frozenset({"X-Event-Type", "x-api-key", "authorization", "cookie", "x-absent"}),
    )
    assert raw == RawEvent(
        source="crm",
        provider="generic",
        ingest_id="ing-1",
        received_at=1767225600.25,
        body=body,
        content_type="application/json; charset=utf-8",
        client_addr="192.0.2.9",
        method="PUT",
        auth=AuthMethod.API_KEY,
        headers={"x-event-type": "updated"},
        query={"page": "2"},
    )
    assert RawEvent.from_kafka(raw.kafka_headers(), raw.body) == raw
