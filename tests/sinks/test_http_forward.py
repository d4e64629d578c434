"""The HTTP sink against a local receiver that verifies every Standard Webhooks signature."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from hookbus.cloudevent import CloudEvent
from hookbus.config import KafkaConfig
from hookbus.sink import Sink
from sinks.http_forward import SINK
from tests.sinks.helpers import config_with, context, event, header, publish, read_topic, running_sink
from tests.support import free_port

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@dataclass
class Receiver:
    """Answers from a script per event id (then 200), records what it accepted, in order."""

    url: str = ""
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    arrivals: list[str] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    """An event id whose request is held until the event is set."""
    release_on: dict[str, asyncio.Event] = field(default_factory=dict)
    """An event id whose arrival sets the event."""
    delay_seconds: float = 0.0
    """How long each accepted request takes to answer (a slow receiver)."""
    lag_seconds: list[float] = field(default_factory=list)
    """Per request: its arrival time minus its ``webhook-timestamp``."""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.lag_seconds.append(time.time() - int(request.headers["webhook-timestamp"]))
        event_id = request.headers["webhook-id"]
        timestamp = request.headers["webhook-timestamp"]
        expected = hmac.new(KEY, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signatures = [part.split(",", 1)[1] for part in request.headers["webhook-signature"].split()]
        if base64.b64encode(expected).decode() not in signatures:
            return web.Response(status=401)
        self.arrivals.append(event_id)
        if event_id in self.release_on:
            self.release_on[event_id].set()
        if event_id in self.hold:
            await asyncio.wait_for(self.hold[event_id].wait(), 10)
        answers = self.script.get(event_id)
        if answers:
            status, headers = answers.pop(0)
            return web.Response(status=status, headers=headers)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        self.accepted.append({"id": event_id, "headers": dict(request.headers), "body": body})
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    yield receiver
    await runner.cleanup()


def _section(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "secret": SECRET, "allow_private_destinations": True, **extra}


async def _open(section: dict[str, Any]) -> Sink:
    sink = SINK.create(SINK.parse("hook", section), context(name="hook"))
    await sink.open()
    return sink


async def test_binary_and_structured_events_arrive_signed(receiver: Receiver) -> None:
    binary = event(1, key="member-1", data={"name": 'Zoë "quoted" 100%'})
    structured = event(2)
    for item, mode in ((binary, "binary"), (structured, "structured")):
        sink = await _open(_section(receiver.url, mode=mode))
        try:
            result = await sink.write([item])
        finally:
            await sink.close()
        assert result.written == [item]
    first, second = receiver.accepted
    assert first["headers"]["ce-id"] == binary.id
    assert first["headers"]["ce-type"] == binary.type
    assert first["headers"]["ce-partitionkey"] == "member-1"
    assert first["headers"]["Content-Type"] == "application/json"
    assert orjson.loads(first["body"]) == binary.data
    assert second["headers"]["Content-Type"] == "application/cloudevents+json"
    assert CloudEvent.from_dict(orjson.loads(second["body"])) == structured


async def test_the_trace_context_goes_out_as_w3c_headers_in_both_modes(receiver: Receiver) -> None:
    context = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "congo=t61"}
    traced = event(1)
    traced = dataclasses.replace(traced, extensions={**traced.extensions, **context})
    for mode in ("binary", "structured"):
        sink = await _open(_section(receiver.url, mode=mode))
        try:
            assert (await sink.write([traced])).written == [traced]
        finally:
            await sink.close()
    for accepted in receiver.accepted:
        assert {name: accepted["headers"].get(name) for name in context} == context
    untraced = await _open(_section(receiver.url))
    try:
        await untraced.write([event(2)])
    finally:
        await untraced.close()
    assert "traceparent" not in receiver.accepted[-1]["headers"]


@pytest.mark.parametrize(("status", "retry_after"), [(503, "1"), (429, "2"), (502, None)])
async def test_a_retriable_answer_is_retried_honouring_retry_after(
    receiver: Receiver, status: int, retry_after: str | None
) -> None:
    item = event(1)
    receiver.script[item.id] = [(status, {"Retry-After": retry_after} if retry_after else {})]
    sink = await _open(_section(receiver.url, max_retry_after_seconds=1.5))
    try:
        first = await sink.write([item])
        second = await sink.write(first.retry)
    finally:
        await sink.close()
    assert (first.written, first.retry, first.rejected) == ([], [item], [])
    assert first.retry_after == (min(float(retry_after), 1.5) if retry_after else None)
    assert second.written == [item]
    assert receiver.arrivals == [item.id, item.id]


async def test_events_of_one_key_go_in_order_and_other_keys_in_parallel(receiver: Receiver) -> None:
    batch = [event(number, key=f"member-{number % 3}") for number in range(30)]
    # member-0's first request is held until member-1's first arrives: only parallel sending gets past it.
    receiver.hold[batch[0].id] = asyncio.Event()
    receiver.release_on[batch[1].id] = receiver.hold[batch[0].id]
    # And member-2's second event fails once: the ones after it in that key must wait for the retry.
    receiver.script[batch[5].id] = [(503, {})]
    sink = await _open(_section(receiver.url, concurrency=4))
    try:
        first = await sink.write(batch)
        second = await sink.write(first.retry)
    finally:
        await sink.close()
    assert sorted(item.id for item in first.retry) == sorted(item.id for item in batch[5::3])
    assert second.retry == []
    assert sorted(item["id"] for item in receiver.accepted) == sorted(item.id for item in batch)
    for key in range(3):
        in_key = [item.id for item in batch if item.partition_key == f"member-{key}"]
        assert [item["id"] for item in receiver.accepted if item["id"] in in_key] == in_key


async def test_a_request_is_signed_when_it_goes_out_not_while_it_queues(receiver: Receiver) -> None:
    # Two connections, 0.7 s per request: the last of 8 events waits about 2 s for a slot.
    receiver.delay_seconds = 0.7
    batch = [event(number) for number in range(8)]
    sink = await _open(_section(receiver.url, concurrency=2))
    try:
        result = await sink.write(batch)
    finally:
        await sink.close()
    assert len(result.written) == len(batch)
    assert len(receiver.lag_seconds) == len(batch)
    # The timestamp is whole seconds, so a fresh one is up to 1 s behind the arrival.
    assert max(receiver.lag_seconds) < 1.0 + 0.2, receiver.lag_seconds


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed(receiver: Receiver) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    refused = await _open(_section(url, allow_private_destinations=False))
    try:
        result = await refused.write([event(1)])
    finally:
        await refused.close()
    assert [(rejection.reason, rejection.event.id) for rejection in result.rejected] == [
        ("destination_refused", event(1).id)
    ]
    assert receiver.arrivals == []
    allowed = await _open(_section(url))
    try:
        assert (await allowed.write([event(1)])).written == [event(1)]
    finally:
        await allowed.close()


@pytest.mark.kafka
async def test_through_the_runner_a_400_is_dead_lettered_and_a_503_retried(
    kafka_config: KafkaConfig, receiver: Receiver
) -> None:
    refused, flaky, fine = event(1), event(2), event(3)
    receiver.script[refused.id] = [(400, {})]
    receiver.script[flaky.id] = [(503, {"Retry-After": "1"})]
    section = {"type": "http", **_section(receiver.url), "batch_timeout_seconds": 0.2, "retry_initial_seconds": 0.1}
    config = config_with({"hook": section}, kafka_config)
    await publish(kafka_config, [refused, flaky, fine])
    async with running_sink(config, "hook"):
        letters = await read_topic(kafka_config, f"{kafka_config.events_topic}.dlq.hook", 1)
        for _ in range(100):
            if len(receiver.accepted) == 2:
                break
            await asyncio.sleep(0.1)
    assert sorted(item["id"] for item in receiver.accepted) == [flaky.id, fine.id]
    assert receiver.arrivals.count(flaky.id) == 2
    assert [(header(letter, "ce_id"), header(letter, "hookbus-dlq-reason")) for letter in letters] == [
        (refused.id, "http_400")
    ]
