"""What the live gateway writes to the raw topic is what it authenticated, exactly: header bytes
that are not UTF-8, every repeated query parameter in order, no required-header value, and an
event of a source that never retries is stored even when publishing fails for a reason that
is not Kafka's."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from hookbus.config import KafkaConfig, parse_source
from hookbus.rawevent import RawEvent
from ingest.publisher import KafkaPublisher
from tests.ingest.conftest import RawTopic, StartGateway, gateway_config, headers

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SECRET = "whsec-raw-record-2b7d9e41"
API_KEY = "raw-record-key-4e8a1c6f"
SHARED_TOKEN = "shared-token-value-7f3c9a"
NOW = 1_767_225_600
BODY = b'{"event":"evt-1","eventType":"member.updated"}'
NOT_UTF8 = b"\xff\xfe\xe9"


def officernd_signature(body: bytes, timestamp: int, *, extra: bytes = b"") -> bytes:
    digest = hmac.new(SECRET.encode(), body + b"." + str(timestamp).encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},signature={digest}".encode() + extra


async def post_raw(port: int, target: str, head_lines: list[bytes], body: bytes) -> tuple[int, dict[str, Any], bytes]:
    """Send one request as raw bytes (header values exactly as given); status, JSON answer, head."""
    request = (
        b"POST "
        + target.encode()
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"".join(line + b"\r\n" for line in head_lines)
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(30):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(payload), head


def spool_dir_config(kafka_config: KafkaConfig, tmp_path: Path, *sources: Any) -> Any:
    return gateway_config(
        kafka_config, sources, spool_dir=str(tmp_path / "spool"), ack_timeout_seconds=2.0, answer_deadline_seconds=3.0
    )


async def test_header_bytes_that_are_not_utf8_are_stored_exactly(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic, tmp_path: Path
) -> None:
    officernd = parse_source({"secrets": [SECRET]}, name="rnd", provider="officernd")
    generic = parse_source(
        {"api_key": API_KEY, "mapping": {"type": "header:X-Event-Type"}}, name="crm", provider="generic"
    )
    gateway = await start_gateway(spool_dir_config(kafka_config, tmp_path, officernd, generic))
    gateway.clock.now = NOW
    signature = officernd_signature(BODY, NOW, extra=b",v0=" + NOT_UTF8)
    content_type = b"application/json; charset=" + NOT_UTF8
    with structlog.testing.capture_logs() as logs:
        status, answer, _ = await post_raw(
            gateway.port,
            "/webhooks/rnd",
            [b"Content-Type: " + content_type, b"officernd-signature: " + signature],
            BODY,
        )
        assert status == 200, answer
        rnd_id = answer["id"]
        status, answer, _ = await post_raw(
            gateway.port,
            "/webhooks/crm",
            [b"X-API-Key: " + API_KEY.encode(), b"X-Event-Type: updated-" + NOT_UTF8],
            b"{}",
        )
        assert status == 200, answer
        crm_id = answer["id"]
    assert not [line for line in logs if line["event"] == "unexpected_error"]
    assert {line["ingest_id"] for line in logs if line["event"] == "request"} == {rnd_id, crm_id}

    records = await raw_topic.records_by_ingest_id()
    rnd = headers(records[rnd_id])
    assert rnd["hookbus-content-type"] == content_type
    assert rnd["hookbus-h-officernd-signature"] == signature
    crm = headers(records[crm_id])
    assert crm["hookbus-h-x-event-type"] == b"updated-" + NOT_UTF8

    # Readers get text: the bytes that are not UTF-8 as surrogate escapes, which give them back.
    event = RawEvent.from_kafka(records[rnd_id].headers, records[rnd_id].value)
    assert event.content_type.encode("utf-8", "surrogateescape") == content_type
    assert event.headers["officernd-signature"].encode("utf-8", "surrogateescape") == signature
    assert event.header_bytes("officernd-signature") == signature


async def test_every_repeated_query_parameter_is_kept_in_order_without_credentials(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic
) -> None:
    source = parse_source({"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}, name="crm", provider="generic")
    gateway = await start_gateway(gateway_config(kafka_config, [source]))
    target = f"/webhooks/crm?tag=b&page=2&tag=a&api-key={API_KEY}&tag=%FF&tag=&token=t1&empty"
    status, answer, _ = await post_raw(gateway.port, target, [], b"{}")
    assert status == 200, answer

    record = (await raw_topic.records_by_ingest_id())[answer["id"]]
    stored = headers(record)["hookbus-query"]
    assert API_KEY.encode() not in stored
    assert b"t1" not in stored
    event = RawEvent.from_kafka(record.headers, record.value)
    assert list(event.query.items()) == [
        ("tag", "b"),
        ("page", "2"),
        ("tag", "a"),
        ("tag", "\udcff"),
        ("tag", ""),
        ("empty", ""),
    ]


def source_settings() -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "required_headers": {"X-Shared-Token": SHARED_TOKEN},
        "mapping": {"type": "header:X-Event-Type"},
    }


async def test_required_header_values_are_judged_and_never_kept(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic
) -> None:
    source = parse_source(source_settings(), name="crm", provider="generic")
    # A mapping that reads the token is told at startup, and still gets no value.
    reads_token = parse_source(
        {**source_settings(), "mapping": {"subject": "header:X-Shared-Token"}}, name="reads-token", provider="generic"
    )
    with structlog.testing.capture_logs() as logs:
        gateway = await start_gateway(gateway_config(kafka_config, [source, reads_token]))
    (warning,) = [line for line in logs if line["event"] == "required_header_not_kept"]
    assert (warning["source"], warning["headers"]) == ("reads-token", ["x-shared-token"])
    assert SHARED_TOKEN not in repr(logs)
    sent = [b"X-API-Key: " + API_KEY.encode(), b"X-Shared-Token: " + SHARED_TOKEN.encode(), b"X-Event-Type: updated"]
    ingest_ids = []
    for name in ("crm", "reads-token"):
        status, answer, _ = await post_raw(gateway.port, f"/webhooks/{name}", sent, b"{}")
        assert status == 200, answer
        ingest_ids.append(answer["id"])
    records = await raw_topic.records_by_ingest_id()
    assert headers(records[ingest_ids[0]])["hookbus-h-x-event-type"] == b"updated"
    for ingest_id in ingest_ids:
        assert all(SHARED_TOKEN.encode() not in value for _, value in records[ingest_id].headers)
        assert "hookbus-h-x-shared-token" not in headers(records[ingest_id])


async def failing_send(self: KafkaPublisher, record: Any) -> Any:
    raise RuntimeError("a bug below the gateway, not a Kafka error")


async def test_an_unexpected_publish_failure_spools_a_source_that_never_retries(
    kafka_config: KafkaConfig,
    start_gateway: StartGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officernd = parse_source({"secrets": [SECRET]}, name="rnd", provider="officernd")
    october_like = parse_source(
        {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "spool": False}, name="direct", provider="octamile"
    )
    gateway = await start_gateway(spool_dir_config(kafka_config, tmp_path, officernd, october_like))
    gateway.clock.now = NOW
    monkeypatch.setattr(KafkaPublisher, "send", failing_send)
    with structlog.testing.capture_logs() as logs:
        status, answer, _ = await post_raw(
            gateway.port, "/webhooks/rnd", [b"officernd-signature: " + officernd_signature(BODY, NOW)], BODY
        )
        assert status == 200, answer
        spooled_id = answer["id"]
        status, answer, head = await post_raw(
            gateway.port, "/webhooks/direct", [b"X-API-Key: " + API_KEY.encode()], b"{}"
        )
        assert status == 503, answer
        assert re.search(rb"(?i)\r\nretry-after: *[1-9]", head)
    request_lines = {line["source"]: line for line in logs if line["event"] == "request"}
    assert request_lines["rnd"]["spooled"] is True
    assert request_lines["rnd"]["ingest_id"] == spooled_id
    assert request_lines["direct"]["status"] == 503
    assert not [line for line in logs if line["event"] == "unexpected_error"]
    assert "a bug below" not in repr(logs)
    segments = list((tmp_path / "spool").rglob("*.seg"))
    assert any(spooled_id.encode() in segment.read_bytes() for segment in segments)


async def test_the_trace_context_is_kept_whatever_the_provider_keeps(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic
) -> None:
    source = parse_source({"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}, name="crm", provider="generic")
    gateway = await start_gateway(gateway_config(kafka_config, [source]))
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, answer, _ = await post_raw(
        gateway.port,
        "/webhooks/crm",
        [b"X-API-Key: " + API_KEY.encode(), b"traceparent: " + traceparent, b"tracestate: congo=t61"],
        b"{}",
    )
    assert status == 200, answer

    event = RawEvent.from_kafka((await raw_topic.records_by_ingest_id())[answer["id"]].headers, b"{}")
    assert event.header_bytes("traceparent") == traceparent
    assert event.header_bytes("tracestate") == b"congo=t61"
