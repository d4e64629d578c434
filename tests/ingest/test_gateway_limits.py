"""Limits on what one client may hold: slow headers and bodies are cut off, oversized or too many
headers are refused with a 4xx. Raw sockets, every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from hookbus.config import KafkaConfig, parse_source
from tests.ingest.conftest import RunningGateway, StartGateway, gateway_config

pytestmark = pytest.mark.timeout(120)

API_KEY = "limits-key-5c0e9a12"
KEEPALIVE_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 1.0
MAX_HEADER_BYTES = 1024
MAX_HEADERS = 20
# Far beyond the timeouts above: reaching it means the gateway never cut the client off.
CUT_OFF_BOUND_SECONDS = 20.0
DRIBBLE_INTERVAL_SECONDS = 0.05
REQUEST_LINE = b"POST /webhooks/limits HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
async def gateway(kafka_config: KafkaConfig, start_gateway: StartGateway) -> RunningGateway:
    source = parse_source({"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}, name="limits", provider="octamile")
    config = gateway_config(
        kafka_config,
        [source],
        keepalive_timeout_seconds=KEEPALIVE_TIMEOUT_SECONDS,
        read_timeout_seconds=READ_TIMEOUT_SECONDS,
        max_header_bytes=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
    )
    return await start_gateway(config)


async def dribble(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` one byte at a time, for as long as the connection takes it."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(DRIBBLE_INTERVAL_SECONDS)


async def answer_to_a_dribbling_client(gateway: RunningGateway, opening: bytes, dribbled: bytes) -> bytes:
    """Everything the gateway sends back before it closes the connection on a client that
    sends ``opening`` at once and then ``dribbled`` a byte at a time (far slower than the limits allow)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(opening)
    sending = asyncio.create_task(dribble(writer, dribbled))
    try:
        async with asyncio.timeout(CUT_OFF_BOUND_SECONDS):
            with contextlib.suppress(ConnectionError):
                return await reader.read()
            return b""
    finally:
        sending.cancel()
        writer.close()


async def test_headers_dribbled_a_byte_at_a_time_are_cut_off(gateway: RunningGateway) -> None:
    endless_headers = b"".join(f"X-Slow-{number}: {'a' * 20}\r\n".encode() for number in range(1000))
    answer = await answer_to_a_dribbling_client(gateway, REQUEST_LINE, endless_headers)
    # Closed without an answer: there was no complete request to answer.
    assert answer == b""


async def test_a_connection_that_never_sends_a_request_is_closed(gateway: RunningGateway) -> None:
    answer = await answer_to_a_dribbling_client(gateway, b"", b"")
    assert answer == b""


async def test_a_body_dribbled_a_byte_at_a_time_gets_408_and_is_cut_off(gateway: RunningGateway) -> None:
    head = REQUEST_LINE + f"X-API-Key: {API_KEY}\r\nContent-Length: 10000\r\n\r\n".encode()
    answer = await answer_to_a_dribbling_client(gateway, head, b"{" + b" " * 9999)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer


async def exchange(gateway: RunningGateway, request: bytes) -> tuple[int, bytes]:
    """The status and body of the answer to ``request``, sent as raw bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        async with asyncio.timeout(CUT_OFF_BOUND_SECONDS):
            writer.write(request)
            await writer.drain()
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def assert_json_refusal(body: bytes, reason: str) -> None:
    """aiohttp's own page would be text quoting the request; the gateway's is JSON without it."""
    assert orjson.loads(body)["error"] == reason
    assert API_KEY.encode() not in body


@pytest.mark.parametrize(
    "oversized",
    [
        pytest.param(b"X-Long: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n", id="one header too long"),
        pytest.param(b"".join(f"X-H{number}: v\r\n".encode() for number in range(MAX_HEADERS + 1)), id="too many"),
        pytest.param(b"X-" + b"n" * (MAX_HEADER_BYTES + 1) + b": v\r\n", id="header name too long"),
    ],
)
async def test_oversized_or_too_many_headers_get_a_client_error(gateway: RunningGateway, oversized: bytes) -> None:
    status, body = await exchange(gateway, REQUEST_LINE + f"X-API-Key: {API_KEY}\r\n".encode() + oversized + b"\r\n")
    assert status in {400, 431}
    assert_json_refusal(body, "bad_request")


async def test_a_request_line_too_long_gets_a_client_error(gateway: RunningGateway) -> None:
    request = b"POST /webhooks/limits?" + b"q" * (MAX_HEADER_BYTES + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, body = await exchange(gateway, request)
    assert 400 <= status < 500
    assert_json_refusal(body, "bad_request")


async def test_a_header_that_breaks_the_framing_is_refused_without_echoing_it(gateway: RunningGateway) -> None:
    status, body = await exchange(gateway, REQUEST_LINE + f"X-API-Key {API_KEY}\r\n\r\n".encode())
    assert status == 400
    assert_json_refusal(body, "bad_request")


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
    ],
)
async def test_the_routers_own_refusals_are_json_too(
    gateway: RunningGateway, method: str, path: str, status: int, reason: str
) -> None:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {API_KEY}\r\n\r\n"
    answered, body = await exchange(gateway, request.encode())
    assert answered == status
    assert_json_refusal(body, reason)


async def test_headers_within_the_limits_are_accepted(gateway: RunningGateway) -> None:
    fitting = b"".join(f"X-H{number}: {'v' * 100}\r\n".encode() for number in range(MAX_HEADERS - 4))
    request = REQUEST_LINE + fitting + f"X-API-Key: {API_KEY}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    status, _body = await exchange(gateway, request)
    assert status == 200
