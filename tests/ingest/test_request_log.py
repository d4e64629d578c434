"""The live gateway's request log: an entry for every answer, pointing at the raw record of an
accepted request, keeping a bounded prefix of a refused body within its budget, and never a
secret, a signature or an API key."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import aiohttp
import pytest

from hookbus.config import HookbusConfig, KafkaConfig, RequestLogConfig, parse_source
from hookbus.provider import Credentials
from hookbus.requestlog import REDACTED, RequestLogEntry
from ingest.requestlog import RefusedBodyBudget
from tests.ingest.conftest import RawTopic, StartGateway, gateway_config, headers
from tools.requests import RequestFilter, matching_entries
from tools.send import sign

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SECRET = "whsec-request-log-5c1e8a"
API_KEY = "request-log-key-9d2f4b"
BODY = b'{"event":"evt-7","eventType":"member.updated","data":{"_id":"m-1"}}'


def config_of(kafka: KafkaConfig, **request_log: Any) -> HookbusConfig:
    sources = [
        parse_source({"secrets": [SECRET]}, name="rnd", provider="officernd"),
        parse_source({"api_key": API_KEY}, name="crm", provider="generic"),
    ]
    config = gateway_config(kafka, sources)
    return dataclasses.replace(config, request_log=RequestLogConfig(**request_log))


async def entries_of(config: HookbusConfig, count: int, *, timeout: float = 30.0) -> list[RequestLogEntry]:
    """The entries of the last minute, once there are ``count`` (the gateway writes them after answering)."""
    deadline = time.monotonic() + timeout
    while True:
        entries, unreadable = await matching_entries(config, RequestFilter(since=time.time() - 60))
        assert unreadable == 0
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.3)


async def test_every_answer_is_an_entry_and_none_holds_a_credential(
    kafka_config: KafkaConfig, start_gateway: StartGateway, raw_topic: RawTopic, http: aiohttp.ClientSession
) -> None:
    config = config_of(kafka_config)
    gateway = await start_gateway(config)
    base = f"http://127.0.0.1:{gateway.port}/webhooks"
    signed = sign("officernd", BODY, Credentials(secret=SECRET.encode()))
    async with http.post(f"{base}/rnd", data=BODY, headers=signed.headers) as accepted:
        assert accepted.status == 200
        ingest_id = (await accepted.json())["id"]
    forged = sign("officernd", BODY, Credentials(secret=b"not-the-secret"))
    async with http.post(f"{base}/rnd", data=BODY, headers=forged.headers) as refused:
        assert refused.status == 401
    async with http.post(f"{base}/nobody?x=1", data=b"{}") as unknown:
        assert unknown.status == 404
    async with http.post(f"{base}/crm?api-key={API_KEY}&tag=a", data=b"{}", headers={"X-Trace": "t"}) as keyed:
        assert keyed.status == 200

    entries = await entries_of(config, 4)
    assert len(entries) == 4, entries
    by_status = {entry.status: entry for entry in entries}
    ok = next(entry for entry in entries if entry.ingest_id == ingest_id)
    assert (ok.verdict, ok.source, ok.provider, ok.body_prefix, ok.body_omitted) == (
        "accept",
        "rnd",
        "officernd",
        None,
        "accepted",
    )
    # The pointer names the raw record of this very request.
    assert ok.raw is not None
    assert ok.raw.topic == kafka_config.raw_topic
    raw = (await raw_topic.records_by_ingest_id())[ingest_id]
    assert (raw.partition, raw.offset) == (ok.raw.partition, ok.raw.offset)
    assert headers(raw)["hookbus-ingest-id"].decode() == ingest_id

    bad = by_status[401]
    assert (bad.verdict, bad.reason, bad.known_source) == ("reject", "bad_signature", True)
    assert bad.detail
    assert bad.body_prefix == BODY, "a refused body is kept (it is shorter than the prefix)"
    assert bad.headers["officernd-signature"] == REDACTED
    missing = by_status[404]
    assert (missing.source, missing.known_source, missing.reason) == ("nobody", False, "unknown_source")
    keyed_entry = next(entry for entry in entries if entry.source == "crm")
    assert keyed_entry.query == (("tag", "a"),), "the API key is not in the query kept"

    records = b"".join(entry.to_json() for entry in entries)
    for secret in (SECRET.encode(), API_KEY.encode(), signed.headers["officernd-signature"].encode()):
        assert secret not in records


async def test_refused_bodies_past_the_budget_are_left_out(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    config = config_of(kafka_config, refused_body_bytes=16, refused_body_bytes_per_second=20)
    gateway = await start_gateway(config)
    forged = sign("officernd", BODY, Credentials(secret=b"not-the-secret"))
    for _ in range(6):
        async with http.post(f"http://127.0.0.1:{gateway.port}/webhooks/rnd", data=BODY, headers=forged.headers):
            pass

    entries = await entries_of(config, 6)
    kept = [entry for entry in entries if entry.body_prefix is not None]
    assert all(entry.body_prefix == BODY[:16] for entry in kept)
    # 20 bytes a second: one prefix of 16 at once, then one more per 0.8 s the requests take.
    assert 1 <= len(kept) < 6
    assert {entry.body_omitted for entry in entries if entry.body_prefix is None} == {"budget"}


def test_the_refused_body_budget_refills_at_its_rate() -> None:
    now = [100.0]
    budget = RefusedBodyBudget(
        RequestLogConfig(refused_body_bytes=10, refused_body_bytes_per_second=25), clock=lambda: now[0]
    )
    assert budget.prefix(b"x" * 100) == b"x" * 10
    assert budget.prefix(b"y" * 100) == b"y" * 10
    assert budget.prefix(b"z" * 100) is None, "5 bytes left"
    now[0] += 0.2
    assert budget.prefix(b"z" * 100) == b"z" * 10
    assert budget.prefix(b"") is None
    now[0] += 3600
    assert budget.prefix(b"w" * 8) == b"w" * 8, "never more than a second's worth in store"
    assert budget.prefix(b"w" * 10) == b"w" * 10
    assert budget.prefix(b"w" * 10) is None
