"""The in-flight body budget: the bodies being read or held by all requests together stay
within ``gateway.max_inflight_body_bytes``; past it a request gets 503 ``overloaded`` with
Retry-After before its body is read. Slow uploads on loopback, a few connections, every wait
bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
import structlog

from hookbus.config import KafkaConfig, parse_source
from ingest.budget import BodyBudget
from tests.ingest.conftest import RunningGateway, StartGateway, gateway_config

pytestmark = pytest.mark.timeout(120)

API_KEY = "budget-key-2f6a0d83"
BODY_LIMIT = 256 * 1024
BUDGET = 2 * BODY_LIMIT
ANSWER_BOUND_SECONDS = 10.0


@pytest.fixture
async def gateway(kafka_config: KafkaConfig, start_gateway: StartGateway) -> RunningGateway:
    source = parse_source(
        {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "max_body_bytes": BODY_LIMIT},
        name="budget",
        provider="octamile",
    )
    # Uploads held for seconds: neither the read timeout nor the answer deadline may cut them.
    config = gateway_config(
        kafka_config,
        [source],
        read_timeout_seconds=30.0,
        answer_deadline_seconds=30.0,
        max_inflight_body_bytes=BUDGET,
    )
    return await start_gateway(config)


def head_of(length: int | None, source: str = "budget") -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return f"POST /webhooks/{source} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n{framing}\r\n\r\n".encode()


@contextlib.asynccontextmanager
async def upload(
    gateway: RunningGateway, head: bytes
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(head)
        await writer.drain()
        yield reader, writer
    finally:
        writer.close()


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    async with asyncio.timeout(ANSWER_BOUND_SECONDS):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return int(head.split()[1]), head, await reader.readexactly(length)


async def until_held(gateway: RunningGateway, writer: asyncio.StreamWriter) -> None:
    # A first byte of the body: the request is past its checks and holds its share.
    writer.write(b"{")
    await writer.drain()
    await asyncio.sleep(0.3)


async def test_slow_uploads_that_hold_the_budget_make_the_next_request_wait(gateway: RunningGateway) -> None:
    async with (
        upload(gateway, head_of(BODY_LIMIT)) as (first_reader, first),
        upload(gateway, head_of(BODY_LIMIT)) as (
            _,
            second,
        ),
    ):
        await until_held(gateway, first)
        await until_held(gateway, second)
        async with upload(gateway, head_of(2)) as (reader, writer):
            status, head, body = await answer_of(reader)
            assert status == 503, body
            assert orjson.loads(body)["error"] == "overloaded"
            assert b"\r\nRetry-After: " in head
            # Refused before its body was read: the connection is closed.
            async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                assert await reader.read() == b""
        # The first upload completes; its share comes back once it is answered.
        first.write(b" " * (BODY_LIMIT - 2) + b"}")
        status, _, body = await answer_of(first_reader)
        assert status == 200, body
    async with upload(gateway, head_of(2)) as (reader, writer):
        writer.write(b"{}")
        status, _, body = await answer_of(reader)
        assert status == 200, body


async def test_a_chunked_body_is_counted_as_it_grows(gateway: RunningGateway) -> None:
    async with upload(gateway, head_of(BODY_LIMIT)) as (_, first), upload(gateway, head_of(BODY_LIMIT)) as (_, second):
        await until_held(gateway, first)
        await until_held(gateway, second)
        # A chunked body declares nothing, so it passes the door and is refused as it arrives.
        async with upload(gateway, head_of(None)) as (reader, writer):
            chunk = b"x" * 1024
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            status, _, body = await answer_of(reader)
    assert (status, orjson.loads(body)["error"]) == (503, "overloaded")


def test_the_budget_reserves_and_gives_back() -> None:
    budget = BodyBudget(100)
    first = budget.reserve(60)
    assert first is not None
    assert budget.reserve(50) is None
    second = budget.reserve(0)
    assert second is not None
    assert second.cover(40)
    assert second.cover(10)  # already covered
    assert not second.cover(41)
    first.release()
    first.release()  # a share is never given back twice
    assert budget.held == 40
    assert second.cover(100)
    second.release()
    assert budget.held == 0


async def test_a_source_whose_body_cannot_fit_the_budget_is_logged_at_startup(
    kafka_config: KafkaConfig, start_gateway: StartGateway
) -> None:
    source = parse_source({"api_key": API_KEY, "max_body_bytes": BUDGET + 1}, name="huge", provider="octamile")
    with structlog.testing.capture_logs() as logs:
        gateway = await start_gateway(gateway_config(kafka_config, [source], max_inflight_body_bytes=BUDGET))
    (warning,) = [line for line in logs if line["event"] == "inflight_budget_below_max_body_bytes"]
    assert (warning["sources"], warning["budget_bytes"]) == (["huge"], BUDGET)
    # A body that could never fit is refused as overloaded at once, not read.
    async with upload(gateway, head_of(BUDGET + 1, source="huge")) as (reader, _):
        status, _, body = await answer_of(reader)
    assert (status, orjson.loads(body)["error"]) == (503, "overloaded")
