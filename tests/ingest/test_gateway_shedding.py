"""Load shedding against a real broker frozen with SIGSTOP while requests keep coming: every
request is answered within ``gateway.answer_deadline_seconds``; a source that retries gets 503
with Retry-After (``overloaded`` before its body is read when the gateway is over its bounds),
one that never retries gets 200 from the spool; and once the broker is thawed, every 2xx has
its record in the raw topic.

This file runs a broker of its own (never the shared one) so it can freeze it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from hookbus.config import GatewayConfig, HookbusConfig, KafkaConfig, parse_config, parse_source
from hookbus.errors import ConfigError
from hookbus.provider import Credentials
from ingest.admission import MIN_ARRIVAL_RATE, TICK_SECONDS, Admission, QueueWait, accept_queue_length
from ingest.publisher import producer_request_timeout
from tests.ingest.conftest import RawTopic, RunningGateway, StartGateway, eventually, gateway_config
from tools.localkafka import LocalKafka
from tools.send import sign

DEADLINE_SECONDS = 2.0
# The client's own share of an answer's time (connecting, the event loop it shares with the
# gateway in this process) on a busy two-core machine; the gateway's part is the deadline.
MARGIN_SECONDS = 1.0
MAX_INFLIGHT = 8
WAVES = 6
WAVE_REQUESTS = 12
WAVE_INTERVAL_SECONDS = 0.5
RECOVERY_TIMEOUT_SECONDS = 120.0
SECRET = "whsec-shed-test-3b9e71d2"
API_KEY = "shed-key-5f0a9c64"


@dataclass(frozen=True, slots=True)
class Answer:
    source: str
    status: int
    error: str | None
    ingest_id: str | None
    retry_after: str | None
    seconds: float


def shedding_config(own_kafka: LocalKafka, spool_dir: Path) -> HookbusConfig:
    kafka = KafkaConfig(
        bootstrap_servers=own_kafka.bootstrap_servers,
        raw_topic=f"shed-{uuid.uuid4().hex[:8]}.raw",
        topic_partitions=1,
        development_mode=True,
    )
    sources = [
        # OfficeRnD never retries: it spools by default.
        parse_source({"secrets": [SECRET]}, name="rnd", provider="officernd"),
        parse_source(
            {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "spool": False}, name="retrying", provider="octamile"
        ),
    ]
    return gateway_config(
        kafka,
        sources,
        answer_deadline_seconds=DEADLINE_SECONDS,
        max_inflight_requests=MAX_INFLIGHT,
        shutdown_timeout_seconds=5.0,
        spool_dir=str(spool_dir),
    )


async def post(http: aiohttp.ClientSession, gateway: RunningGateway, source: str, number: int) -> Answer:
    if source == "rnd":
        body = f'{{"event":"evt-{number:04d}","eventType":"member.updated","data":{{"object":{{"_id":"m"}}}}}}'.encode()
        headers = dict(sign("officernd", body, Credentials(secret=SECRET.encode()), now=gateway.clock.now).headers)
    else:
        body, headers = f'{{"n":{number}}}'.encode(), {"X-API-Key": API_KEY}
    started = time.monotonic()
    async with http.post(gateway.url(f"/webhooks/{source}"), data=body, headers=headers) as response:
        document = await response.json()
        seconds = time.monotonic() - started
    return Answer(
        source,
        response.status,
        document.get("error"),
        document.get("id"),
        response.headers.get("Retry-After"),
        seconds,
    )


async def waves(http: aiohttp.ClientSession, gateway: RunningGateway) -> list[Answer]:
    """Requests of both sources keep coming, faster than a frozen broker lets them finish."""
    sent: list[asyncio.Task[Answer]] = []
    for wave in range(WAVES):
        for number in range(WAVE_REQUESTS):
            source = "rnd" if number % 2 else "retrying"
            sent.append(asyncio.create_task(post(http, gateway, source, wave * WAVE_REQUESTS + number)))
        await asyncio.sleep(WAVE_INTERVAL_SECONDS)
    return list(await asyncio.gather(*sent))


@contextlib.contextmanager
def frozen(kafka: LocalKafka) -> Iterator[None]:
    """The broker stopped with SIGSTOP: it holds its sockets and answers nothing, then SIGCONT."""
    kafka.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        kafka.send_signal(signal.SIGCONT)


async def spool_records(http: aiohttp.ClientSession, gateway: RunningGateway) -> int:
    async with http.get(gateway.url("/readyz")) as response:
        return int((await response.json())["spool"]["records"])


async def is_zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def overloaded_before_the_body(gateway: RunningGateway) -> tuple[int, bytes]:
    """A request of the retrying source that declares a large body and sends none of it: the
    answer, and whether it came without the body (the connection then closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(
            b"POST /webhooks/retrying HTTP/1.1\r\nHost: x\r\n"
            + f"X-API-Key: {API_KEY}\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        async with asyncio.timeout(DEADLINE_SECONDS + MARGIN_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
            rest = await reader.read()
        return int(head.split()[1]), rest
    finally:
        writer.close()


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_frozen_broker_gets_every_request_answered_within_the_deadline(
    own_kafka: LocalKafka, start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = await start_gateway(shedding_config(own_kafka, tmp_path / "spool"))
    assert [(await post(http, gateway, source, 0)).status for source in ("rnd", "retrying")] == [200, 200]

    with frozen(own_kafka):
        holding = asyncio.create_task(waves(http, gateway))
        # Once the first wave holds every slot, a request is refused before its body is read.
        await asyncio.sleep(WAVE_INTERVAL_SECONDS)
        status, rest = await overloaded_before_the_body(gateway)
        answers = await holding

    assert status == 503
    assert b'"overloaded"' in rest
    late = [answer for answer in answers if answer.seconds > DEADLINE_SECONDS + MARGIN_SECONDS]
    assert late == []
    retrying = [answer for answer in answers if answer.source == "retrying"]
    assert {answer.status for answer in retrying} == {503}
    assert all(answer.retry_after is not None and int(answer.retry_after) > 0 for answer in retrying)
    # Both ways of not storing: shed at once, and waited for Kafka until the ack timeout.
    assert {answer.error for answer in retrying} == {"overloaded", "kafka_unavailable"}
    spooled = [answer for answer in answers if answer.source == "rnd"]
    assert {answer.status for answer in spooled} == {200}

    await eventually(lambda: is_zero(spool_records(http, gateway)), timeout=RECOVERY_TIMEOUT_SECONDS, interval=0.5)
    stored = await RawTopic(gateway.config.kafka).records_by_ingest_id()
    accepted = {answer.ingest_id for answer in answers if answer.status == 200}
    assert len(accepted) == len(spooled)
    assert accepted - stored.keys() == set()


def test_a_request_the_event_loop_got_to_late_is_shed() -> None:
    admission = Admission(deadline=2.0, ack_timeout=1.5, max_queue=0.5, max_inflight=2)
    now = time.monotonic()

    fresh = admission.ticket(now)
    late = admission.ticket(now - 0.6)

    assert not fresh.shed
    assert fresh.kafka_until == pytest.approx(now + 1.5)
    assert fresh.answer_by == pytest.approx(now + 2.0)
    assert late.shed
    # Straight to the spool: no time is given to Kafka.
    assert late.kafka_until <= time.monotonic()
    assert late.answer_by == pytest.approx(now - 0.6 + 2.0)


async def test_a_request_parsed_late_by_a_late_event_loop_is_shed() -> None:
    lag = QueueWait()
    admission = Admission(deadline=2.0, ack_timeout=1.5, max_queue=0.2, max_inflight=2, wait=lag)
    lag.start()
    try:
        assert not admission.ticket(time.monotonic()).shed
        # The loop is held up (a CPU it does not get): whatever arrives meanwhile waits in the kernel.
        time.sleep(0.5)  # noqa: ASYNC251 - blocking the loop is the point
        await asyncio.sleep(TICK_SECONDS)

        assert lag.seconds >= 0.3
        assert admission.ticket(time.monotonic()).shed
        # Caught up: the estimate falls as time passes.
        await asyncio.sleep(0.6)
        assert lag.seconds < 0.2
        assert not admission.ticket(time.monotonic()).shed
    finally:
        lag.stop()


async def test_connections_waiting_in_the_accept_queue_make_requests_late() -> None:
    queued = 40
    with socket.create_server(("127.0.0.1", 0), backlog=queued * 2) as listening:
        clients = [socket.create_connection(listening.getsockname()) for _ in range(queued)]
        try:
            assert accept_queue_length(listening) == queued
            wait = QueueWait()
            wait.watch([listening])
            admission = Admission(deadline=2.0, ack_timeout=1.5, max_queue=0.2, max_inflight=100, wait=wait)
            wait.start()
            try:
                await asyncio.sleep(TICK_SECONDS * 3)
                assert wait.seconds >= queued / MIN_ARRIVAL_RATE
                assert admission.ticket(time.monotonic()).shed
            finally:
                wait.stop()
        finally:
            for client in clients:
                client.close()


def test_requests_past_the_inflight_bound_are_shed() -> None:
    admission = Admission(deadline=2.0, ack_timeout=1.5, max_queue=0.5, max_inflight=2)
    admission.enter()
    admission.enter()

    assert admission.ticket(time.monotonic()).shed
    admission.leave()
    assert not admission.ticket(time.monotonic()).shed


def test_the_inflight_bound_is_shared_by_the_workers() -> None:
    config = parse_config({"gateway": {"max_inflight_requests": 10}})
    admission = Admission.from_config(config, processes=4)
    for _ in range(2):
        admission.enter()

    assert admission.ticket(time.monotonic()).shed


@pytest.mark.parametrize("key", ["ack_timeout_seconds", "max_queue_seconds"])
def test_a_wait_that_does_not_fit_in_the_deadline_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"gateway\.{key}"):
        parse_config({"gateway": {"answer_deadline_seconds": 2, key: 2}})


def test_the_gateways_producer_gives_up_on_a_broker_within_the_ack_timeout() -> None:
    config = parse_config({})

    assert GatewayConfig().ack_timeout_seconds < GatewayConfig().answer_deadline_seconds
    assert producer_request_timeout(config) < config.gateway.ack_timeout_seconds
