"""The console against a real broker: its index fed from real topics, and the API answering
each endpoint with the documents the contract (docs/console.md) gives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import ipaddress
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import HookbusConfig, KafkaConfig, parse_config
from hookbus.kafka import TopicSpec, ensure_topics, hookbus_topics, request_log_topic
from hookbus.rawevent import RawEvent, format_time
from hookbus.requestlog import RawPointer, RequestLogEntry
from hookbus.stage.deadletter import Failure, Origin, dead_letter_headers
from tests.ingest.test_ratelimit import ManualClock
from tests.normalizer.test_service import produce, read_topic
from tests.support import free_port, temporary_database
from tools.console import console_settings, run_console
from tools.console.api import Console, console_app
from tools.console.attempts import FailedSignIns, SignInLimit
from tools.console.feeder import Feeder
from tools.console.fetch import RecordFetcher
from tools.console.index import Index, IndexDatabase
from tools.console.lag import LagProbe
from tools.console.openapi import openapi_document
from tools.console.trail import print_trail

TOKEN = "console-token-for-tests-0123456789"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WAIT_SECONDS = 30.0
NOW = time.time()


@dataclasses.dataclass(frozen=True)
class Fed:
    """What a test published, where it landed."""

    config: HookbusConfig
    base: str
    raw_offset: int
    event_offset: int
    dead_raw_offset: int
    normalizer_letter: str
    sink_letter: str
    config_dir: Path


def console_config(kafka: KafkaConfig, folder: Path, index: dict[str, str] | None = None) -> HookbusConfig:
    """The console's configuration; its index is a SQLite file in ``folder`` unless ``index`` says otherwise."""
    where = index if index is not None else {"index_path": str(folder / "console.sqlite3")}
    document = {
        "sources": [{"name": "rnd", "provider": "officernd", "secrets": ["first-secret", "second-secret"]}],
        "normalizer": {"group_id": f"{kafka.client_id}-normalizer"},
        "sinks": {
            "sqlite": {"type": "sqlite", "path": str(folder / "events.db"), "group_id": f"{kafka.client_id}-sqlite"}
        },
        "console": {"token": TOKEN, "port": free_port(), **where},
        "ops": {"host": "127.0.0.1", "port": free_port()},
    }
    return dataclasses.replace(parse_config(document, path="test.yaml"), kafka=kafka)


def raw_event(ingest_id: str, source: str, body: bytes) -> RawEvent:
    return RawEvent(
        source=source,
        provider="officernd",
        ingest_id=ingest_id,
        received_at=NOW - 30,
        body=body,
        content_type="application/json",
        headers={"officernd-signature": "t=1,signature=00"},
    )


def entry(entry_id: str, moment: float, **fields: Any) -> RequestLogEntry:
    defaults: dict[str, Any] = {
        "source": "rnd",
        "known_source": True,
        "provider": "officernd",
        "method": "POST",
        "client_addr": "203.0.113.9",
        "verdict": "accept",
        "reason": None,
        "detail": None,
        "status": 200,
        "size": 27,
        "duration_ms": 2.5,
        "headers": {"content-type": "application/json", "officernd-signature": "[redacted]"},
    }
    return RequestLogEntry(id=entry_id, time=moment, **{**defaults, **fields})


EVENT = CloudEvent(
    id="rnd:evt-1",
    source="/webhooks/rnd",
    type="officernd.member.updated",
    subject="member1",
    data={"name": "Ada", "credit": 12345678901234567890},
    time="2026-01-01T00:00:00Z",
    extensions={"ingestid": "ing-accepted", "provider": "officernd", "traceparent": TRACEPARENT},
)


REPORTS = [
    {"v": 1, "time": NOW - 10, "sink": "sqlite", "event_id": EVENT.id, "ingest_id": "ing-accepted",
     "type": EVENT.type, "subject": EVENT.subject, "outcome": "dead_lettered", "attempt": 1,
     "reason": "constraint_violation", "detail": "IntegrityError", "dead_letter_topic": "x.dlq.sqlite"},
    # Written once the dead letter was replayed.
    {"v": 1, "time": NOW - 5, "sink": "sqlite", "event_id": EVENT.id, "ingest_id": "ing-accepted",
     "type": EVENT.type, "subject": EVENT.subject, "outcome": "written", "attempt": 1, "reason": None,
     "detail": None, "dead_letter_topic": None},
]  # fmt: skip


