"""The live gateway against a real broker: every shared vector, size limits, proxies, probes."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from hookbus.config import KafkaConfig, SourceConfig, parse_source
from hookbus.rawevent import format_time
from hookbus.request import Accept, RawRequest
from ingest.decision import decide, kept_headers
from tests.ingest.conftest import FixedClock, RawTopic, StartGateway, gateway_config, headers
from tests.support import vector_files

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

# The statuses the gateway documents for each rejection reason.
DOCUMENTED_STATUS = {
    "unknown_source": 404,
    "missing_signature": 401,
    "malformed_signature": 401,
    "bad_signature": 401,
    "stale_timestamp": 401,
    "bad_api_key": 401,
    "ip_not_allowed": 403,
    "method_not_allowed": 405,
    "header_not_allowed": 400,
    "too_large": 413,
}
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
API_KEY = "test-key-9f8e7d6c5b4a"
API_KEY_SOURCE: dict[str, Any] = {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}


@dataclass(frozen=True, slots=True)
class Vector:
    entry: dict[str, Any]
    source: SourceConfig

    @property
    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = self.entry["request"]
        return request

    @property
    def body(self) -> bytes:
        return str(self.request["body"]).encode("utf-8")

    def raw_request(self) -> RawRequest:
        return RawRequest.build(
            method=self.request["method"],
            body=self.body,
            client_addr=self.request["remote_addr"],
            headers=self.request.get("headers", {}),
            query=self.request.get("query", {}),
        )


def load_vectors(vectors_dir: Path) -> list[Vector]:
    vectors = []
    for path in vector_files(vectors_dir):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            name = f"{entry['provider']}-{entry['name']}".replace("_", "-")
            vectors.append(Vector(entry, parse_source(entry["source"], name=name, provider=entry["provider"])))
    return vectors


async def send_vector(http: aiohttp.ClientSession, url: str, vector: Vector) -> aiohttp.ClientResponse:
    request = vector.request
    async with http.request(
        request["method"],
        url,
        params=request.get("query") or None,
        headers={**request.get("headers", {}), "X-Forwarded-For": request["remote_addr"]},
        data=vector.body,
    ) as response:
        await response.read()
        return response


def api_key_source(name: str, **overrides: Any) -> SourceConfig:
    return parse_source({**API_KEY_SOURCE, **overrides}, name=name, provider="generic")


async def test_every_vector_through_the_live_gateway(
    vectors_dir: Path,
    kafka_config: KafkaConfig,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    raw_topic: RawTopic,
) -> None:
    vectors = load_vectors(vectors_dir)
    clock = FixedClock()
    gateway = await start_gateway(gateway_config(kafka_config, [vector.source for vector in vectors]), clock)
    accepted: dict[str, Vector] = {}
    with structlog.testing.capture_logs() as logs:
        for vector in vectors:
            clock.now = float(vector.entry["now"])
            before = await raw_topic.end_offsets()
            response = await send_vector(http, gateway.url(f"/webhooks/{vector.source.name}"), vector)
            answer = await response.json()
            if vector.entry["expect"] == "accept":
                assert response.status == 200, (vector.source.name, answer)
                assert UUID_TEXT.match(answer["id"])
                accepted[answer["id"]] = vector
            else:
                reason = vector.entry["reason"]
                assert (response.status, answer["error"]) == (DOCUMENTED_STATUS[reason], reason), vector.source.name
                assert isinstance(answer["detail"], str)
                if reason == "method_not_allowed":
                    assert set(response.headers["Allow"].split(", ")) == set(vector.source.methods)
                assert await raw_topic.end_offsets() == before, f"{vector.source.name} published a rejected request"
    assert not [line for line in logs if line["event"] == "unexpected_error"]

    records = await raw_topic.records_by_ingest_id()
    assert set(records) == set(accepted)
    for ingest_id, vector in accepted.items():
        record = records[ingest_id]
        assert record.value == vector.body
        # Keyed under its source (the entity after the slash: tests/providers/test_raw_key.py).
        assert record.key is not None
        assert record.key.partition(b"/")[0] == vector.source.name.encode()
        verdict = decide(vector.source, vector.raw_request(), float(vector.entry["now"]))
        assert isinstance(verdict, Accept)
        sent_headers = {name.lower(): value for name, value in vector.request["headers"].items()}
        expected = {
            "hookbus-source": vector.source.name,
            "hookbus-provider": vector.source.provider,
            "hookbus-ingest-id": ingest_id,
            "hookbus-received-at": format_time(float(vector.entry["now"])),
            "hookbus-content-type": sent_headers.get("content-type", ""),
            "hookbus-client-addr": vector.request["remote_addr"],
            "hookbus-method": vector.request["method"],
            "hookbus-auth": verdict.auth.value,
        }
        expected.update(
            {
                f"hookbus-h-{name}": sent_headers[name]
                for name in kept_headers(vector.source)
                if name in sent_headers and name != "x-api-key"
            }
        )
        found = {name: value.decode() for name, value in record.headers}
        assert found == expected
        if vector.source.api_key is not None:
            api_key = vector.source.api_key.value
            assert all(api_key not in value for _, value in record.headers), vector.source.name


async def test_body_too_large_by_content_length_is_refused_before_it_is_read(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic
) -> None:
    gateway = await start_gateway(gateway_config(kafka_config, [api_key_source("small", max_body_bytes=1024)]))
    head = (
        f"POST /webhooks/small?api-key={API_KEY} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    status, body = await exchange(gateway.port, head.encode(), chunks=())
    assert status == 413
    assert json.loads(body)["error"] == "too_large"
    assert sum((await raw_topic.end_offsets()).values()) == 0


async def test_chunked_body_growing_past_the_limit_is_cut_off(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic
) -> None:
    limit = 64 * 1024
    gateway = await start_gateway(gateway_config(kafka_config, [api_key_source("small", max_body_bytes=limit)]))
    head = (
        f"POST /webhooks/small?api-key={API_KEY} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 16 * 1024
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    offered = 64 * 1024  # chunks: 1 GiB, far more than could be read before the answer
    sent = 0

    def body_chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(offered):
            sent += 1
            yield framed

    status, body = await exchange(gateway.port, head, body_chunks())
    assert sent < offered
    assert status == 413
    assert json.loads(body)["error"] == "too_large"
    assert sum((await raw_topic.end_offsets()).values()) == 0


async def exchange(port: int, head: bytes, chunks: Iterable[bytes]) -> tuple[int, bytes]:
    """Send ``head``, then ``chunks`` until the gateway answers; the answer's status and body.

    Fails when every chunk was sent before an answer came: the body was read to its end.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
        async with asyncio.timeout(30):
            for chunk in chunks:
                if answer.done():
                    break
                writer.write(chunk)
                try:
                    await writer.drain()
                except ConnectionError:
                    break
            response_head = await answer
            status = int(response_head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", response_head)
            assert length is not None
            return status, await reader.readexactly(int(length.group(1)))
    finally:
        writer.close()


async def test_unknown_source_is_404(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(gateway_config(kafka_config, [api_key_source("known")]))
    async with http.post(gateway.url("/webhooks/unknown"), data=b"{}") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "unknown_source"


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession, raw_topic: RawTopic
) -> None:
    sources = [
        api_key_source("documentation-net", ip_allowlist=["192.0.2.0/24"]),
        api_key_source("loopback", ip_allowlist=["127.0.0.1/32"]),
    ]
    gateway = await start_gateway(gateway_config(kafka_config, sources, trusted_proxies=()))
    forged = {"X-Forwarded-For": "192.0.2.44", "X-API-Key": API_KEY}
    async with http.post(gateway.url("/webhooks/documentation-net"), data=b"{}", headers=forged) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "ip_not_allowed"
    async with http.post(gateway.url("/webhooks/loopback"), data=b"{}", headers=forged) as response:
        assert response.status == 200
        ingest_id = (await response.json())["id"]
    record = (await raw_topic.records_by_ingest_id())[ingest_id]
    assert headers(record)["hookbus-client-addr"] == b"127.0.0.1"


async def test_probes_answer_when_kafka_is_up(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(gateway_config(kafka_config, [api_key_source("probed")]))
    async with http.get(gateway.url("/healthz")) as response:
        assert response.status == 200
    async with http.get(gateway.url("/readyz")) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ready"


MALFORMED_REQUESTS = [
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    b"POST /webhooks/open?%zz=%ff&api-key HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nX-API-Key: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /webhooks/%2e%2e/open HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"FOO /webhooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ::::, 300.1.1.1, [::1\r\nContent-Length: 0\r\n\r\n",
    b"GET /webhooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
]


async def raw_exchange(port: int, request: bytes) -> int | None:
    """Send raw bytes and read the answer's status; ``None`` when the connection closes unanswered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = await asyncio.to_thread(sock.recv, 64)
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else None


async def test_malformed_requests_never_get_a_server_error(
    kafka_config: KafkaConfig, start_gateway: StartGateway
) -> None:
    config = gateway_config(kafka_config, [api_key_source("open", methods=["POST", "GET"])])
    with structlog.testing.capture_logs() as logs:
        gateway = await start_gateway(config)
        for request in MALFORMED_REQUESTS:
            status = await raw_exchange(gateway.port, request)
            assert status is None or status < 500, request[:60]
    assert not [line for line in logs if line["event"] == "unexpected_error"]


async def test_arbitrary_requests_are_answered_with_a_documented_status(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    config = gateway_config(kafka_config, [api_key_source("open", methods=["POST", "PUT"])])
    generator = random.Random(20260105)
    documented = {200, *DOCUMENTED_STATUS.values()}
    with structlog.testing.capture_logs() as logs:
        gateway = await start_gateway(config)
        for _ in range(100):
            body = generator.randbytes(generator.randrange(0, 4096))
            query = {"api-key": generator.choice([API_KEY, "", "\u00e9\u0000x"])}
            header = "".join(chr(generator.randrange(0x20, 0x7F)) for _ in range(generator.randrange(0, 200)))
            method = generator.choice(["POST", "PUT", "DELETE", "PATCH", "GET", "OPTIONS"])
            async with http.request(
                method,
                gateway.url("/webhooks/open"),
                params=query,
                data=body,
                headers={"Content-Type": header, "X-Forwarded-For": header},
            ) as response:
                await response.read()
                assert response.status in documented, (method, response.status)
    assert not [line for line in logs if line["event"] == "unexpected_error"]
