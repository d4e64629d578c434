"""Every check that needs no body is made before the body is read and before ``100 Continue``:
a refused sender never gets to send its body, so refused requests cannot fill the memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest

from hookbus.config import KafkaConfig, parse_source
from tests.ingest.conftest import RunningGateway, StartGateway, gateway_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

API_KEY = "head-key-71c3e9a0"
TOKEN = "head-token-0b5d"
READ_TIMEOUT_SECONDS = 20.0
# Far below the read timeout: an answer this quick did not wait for the body.
ANSWER_BOUND_SECONDS = 5.0
DECLARED_BYTES = 512 * 1024


@pytest.fixture
async def gateway(kafka_config: KafkaConfig, start_gateway: StartGateway) -> RunningGateway:
    source = parse_source(
        {
            "api_key": API_KEY,
            "ip_allowlist": ["127.0.0.1/32"],
            "required_headers": {"X-Token": TOKEN},
            "max_body_bytes": 2 * DECLARED_BYTES,
        },
        name="guarded",
        provider="octamile",
    )
    config = gateway_config(kafka_config, [source], read_timeout_seconds=READ_TIMEOUT_SECONDS)
    return await start_gateway(config)


@contextlib.asynccontextmanager
async def connection(gateway: RunningGateway) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        yield reader, writer
    finally:
        writer.close()


def head_of(method: str = "POST", *, lines: tuple[str, ...], length: int = DECLARED_BYTES) -> bytes:
    fields = "".join(f"{line}\r\n" for line in lines)
    return f"{method} /webhooks/guarded HTTP/1.1\r\nHost: x\r\n{fields}Content-Length: {length}\r\n\r\n".encode()


async def first_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, bytes], bytes]:
    """The status line, headers and body of the next response (a 100 Continue included)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip().encode() for name, _, value in (field.partition(":") for field in fields if field)
    }
    length = int(headers.get("content-length", b"0"))
    return int(status_line.split()[1]), headers, await reader.readexactly(length)


GOOD = ("X-Forwarded-For: 127.0.0.1", f"X-API-Key: {API_KEY}", f"X-Token: {TOKEN}")


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused on its head alone, and the answer it must get."""

    lines: tuple[str, ...]
    status: int
    reason: str
    method: str = "POST"
    length: int = DECLARED_BYTES


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(Refused(("X-Forwarded-For: 192.0.2.44", *GOOD[1:]), 403, "ip_not_allowed"), id="ip"),
        pytest.param(Refused((GOOD[0], "X-API-Key: wrong", GOOD[2]), 401, "bad_api_key"), id="api-key"),
        pytest.param(Refused(GOOD, 405, "method_not_allowed", method="PUT"), id="method"),
        pytest.param(Refused(GOOD[:2], 400, "header_not_allowed"), id="required-header"),
        pytest.param(Refused(GOOD, 413, "too_large", length=4 * DECLARED_BYTES), id="declared-length"),
    ],
)
@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100"])
async def test_a_refusal_that_needs_no_body_comes_before_the_body(
    gateway: RunningGateway, case: Refused, expect_continue: bool
) -> None:
    expect = ("Expect: 100-continue",) if expect_continue else ()
    async with connection(gateway) as (reader, writer):
        started = time.monotonic()
        writer.write(head_of(case.method, lines=(*case.lines, *expect), length=case.length))
        async with asyncio.timeout(ANSWER_BOUND_SECONDS):
            answered, _, body = await first_answer(reader)
        assert (answered, orjson.loads(body)["error"]) == (case.status, case.reason)
        assert time.monotonic() - started < ANSWER_BOUND_SECONDS
        # The connection is closed: the body the sender still holds is not read.
        async with asyncio.timeout(ANSWER_BOUND_SECONDS):
            assert await reader.read() == b""


async def test_an_accepted_request_gets_100_continue_after_the_checks(gateway: RunningGateway) -> None:
    async with connection(gateway) as (reader, writer):
        writer.write(head_of(lines=(*GOOD, "Expect: 100-continue"), length=2))
        async with asyncio.timeout(ANSWER_BOUND_SECONDS * 4):
            status, _, _ = await first_answer(reader)
            assert status == 100
            writer.write(b"{}")
            status, _, body = await first_answer(reader)
        assert status == 200, body
        assert orjson.loads(body)["id"]


async def test_a_real_client_expecting_100_continue_never_sends_a_refused_body(gateway: RunningGateway) -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            sent.append(1)
            yield b"x" * 65536

    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_SECONDS)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(
            gateway.url("/webhooks/guarded"),
            data=body(),
            headers={"X-API-Key": "wrong", "X-Token": TOKEN, "Content-Length": str(8 * 65536)},
            expect100=True,
        ) as response,
    ):
        assert response.status == 401
        assert (await response.json())["error"] == "bad_api_key"
    assert sent == []


async def test_a_real_client_expecting_100_continue_sends_an_accepted_body(gateway: RunningGateway) -> None:
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_SECONDS * 4)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(
            gateway.url("/webhooks/guarded"),
            data=b'{"event":"expected"}',
            headers={"X-API-Key": API_KEY, "X-Token": TOKEN},
            expect100=True,
        ) as response,
    ):
        assert response.status == 200, await response.text()
        assert (await response.json())["id"]