async def feed_topics(config: HookbusConfig) -> tuple[int, int, int, str, str]:
    """One of everything the console reads, as the stages write it; where each landed."""
    kafka = config.kafka
    sink_letters = f"{kafka.events_topic}.dlq.sqlite"
    await ensure_topics(
        kafka,
        [
            *hookbus_topics(config),
            request_log_topic(config),
            TopicSpec(sink_letters, 1, 1),
            TopicSpec(config.kafka.deliveries_topic, 1, 1),
        ],
    )
    accepted = raw_event("ing-accepted", "rnd", b'{"event": "evt-1", "a": [1]}')
    dead = raw_event("ing-dead", "gone", b"not json")
    (raw_offset, dead_raw_offset) = await produce(
        kafka,
        kafka.raw_topic,
        [
            (accepted.kafka_key, accepted.body, accepted.kafka_headers()),
            (dead.kafka_key, dead.body, dead.kafka_headers()),
        ],
        partitions=[0, 0],
    )
    key, value, headers = EVENT.to_kafka(Mode.BINARY)
    (event_offset,) = await produce(kafka, kafka.events_topic, [(key, value, headers)], partitions=[1])
    route_failure = Failure("route", "unknown_source", "no source is named 'gone'")
    letter_headers = dead_letter_headers(
        dead.kafka_headers(), route_failure, Origin(kafka.raw_topic, 0, dead_raw_offset), now=NOW - 20
    )
    (letter_offset,) = await produce(
        kafka, kafka.dlq_topic, [(dead.kafka_key, dead.body, letter_headers)], partitions=[2]
    )
    sink_headers = dead_letter_headers(
        headers,
        Failure("write", "constraint_violation", "the table refused the row"),
        Origin(kafka.events_topic, 1, event_offset),
        extra={"sink": "sqlite"},
        now=NOW - 10,
    )
    (sink_offset,) = await produce(kafka, sink_letters, [(key, value, sink_headers)], partitions=[0])
    reports = [(EVENT.id.encode(), orjson.dumps(item), []) for item in REPORTS]
    await produce(kafka, config.kafka.deliveries_topic, reports)
    entries = [
        entry("ing-accepted", NOW - 30, ingest_id="ing-accepted", raw=RawPointer(kafka.raw_topic, 0, raw_offset),
              body_omitted="accepted", headers={"content-type": "application/json", "traceparent": TRACEPARENT}),
        entry("rej-1", NOW - 25, verdict="reject", reason="bad_signature", status=401, size=40,
              detail="officernd-signature does not match the request", body_prefix=b'{"event": "evt-2", '),
        entry("ing-dead", NOW - 22, source="gone", known_source=False, provider=None, ingest_id="ing-dead",
              raw=RawPointer(kafka.raw_topic, 0, dead_raw_offset), body_omitted="accepted", size=8),
    ]  # fmt: skip
    await produce(kafka, kafka.requests_topic, [(item.source.encode(), item.to_json(), []) for item in entries])
    return (
        raw_offset,
        event_offset,
        dead_raw_offset,
        f"{kafka.dlq_topic}:2:{letter_offset}",
        f"{sink_letters}:0:{sink_offset}",
    )


