"""The console's index on its own, in each backend (SQLite and PostgreSQL): its queries,
retention, the writer's lease, and the delivery state of a request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookbus.requestlog import RequestLogEntry
from tests.support import temporary_database
from tools.console.index import (
    DeadLetterQuery,
    IndexDatabase,
    IndexUnavailableError,
    RequestQuery,
    delivery_state,
)
from tools.console.records import DeadLetterRow, DeliveryRow, EventRow, RecordAt, RequestRow
from tools.console.replaying import Letter, _runs


def logged(entry_id: str, moment: float, *, source: str = "rnd", verdict: str = "accept") -> RequestRow:
    accepted = verdict == "accept"
    return RequestRow(
        RequestLogEntry(
            id=entry_id, time=moment, source=source, known_source=True, provider="officernd", method="POST",
            client_addr=None, verdict=verdict, reason=None if accepted else "bad_signature", detail=None,
            status=200 if accepted else 401, size=2, duration_ms=1.0, ingest_id=entry_id if accepted else None,
        )
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexDatabase]:
    if request.param == "sqlite":
        opened = IndexDatabase.sqlite(str(tmp_path / "index.sqlite3"))
        yield opened
        opened.close()
        return
    async with temporary_database(request.getfixturevalue("pg_dsn"), prefix="hookbus_console") as dsn:
        opened = IndexDatabase.postgres(dsn)
        yield opened
        opened.close()


@pytest.fixture
async def pg_index_dsn(pg_dsn: str) -> AsyncIterator[str]:
    async with temporary_database(pg_dsn, prefix="hookbus_console") as dsn:
        yield dsn


def test_each_backend_answers_the_same_queries_alike(database: IndexDatabase) -> None:
    minute = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    database.apply(
        [
            logged("a", minute + 1),
            logged("b", minute + 2, source="other"),
            logged("c", minute + 61, verdict="reject"),
            logged("d", minute + 62),
            EventRow(RecordAt("e", 0, 0), minute + 1.5, "rnd:a", "a", "rnd", "member.updated", "member-1"),
            EventRow(RecordAt("e", 1, 0), minute + 62.5, "rnd:d", "d", "rnd", "member.created", "member-2"),
            DeliveryRow(RecordAt("v", 0, 0), {"time": minute + 3, "sink": "pg", "event_id": "rnd:a",
                                              "outcome": "retry"}),
            DeliveryRow(RecordAt("v", 0, 1), {"time": minute + 4, "sink": "pg", "event_id": "rnd:a",
                                              "outcome": "written"}),
            DeadLetterRow(RecordAt("d", 0, 7), minute + 63, "sink:pg", "pg", "constraint_violation", "refused", "rnd",
                          "d", "rnd:d", False),
        ],
        {("r", 0): 4, ("e", 0): 1, ("e", 1): 1, ("v", 0): 2, ("d", 0): 8},
    )  # fmt: skip

    def ids(query: RequestQuery) -> list[str]:
        return [item["id"] for item in database.requests(query).items]

    assert ids(RequestQuery()) == ["d", "c", "b", "a"]
    assert ids(RequestQuery(source="rnd", verdict="accept")) == ["d", "a"]
    assert ids(RequestQuery(status=401)) == ["c"]
    assert ids(RequestQuery(type="member.created")) == ["d"]
    assert ids(RequestQuery(q="member-1")) == ids(RequestQuery(q="rnd:a")) == ids(RequestQuery(q="a")) == ["a"]
    assert ids(RequestQuery(since=minute + 2, until=minute + 62)) == ["c", "b"]
    first = database.requests(RequestQuery(limit=3))
    assert first.next is not None
    assert ids(RequestQuery(limit=3, before=first.next)) == ["a"]
    summaries = {item["id"]: item for item in database.requests(RequestQuery()).items}
    assert summaries["a"]["delivery"] == "written"
    assert (summaries["a"]["event_type"], summaries["a"]["subject"]) == ("member.updated", "member-1")
    assert summaries["d"]["delivery"] == "dead_lettered"
    assert summaries["b"]["delivery"] is None  # accepted, but no event yet
    assert database.requests_per_minute(minute) == [
        {"minute": minute, "source": "other", "verdict": "accept", "count": 1},
        {"minute": minute, "source": "rnd", "verdict": "accept", "count": 1},
        {"minute": minute + 60, "source": "rnd", "verdict": "accept", "count": 1},
        {"minute": minute + 60, "source": "rnd", "verdict": "reject", "count": 1},
    ]
    assert database.filter_values() == {
        "sources": ["other", "rnd"],
        "providers": ["officernd"],
        "verdicts": ["accept", "reject"],
        "reasons": ["bad_signature"],
        "types": ["member.created", "member.updated"],
    }
    letters = database.dead_letters(DeadLetterQuery(stage="sink:pg")).items
    assert [(item["id"], item["event_id"], item["edited"]) for item in letters] == [("d:0:7", "rnd:d", False)]
    assert database.dead_letters(DeadLetterQuery(stage="normalizer")).items == []
    assert database.event_at("rnd:d") == ("e", 1, 0)
    assert [report["outcome"] for report in database.deliveries("rnd:a")] == ["retry", "written"]
    found = database.request("a")
    assert found is not None
    assert found[0].id == "a"
    assert found[1] == summaries["a"]


def test_a_row_read_again_replaces_itself(database: IndexDatabase) -> None:
    event = EventRow(RecordAt("e", 0, 0), 10.0, "rnd:a", "a", "rnd", "member.updated", "member-1")
    database.apply([logged("a", 1.0), event], {("e", 0): 1})
    replayed = EventRow(RecordAt("e", 0, 5), 20.0, "rnd:a", "a", "rnd", "member.updated", "member-1")
    database.apply([logged("a", 1.0), replayed], {("e", 0): 6})
    assert [item["id"] for item in database.requests(RequestQuery()).items] == ["a"]
    assert database.event_at("rnd:a") == ("e", 0, 5)
    assert database.stored_offsets() == {("e", 0): 6}


def test_one_instance_at_a_time_feeds_a_shared_postgresql_index(pg_index_dsn: str) -> None:
    first, second = IndexDatabase.postgres(pg_index_dsn), IndexDatabase.postgres(pg_index_dsn)
    try:
        assert first.take_writer_lease()
        assert first.take_writer_lease()
        assert not second.take_writer_lease()
        first.close()
        # PostgreSQL frees the lock with the session that held it.
        assert second.take_writer_lease()
    finally:
        first.close()
        second.close()


def test_an_unreachable_postgresql_index_is_a_retriable_console_error() -> None:
    with pytest.raises(IndexUnavailableError) as raised:
        IndexDatabase.postgres("postgresql://hookbus@127.0.0.1:1/hookbus")
    assert raised.value.reason == "index_unavailable"
    assert raised.value.retriable


def test_rows_older_than_the_retention_are_pruned_and_offsets_kept(database: IndexDatabase) -> None:
    now = time.time()
    eight_days_ago = now - 8 * 86_400
    database.apply(
        [
            logged("old", eight_days_ago),
            logged("new", now),
            EventRow(RecordAt("e", 0, 0), eight_days_ago, "rnd:old", "old", "rnd", "t", None),
            EventRow(RecordAt("e", 0, 1), now, "rnd:new", "new", "rnd", "t", None),
            DeadLetterRow(RecordAt("d", 0, 0), eight_days_ago, "normalizer", None, "r", "", "rnd", "old", None, False),
            DeliveryRow(
                RecordAt("v", 0, 0), {"time": eight_days_ago, "sink": "s", "event_id": "rnd:old", "outcome": "written"}
            ),
            DeliveryRow(RecordAt("v", 0, 1), {"time": now, "sink": "s", "event_id": "rnd:new", "outcome": "written"}),
        ],
        {("r", 0): 2, ("e", 0): 2, ("d", 0): 1},
    )

    assert database.prune(now - 7 * 86_400) == 4

    assert [item["id"] for item in database.requests(RequestQuery()).items] == ["new"]
    assert database.event_at("rnd:old") is None
    assert database.event_at("rnd:new") == ("e", 0, 1)
    assert database.dead_letters_of("old", None) == []
    assert database.deliveries("rnd:old") == []
    assert [report["event_id"] for report in database.deliveries("rnd:new")] == ["rnd:new"]
    # Where reading resumes is not data: it stays.
    assert database.stored_offsets() == {("r", 0): 2, ("e", 0): 2, ("d", 0): 1}


def test_the_delivery_state_is_the_worst_latest_outcome_of_each_sink() -> None:
    written = {"sink": "pg", "outcome": "written"}
    retry = {"sink": "http", "outcome": "retry"}
    assert delivery_state("reject", None, False, [], set()) is None
    assert delivery_state("accept", None, False, [], set()) is None
    assert delivery_state("accept", None, True, [], set()) == "dead_lettered"
    assert delivery_state("accept", "e", False, [], set()) == "pending"
    assert delivery_state("accept", "e", False, [written], set()) == "written"
    assert delivery_state("accept", "e", False, [written, retry], set()) == "retrying"
    assert delivery_state("accept", "e", False, [retry, {"sink": "http", "outcome": "written"}], set()) == "written"
    assert delivery_state("accept", "e", False, [written], {"sqlite"}) == "dead_lettered"


def test_dead_letters_are_replayed_in_runs_of_consecutive_offsets_per_partition() -> None:
    letters = [Letter(0, 7, None), Letter(0, 5, None), Letter(0, 6, None), Letter(1, 8, None), Letter(0, 9, None)]
    letters += [Letter(0, 8, "pg"), Letter(0, 5, None)]
    assert _runs(letters) == [
        (Letter(0, 5, None), 7),
        (Letter(0, 9, None), 9),
        (Letter(1, 8, None), 8),
        (Letter(0, 8, "pg"), 8),
    ]
