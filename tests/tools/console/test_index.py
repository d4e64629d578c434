"""The console's SQLite index on its own: retention, and the delivery state of a request."""

from __future__ import annotations

import time
from pathlib import Path

from hookbus.requestlog import RequestLogEntry
from tools.console.index import IndexDatabase, RequestQuery, delivery_state
from tools.console.records import DeadLetterRow, DeliveryRow, EventRow, RecordAt, RequestRow
from tools.console.replaying import Letter, _runs


def logged(entry_id: str, moment: float) -> RequestRow:
    return RequestRow(
        RequestLogEntry(
            id=entry_id, time=moment, source="rnd", known_source=True, provider="officernd", method="POST",
            client_addr=None, verdict="accept", reason=None, detail=None, status=200, size=2, duration_ms=1.0,
            ingest_id=entry_id,
        )
    )  # fmt: skip


def test_rows_older_than_the_retention_are_pruned_and_offsets_kept(tmp_path: Path) -> None:
    database = IndexDatabase(str(tmp_path / "index.sqlite3"))
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
    database.close()


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
