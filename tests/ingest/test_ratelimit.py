"""Per-source rate limits: the token bucket on an injected clock, and 429 before the body is read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hookbus.config import KafkaConfig, RateLimit, parse_source
from hookbus.rawevent import RawEvent
from ingest.gateway import build_app
from ingest.publisher import Receipt
from ingest.ratelimit import RateLimiter, TokenBucket
from tests.ingest.conftest import gateway_config

API_KEY = "rate-key-3f9a2c71"
HEADERS = {"X-API-Key": API_KEY}


@dataclass(slots=True)
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class KeepingPublisher:
    """Acknowledges at once and keeps what it was given: the rate limit is what is under test here."""

    events: list[RawEvent] = field(default_factory=list)

    async def publish(self, event: RawEvent, *, kafka_until: float | None = None) -> Receipt:
        self.events.append(event)
        return Receipt(topic="kept", partition=0, offset=len(self.events) - 1)

    async def not_ready_reasons(self) -> list[str]:
        return []


def test_a_full_bucket_allows_a_burst_then_one_request_per_refill() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(per_second=2.0, burst=3), clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(per_second=10.0, burst=2), clock)
    clock.now += 3600
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


def test_a_clock_stepping_back_does_not_drain_or_fill_the_bucket() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(per_second=1.0, burst=1), clock)
    assert bucket.take() == 0.0
    clock.now -= 50
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1
    assert bucket.take() == 0.0


def test_retry_after_is_whole_seconds_rounded_up_and_unlimited_sources_pass() -> None:
    clock = ManualClock()
    limited = parse_source(
        {"api_key": API_KEY, "rate_limit": {"per_second": 0.4, "burst": 1}}, name="slow", provider="octamile"
    )
    free = parse_source({"api_key": API_KEY}, name="free", provider="octamile")
    limiter = RateLimiter([limited, free], clock=clock)
    assert limiter.retry_after("slow") is None
    assert limiter.retry_after("slow") == 3  # 2.5 s until the next token
    clock.now += 2.2
    assert limiter.retry_after("slow") == 1  # 0.3 s
    assert all(limiter.retry_after("free") is None for _ in range(100))


@pytest.fixture
async def limited_gateway() -> AsyncIterator[tuple[TestServer, ManualClock, KeepingPublisher]]:
    sources = [
        parse_source(
            {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "rate_limit": {"per_second": 1, "burst": 2}},
            name="limited",
            provider="octamile",
        ),
        parse_source({"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}, name="other", provider="octamile"),
    ]
    clock, publisher = ManualClock(), KeepingPublisher()
    config = gateway_config(KafkaConfig(), sources)
    server = TestServer(build_app(config, publisher=publisher, rate_clock=clock))
    await server.start_server()
    try:
        yield server, clock, publisher
    finally:
        await server.close()


async def test_a_source_over_its_limit_gets_429_with_retry_after_and_others_do_not(
    limited_gateway: tuple[TestServer, ManualClock, KeepingPublisher],
) -> None:
    server, clock, publisher = limited_gateway
    async with aiohttp.ClientSession() as http:

        async def post(source: str) -> aiohttp.ClientResponse:
            async with http.post(server.make_url(f"/webhooks/{source}"), data=b"{}", headers=HEADERS) as response:
                await response.read()
                return response

        assert [(await post("limited")).status for _ in range(2)] == [200, 200]
        refused = await post("limited")
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        async with http.post(server.make_url("/webhooks/limited"), data=b"{}", headers=HEADERS) as response:
            assert (await response.json())["error"] == "rate_limited"
        assert (await post("other")).status == 200
        clock.now += 1.0
        assert (await post("limited")).status == 200
    assert [event.source for event in publisher.events] == ["limited", "limited", "other", "limited"]


async def test_the_limit_is_checked_before_the_body_is_read(
    limited_gateway: tuple[TestServer, ManualClock, KeepingPublisher],
) -> None:
    server, _, publisher = limited_gateway
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(server.make_url("/webhooks/limited"), data=b"{}", headers=HEADERS) as response:
                assert response.status == 200
    # Headers announcing a large body that never comes: the refusal cannot have waited for it.
    request = (
        b"POST /webhooks/limited HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode() + b"\r\n"
        b"Content-Length: 1000000\r\n\r\n"
    )
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    assert status_line.split()[1] == b"429"
    assert len(publisher.events) == 2