@contextlib.asynccontextmanager
async def running_console(config: HookbusConfig) -> AsyncIterator[str]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_console(config, stop=stop, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiting.cancel()
        task.result()
    try:
        yield f"http://127.0.0.1:{config.console['port']}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def authorized() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def get_json(base: str, path: str, *, expect: int = 200, **params: Any) -> Any:
    async with (
        aiohttp.ClientSession(headers=authorized()) as session,
        session.get(base + path, params={k: str(v) for k, v in params.items()}) as response,
    ):
        assert response.status == expect, await response.text()
        return await response.json()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        assert time.monotonic() < deadline, "the index did not catch up"
        await asyncio.sleep(0.2)


async def indexed(base: str, requests: int, letters: int) -> None:
    async def caught_up() -> bool:
        listed = await get_json(base, "/api/v1/requests")
        dead = await get_json(base, "/api/v1/dead-letters")
        return len(listed["items"]) >= requests and len(dead["items"]) >= letters

    await until(caught_up)


@pytest.fixture(params=["sqlite", "postgresql"])
async def console_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The console's index: each API test runs against both backends."""
    if request.param == "sqlite":
        yield {"index_path": str(tmp_path / "console.sqlite3")}
        return
    async with temporary_database(request.getfixturevalue("pg_dsn"), prefix="hookbus_console") as dsn:
        yield {"index_dsn": dsn}


@pytest.fixture
async def fed(kafka_config: KafkaConfig, tmp_path: Path, console_index: dict[str, str]) -> AsyncIterator[Fed]:
    config = console_config(kafka_config, tmp_path, console_index)
    raw_offset, event_offset, dead_raw_offset, letter, sink_letter = await feed_topics(config)
    async with running_console(config) as base:
        await indexed(base, 3, 2)
        yield Fed(config, base, raw_offset, event_offset, dead_raw_offset, letter, sink_letter, tmp_path)


def summary(**fields: Any) -> dict[str, Any]:
    defaults = {"source": "rnd", "provider": "officernd", "method": "POST", "verdict": "accept", "reason": None,
                "status": 200, "size": 27, "ingest_id": None, "event_id": None, "event_type": None, "subject": None,
                "delivery": None}  # fmt: skip
    return {**defaults, **fields}


async def test_the_request_list_is_newest_first_filtered_and_paged(fed: Fed) -> None:
    accepted = summary(id="ing-accepted", time=NOW - 30, ingest_id="ing-accepted", event_id="rnd:evt-1",
                       event_type="officernd.member.updated", subject="member1", delivery="written")  # fmt: skip
    refused = summary(id="rej-1", time=NOW - 25, verdict="reject", reason="bad_signature", status=401, size=40)
    dead = summary(id="ing-dead", time=NOW - 22, source="gone", provider=None, size=8, ingest_id="ing-dead",
                   delivery="dead_lettered")  # fmt: skip

    assert await get_json(fed.base, "/api/v1/requests") == {"items": [dead, refused, accepted], "next": None}
    first = await get_json(fed.base, "/api/v1/requests", limit=2)
    assert first["items"] == [dead, refused]
    assert await get_json(fed.base, "/api/v1/requests", limit=2, before=first["next"]) == {
        "items": [accepted],
        "next": None,
    }
    for query, expected in (
        ({"verdict": "reject"}, [refused]),
        ({"source": "gone"}, [dead]),
        ({"provider": "officernd", "status": 200}, [accepted]),
        ({"reason": "bad_signature"}, [refused]),
        ({"type": "officernd.member.updated"}, [accepted]),
        ({"q": "member1"}, [accepted]),
        ({"q": "rnd:evt-1"}, [accepted]),
        ({"q": "ing-dead"}, [dead]),
        ({"since": NOW - 26, "until": NOW - 23}, [refused]),
        ({"after": NOW - 24}, [dead]),
    ):
        assert (await get_json(fed.base, "/api/v1/requests", **query))["items"] == expected, query
    bad = await get_json(fed.base, "/api/v1/requests", expect=400, verdict="maybe")
    assert bad == {"error": "bad_request", "detail": "verdict must be one of accept, reject, failed"}
    assert (await get_json(fed.base, "/api/v1/requests", expect=400, limit=501))["error"] == "bad_request"


async def test_an_accepted_request_shows_its_body_event_dead_letter_and_trace(fed: Fed) -> None:
    detail = await get_json(fed.base, "/api/v1/requests/ing-accepted")
    kafka = fed.config.kafka

    assert detail["request"] == {
        "v": 1, "id": "ing-accepted", "time": NOW - 30, "source": "rnd", "known_source": True,
        "provider": "officernd", "method": "POST", "client_addr": "203.0.113.9", "verdict": "accept",
        "reason": None, "detail": None, "status": 200, "size": 27, "duration_ms": 2.5,
        "headers": {"content-type": "application/json", "traceparent": TRACEPARENT}, "query": [],
        "ingest_id": "ing-accepted",
        "raw": {"topic": kafka.raw_topic, "partition": 0, "offset": fed.raw_offset, "spooled": False},
        "body_omitted": "accepted",
    }  # fmt: skip
    assert detail["body"] == {
        "kind": "json",
        "text": '{\n  "event": "evt-1",\n  "a": [\n    1\n  ]\n}',
        "size": 28,
        "content_type": "application/json",
        "file_type": None,
        "truncated": False,
        "source": "raw",
    }
    assert detail["explanation"] == {
        "title": "Accepted",
        "text": f"The request was verified and stored in {kafka.raw_topic}, partition 0, offset {fed.raw_offset};"
        " the sender got 200.",
        "hints": [],
    }
    # The event as published, its exact integer included.
    assert detail["event"] == orjson.loads(EVENT.to_json())
    assert detail["event"]["data"]["credit"] == 12345678901234567890
    # What the page shows: the same document, indented, the integer as written (not ...7000).
    assert orjson.loads(detail["event_text"]) == detail["event"]
    assert '"credit": 12345678901234567890' in detail["event_text"]
    assert detail["dead_letters"] == [
        {
            "id": fed.sink_letter, "topic": f"{kafka.events_topic}.dlq.sqlite", "partition": 0,
            "offset": int(fed.sink_letter.rsplit(":", 1)[1]), "time": pytest.approx(NOW - 10, abs=1),
            "stage": "sink:sqlite", "sink": "sqlite", "reason": "constraint_violation",
            "detail": "the table refused the row", "source": "rnd", "ingest_id": "ing-accepted",
            "event_id": "rnd:evt-1", "request_id": "ing-accepted", "edited": False,
        }
    ]  # fmt: skip
    assert detail["deliveries"] == REPORTS
    assert detail["trace"] == {"traceparent": TRACEPARENT, "tracestate": None}

    async with (
        aiohttp.ClientSession(headers=authorized()) as session,
        session.get(f"{fed.base}/api/v1/requests/ing-accepted/body") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"] == 'attachment; filename="ing-accepted.body"'
        assert await response.read() == b'{"event": "evt-1", "a": [1]}'
    assert await get_json(fed.base, "/api/v1/requests/nope", expect=404) == {
        "error": "not_found",
        "detail": "the index has no request with this id",
    }


async def test_a_refused_request_is_explained_with_its_kept_prefix(fed: Fed) -> None:
    detail = await get_json(fed.base, "/api/v1/requests/rej-1")

    assert detail["body"] == {
        "kind": "text",
        "text": '{"event": "evt-2", ',
        "size": 40,
        "content_type": "application/json",
        "file_type": None,
        "truncated": True,
        "source": "refused_prefix",
    }
    assert detail["explanation"] == {
        "title": "Signature does not match",
        "text": "The signature does not match the body under any of the source's secrets."
        " The gateway said: officernd-signature does not match the request.",
        "hints": [
            "2 secret slots were tried for source 'rnd' (newest first).",
            "Compare the secret at the provider with the source's secrets (to rotate, add the new one first).",
            "Anything that changes the body on the way (a proxy re-encoding JSON) breaks the signature.",
        ],
    }
    assert "first-secret" not in orjson.dumps(detail).decode()
    assert (detail["event"], detail["dead_letters"], detail["trace"]) == (None, [], None)


async def test_dead_letters_are_listed_by_stage_and_replayed_after_a_dry_run(fed: Fed) -> None:
    kafka = fed.config.kafka
    normalizer_letter = {
        "id": fed.normalizer_letter, "topic": kafka.dlq_topic, "partition": 2,
        "offset": int(fed.normalizer_letter.rsplit(":", 1)[1]), "time": pytest.approx(NOW - 20, abs=1),
        "stage": "normalizer", "sink": None, "reason": "unknown_source", "detail": "no source is named 'gone'",
        "source": "gone", "ingest_id": "ing-dead", "event_id": None, "request_id": "ing-dead", "edited": False,
    }  # fmt: skip
    assert (await get_json(fed.base, "/api/v1/dead-letters", stage="normalizer"))["items"] == [normalizer_letter]
    listed = await get_json(fed.base, "/api/v1/dead-letters")
    assert [item["id"] for item in listed["items"]] == [fed.sink_letter, fed.normalizer_letter]
    assert (await get_json(fed.base, "/api/v1/dead-letters", reason="constraint_violation"))["items"][0]["stage"] == (
        "sink:sqlite"
    )

    async def replay(document: dict[str, Any], status: int = 200) -> Any:
        async with (
            aiohttp.ClientSession(headers=authorized()) as session,
            session.post(f"{fed.base}/api/v1/replays", json=document) as response,
        ):
            assert response.status == status, await response.text()
            return await response.json()

    chosen = {"filter": {"stage": "normalizer", "reason": "unknown_source"}}
    # A dry run maps the record as the normalizer would: its source is still unknown.
    assert await replay({**chosen, "dry_run": True}) == {
        "dry_run": True, "selected": 1, "replayed": 1, "still_failing": 1, "by_reason": {"unknown_source": 1}
    }  # fmt: skip
    assert await replay({"dead_letters": [fed.normalizer_letter]}) == {
        "dry_run": False, "selected": 1, "replayed": 1, "still_failing": 0, "by_reason": {"unknown_source": 1}
    }  # fmt: skip
    raw = await read_topic(kafka, kafka.raw_topic, 3)
    # The original raw record again, as the normalizer will read it (once from the gateway, once replayed).
    assert [record.value for record in raw].count(b"not json") == 2

    # A corrected body: replayed flagged as edited, the dead letter itself kept.
    edited = await replay({"dead_letters": [fed.normalizer_letter], "body": '{"fixed": true}'})
    assert (edited["selected"], edited["replayed"]) == (1, 1)
    raw = await read_topic(kafka, kafka.raw_topic, 4)
    (corrected,) = [record for record in raw if record.value == b'{"fixed": true}']
    assert ("hookbus-edited", b"true") in corrected.headers
    assert (await get_json(fed.base, "/api/v1/dead-letters", stage="normalizer"))["items"] == [normalizer_letter]

    # A sink's dead letter is written into that sink again.
    sink_chosen = {"filter": {"stage": "sink:sqlite"}}
    assert await replay({**sink_chosen, "dry_run": True}) == {
        "dry_run": True, "selected": 1, "replayed": 1, "still_failing": 0, "by_reason": {"constraint_violation": 1}
    }  # fmt: skip
    assert not (fed.config_dir / "events.db").exists()
    assert (await replay(sink_chosen))["replayed"] == 1
    with contextlib.closing(sqlite3.connect(fed.config_dir / "events.db")) as database:
        assert database.execute("SELECT id, subject FROM hookbus_events").fetchall() == [("rnd:evt-1", "member1")]

    refused = await replay({"dead_letters": ["nope:0:1"]}, status=400)
    assert refused == {"error": "bad_request", "detail": "the index has no dead letter nope:0:1"}
    both = await replay({"dead_letters": [fed.normalizer_letter], "filter": {}}, status=400)
    assert both["detail"] == "give either dead_letters (ids) or filter"


async def test_hookbus_requests_prints_the_trail_the_api_gives(fed: Fed) -> None:
    printed = io.StringIO()
    assert await asyncio.to_thread(print_trail, fed.config, "ing-accepted", printed) == 0
    lines = printed.getvalue().splitlines()
    assert lines[0].endswith(" 200 accept POST rnd id=ing-accepted")
    assert lines[1:] == [
        f"verdict   Accepted: The request was verified and stored in {fed.config.kafka.raw_topic}, partition 0,"
        f" offset {fed.raw_offset}; the sender got 200.",
        "body      json, 28 bytes (raw)",
        "event     rnd:evt-1 officernd.member.updated subject=member1",
        f"dead      {format_time(NOW - 10)} sink:sqlite constraint_violation: the table refused the row"
        f" ({fed.sink_letter})",
        f"delivery  {format_time(NOW - 10)} sqlite dead_lettered attempt=1 constraint_violation",
        f"delivery  {format_time(NOW - 5)} sqlite written attempt=1",
        f"trace     {TRACEPARENT}",
    ]
    assert await asyncio.to_thread(print_trail, fed.config, "nope", io.StringIO()) == 3


async def test_stats_and_filters_come_from_the_index_and_the_groups(fed: Fed) -> None:
    # The entries are timed from NOW (this module's import), which a long suite leaves minutes
    # behind: the window reaches back to them, however late the test runs.
    minutes = 5 + math.ceil((time.time() - NOW) / 60)
    stats = await get_json(fed.base, "/api/v1/stats", minutes=minutes)
    per_minute: dict[tuple[str, str], int] = {}
    for row in stats["requests_per_minute"]:
        assert row["minute"] % 60 == 0
        per_minute[row["source"], row["verdict"]] = per_minute.get((row["source"], row["verdict"]), 0) + row["count"]
    assert per_minute == {("rnd", "accept"): 1, ("rnd", "reject"): 1, ("gone", "accept"): 1}
    group = fed.config.kafka.client_id
    # No stage has committed anything: each is behind by every record of its topic.
    assert stats["lag"] == [
        {"stage": "normalizer", "group": f"{group}-normalizer", "lag": 2},
        {"stage": "sink:sqlite", "group": f"{group}-sqlite", "lag": 1},
    ]
    assert await get_json(fed.base, "/api/v1/filters") == {
        "sources": ["gone", "rnd"],
        "providers": ["officernd"],
        "verdicts": ["accept", "reject"],
        "reasons": ["bad_signature"],
        "types": ["officernd.member.updated"],
    }


async def test_the_token_is_required_except_to_sign_in_and_for_probes(fed: Fed) -> None:
    # A jar that keeps cookies of an IP address, as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{fed.base}/api/v1/requests") as response:
            assert response.status == 401
            assert await response.json() == {
                "error": "unauthorized",
                "detail": "send Authorization: Bearer <token>, or sign in at /login",
            }
        async with session.get(f"{fed.base}/api/v1/filters", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
        async with session.get(f"{fed.base}/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "/login")
        async with session.get(f"{fed.base}/static/index.html", allow_redirects=False) as response:
            assert response.status == 302
        async with session.get(f"{fed.base}/healthz") as response:
            assert await response.json() == {"status": "alive"}
        async with session.get(f"{fed.base}/readyz") as response:
            assert await response.json() == {"ready": True, "reasons": []}
        async with session.get(f"{fed.base}/login") as response:
            assert 'data-testid="login-token"' in await response.text()
        async with session.post(f"{fed.base}/login", data={"token": "wrong"}, allow_redirects=False) as response:
            assert response.status == 401
        assert not session.cookie_jar.filter_cookies(URL(fed.base))
        async with session.post(f"{fed.base}/login", data={"token": TOKEN}, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/")
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert TOKEN not in cookie
        async with session.get(f"{fed.base}/api/v1/filters") as response:
            assert response.status == 200
        async with session.get(f"{fed.base}/") as response:
            assert response.status == 200


async def test_the_ops_port_serves_metrics_that_parse_and_count_what_was_indexed(fed: Fed) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{fed.config.ops.port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for kind in ("requests", "events", "normalizer_dlq", "sink_dlq", "deliveries"):
        assert samples[("hookbus_console_indexed_records_total", (("kind", kind),))] >= 1
    answered = ("hookbus_console_api_requests_total", (("route", "/api/v1/requests"), ("status", "200")))
    assert samples[answered] >= 1


async def test_a_restart_resumes_from_the_offsets_stored_with_the_rows(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    config = console_config(kafka_config, tmp_path)
    await feed_topics(config)

    def indexed_requests() -> float:
        return REGISTRY.get_sample_value("hookbus_console_indexed_records_total", {"kind": "requests"}) or 0.0

    async with running_console(config) as base:
        await indexed(base, 3, 2)
    before = indexed_requests()
    late = entry("late-1", NOW - 5, verdict="reject", reason="unknown_source", status=404, source="nosuch")
    await produce(kafka_config, kafka_config.requests_topic, [(b"nosuch", late.to_json(), [])])
    async with running_console(config) as base:
        await indexed(base, 4, 2)
        listed = await get_json(base, "/api/v1/requests")
    assert [item["id"] for item in listed["items"]] == ["late-1", "ing-dead", "rej-1", "ing-accepted"]
    # Only the record published while it was stopped was read again.
    assert indexed_requests() - before == 1


async def test_consoles_sharing_a_postgresql_index_feed_it_one_at_a_time(
    kafka_config: KafkaConfig, tmp_path: Path, pg_dsn: str
) -> None:
    async with temporary_database(pg_dsn, prefix="hookbus_console") as dsn:
        first = console_config(kafka_config, tmp_path, {"index_dsn": dsn})
        second = dataclasses.replace(first, console={**first.console, "port": free_port()})
        second = dataclasses.replace(second, ops=dataclasses.replace(second.ops, port=free_port()))
        await feed_topics(first)

        def indexed_requests() -> float:
            return REGISTRY.get_sample_value("hookbus_console_indexed_records_total", {"kind": "requests"}) or 0.0

        before = indexed_requests()
        async with contextlib.AsyncExitStack() as first_running:
            feeding = await first_running.enter_async_context(running_console(first))
            await indexed(feeding, 3, 2)
            async with running_console(second) as standing_by:
                # The second serves what the first indexed, and reads nothing itself.
                listed = await get_json(standing_by, "/api/v1/requests")
                assert [item["id"] for item in listed["items"]] == ["ing-dead", "rej-1", "ing-accepted"]
                assert indexed_requests() - before == 3
                await first_running.aclose()
                late = entry("late-2", NOW - 3, verdict="reject", reason="unknown_source", status=404)
                await produce(kafka_config, kafka_config.requests_topic, [(b"rnd", late.to_json(), [])])
                # Once the first is gone, the second takes over where the first's last transaction ended.
                await indexed(standing_by, 4, 2)
        assert indexed_requests() - before == 4


@contextlib.asynccontextmanager
async def console_without_kafka(
    config: HookbusConfig, folder: Path, sign_ins: FailedSignIns | None = None
) -> AsyncIterator[web.Application]:
    """The console's app on an empty index, its Kafka clients never started: for what needs no record."""
    index = await Index.open(lambda: IndexDatabase.sqlite(str(folder / "index.sqlite3")))
    try:
        settings, fetcher, lag, feeder = (
            console_settings(config),
            RecordFetcher(config),
            LagProbe(config),
            Feeder(config, index),
        )
        limited = FailedSignIns() if sign_ins is None else sign_ins
        yield console_app(Console(config, settings, index, fetcher, lag, feeder, limited))
    finally:
        await index.close()


async def test_the_openapi_document_names_every_route_and_only_those(tmp_path: Path) -> None:
    async with console_without_kafka(console_config(KafkaConfig(), tmp_path), tmp_path) as app:
        served = set()
        for resource in app.router.resources():
            # The static files are one route with a tail.
            path = "/static/{path}" if isinstance(resource, web.StaticResource) else resource.canonical
            served |= {(route.method, path) for route in resource if route.method != "HEAD"}
    documented = {
        (method.upper(), path) for path, operations in openapi_document()["paths"].items() for method in operations
    }
    assert documented == served
    assert len(served) == 14
    assert openapi_document()["openapi"] == "3.1.0"


@contextlib.asynccontextmanager
async def limited_console(
    folder: Path, limit: SignInLimit, *, behind_proxy: bool
) -> AsyncIterator[tuple[TestServer, ManualClock]]:
    """A console allowing ``limit`` failed sign-ins; ``behind_proxy``: the test client (127.0.0.1)
    is a trusted proxy, so each request's X-Forwarded-For names the client."""
    config = console_config(KafkaConfig(), folder)
    if behind_proxy:
        config = dataclasses.replace(config, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    clock = ManualClock()
    async with console_without_kafka(config, folder, FailedSignIns(limit, clock=clock)) as app:
        server = TestServer(app)
        await server.start_server()
        try:
            yield server, clock
        finally:
            await server.close()


async def test_failed_sign_ins_are_limited_per_address_with_retry_after(tmp_path: Path) -> None:
    limit = SignInLimit(max_failures=3, window_seconds=60.0)
    async with (
        limited_console(tmp_path, limit, behind_proxy=True) as (server, clock),
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):

        async def sign_in(client: str, token: str) -> tuple[int, Mapping[str, str], Any]:
            async with http.post(
                server.make_url("/login"), data={"token": token}, headers={"X-Forwarded-For": client},
                allow_redirects=False,
            ) as response:  # fmt: skip
                body = await response.json() if response.status == 429 else None
                return response.status, response.headers, body

        async def api(client: str, token: str) -> tuple[int, Mapping[str, str], Any]:
            headers = {"X-Forwarded-For": client, "Authorization": f"Bearer {token}"}
            async with http.get(server.make_url("/api/v1/filters"), headers=headers) as response:
                return response.status, response.headers, await response.json()

        attacker, colleague, regular = "203.0.113.7", "198.51.100.9", "192.0.2.44"
        assert (await sign_in(attacker, "guess-1"))[0] == 401
        assert (await api(attacker, "guess-2"))[0] == 401
        clock.now += 10
        assert (await sign_in(attacker, "guess-3"))[0] == 401

        # The limit reached, not even the right token is compared, by either way of giving it.
        status, headers, body = await sign_in(attacker, TOKEN)
        assert (status, headers["Retry-After"]) == (429, "50")
        assert body == {
            "error": "too_many_attempts",
            "detail": "too many failed sign-ins from this address: try again in 50 s",
        }
        assert "Set-Cookie" not in headers
        status, headers, body = await api(attacker, TOKEN)
        assert (status, headers["Retry-After"], body["error"]) == (429, "50", "too_many_attempts")

        # Another address is unaffected, and may fail on its own account.
        assert (await sign_in(colleague, TOKEN))[0] == 303
        assert (await api(colleague, TOKEN))[0] == 200
        assert (await api(colleague, "typo"))[0] == 401

        # Successes count nothing: an address signing in all day keeps its failures to itself.
        for _ in range(20):
            assert (await sign_in(regular, TOKEN))[0] == 303
            assert (await api(regular, TOKEN))[0] == 200
        assert [(await sign_in(regular, f"typo-{n}"))[0] for n in range(3)] == [401, 401, 401]
        assert (await sign_in(regular, TOKEN))[0] == 429

        # The first two failures leave the window 60 s after they were made: two more tries, each counted.
        clock.now += 45
        assert (await api(attacker, TOKEN))[1]["Retry-After"] == "5"
        clock.now += 5
        assert (await api(attacker, TOKEN))[0] == 200
        assert (await sign_in(attacker, TOKEN))[0] == 303
        assert [(await api(attacker, guess))[0] for guess in ("guess-4", "guess-5")] == [401, 401]
        status, headers, _ = await api(attacker, TOKEN)
        assert (status, headers["Retry-After"]) == (429, "10")


async def test_a_forged_forwarded_for_does_not_escape_the_limit(tmp_path: Path) -> None:
    # No trusted proxy: X-Forwarded-For is the sender's own writing, and the socket peer is the client.
    async with (
        limited_console(tmp_path, SignInLimit(max_failures=2), behind_proxy=False) as (server, _),
        aiohttp.ClientSession() as http,
    ):
        statuses = []
        for forged in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            headers = {"X-Forwarded-For": forged, "Authorization": "Bearer guess"}
            async with http.get(server.make_url("/api/v1/requests"), headers=headers) as response:
                statuses.append(response.status)
        assert statuses == [401, 401, 429]


def test_the_failures_kept_are_bounded_and_an_ipv6_host_counts_by_its_64() -> None:
    clock = ManualClock()
    sign_ins = FailedSignIns(SignInLimit(max_failures=2, window_seconds=60.0, max_addresses=100), clock=clock)

    # An attacker with many addresses fills the map no further than its bound...
    for number in range(1000):
        sign_ins.failed(str(ipaddress.IPv4Address("10.0.0.0") + number))
    assert sign_ins.addresses == 100
    # ...forgetting the addresses that failed least recently, and keeping the latest.
    assert sign_ins.retry_after("10.0.3.231") is None
    assert sign_ins.failed("10.0.3.231") == 60
    assert sign_ins.failed("10.0.0.1") is None
    assert sign_ins.addresses == 100

    # Every address of one /64 is one host's; the next /64 is another's.
    assert sign_ins.failed("2001:db8:1:2::1") is None
    assert sign_ins.failed("2001:db8:1:2:ffff::9") == 60
    assert sign_ins.retry_after("2001:db8:1:2::abcd") == 60
    assert sign_ins.retry_after("2001:db8:1:3::1") is None
    # An IPv4-mapped IPv6 peer is its IPv4 address.
    assert sign_ins.retry_after("::ffff:10.0.3.231") == 60

    # Failures older than the window are forgotten, and so are their addresses.
    clock.now += 61
    assert sign_ins.retry_after("10.0.3.231") is None
    assert sign_ins.failed("192.0.2.1") is None
    assert sign_ins.retry_after("2001:db8:1:2::1") is None
