"""``hookbus replay`` against a real broker: dead letters back through the normalizer, filtered, idempotent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import structlog
import yaml

from hookbus.config import HookbusConfig, KafkaConfig
from hookbus.kafka import ensure_topics, hookbus_topics
from hookbus.stage.deadletter import DLQ_HEADER_PREFIX
from normalizer.errors import ReplayError
from sinks.postgres import SINK as POSTGRES
from tests.normalizer.test_service import (
    Record,
    deeply_nested_record,
    encoding_fails_for,
    member_update,
    pipeline_config,
    produce,
    raw_record,
    read_events_until,
    read_topic,
    running_normalizer,
    topic_size,
    with_generic_source,
    write_config_file,
)
from tests.sinks.helpers import config_with, header, publish, running_sink
from tests.sinks.helpers import context as sink_context
from tests.sinks.helpers import event as sink_event
from tests.sinks.helpers import read_topic as read_sink_topic
from tools.replay import (
    Edit,
    Progress,
    ReplayInput,
    ReplayOptions,
    ReplayReport,
    add_arguments,
    main,
    options_from_args,
    parse_moment,
    replay,
)

UNKNOWN_SOURCE_IDS = {"acme:evt-10-1", "acme:evt-11-1"}


async def dead_letters_of_a_missing_source(kafka: KafkaConfig) -> list[Any]:
    """Run the normalizer without the ``acme`` source over two acme events, one unparseable
    rnd body and one good rnd event: three dead letters. Returns the raw records, in order."""
    records = [
        raw_record("acme", member_update(10, 1)),
        raw_record("rnd", member_update(1, 1)[:-1] + b",}"),
        raw_record("acme", member_update(11, 1)),
        raw_record("rnd", member_update(1, 2)),
    ]
    # One partition for them all, as if the two sources hashed alike: offsets are predictable.
    records = [(b"same-partition", value, headers) for _, value, headers in records]
    config = pipeline_config(kafka, "rnd")
    await ensure_topics(kafka, hookbus_topics(config))
    await produce(kafka, kafka.raw_topic, records)
    async with running_normalizer(config):
        await read_topic(kafka, kafka.dlq_topic, 3)
        await read_topic(kafka, kafka.events_topic, 1)
    return records


def fixed_config(kafka: KafkaConfig) -> HookbusConfig:
    """The configuration after the fix: the ``acme`` source is back."""
    return pipeline_config(kafka, "rnd", "acme")


async def test_a_dry_run_counts_what_would_be_replayed_and_publishes_nothing(kafka_config: KafkaConfig) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    sizes = [await topic_size(kafka_config, topic) for topic in (kafka_config.raw_topic, kafka_config.events_topic)]
    out = io.StringIO()

    report = await replay(fixed_config(kafka_config), ReplayOptions(dry_run=True, verbose=True), out=out)

    assert (report.read, report.selected, report.replayed) == (3, 3, 3)
    assert report.by_reason == Counter({"unknown_source": 2, "unparseable_body": 1})
    assert report.by_source == Counter({"acme": 2, "rnd": 1})
    assert [await topic_size(kafka_config, topic) for topic in (kafka_config.raw_topic, kafka_config.events_topic)] == (
        sizes
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert all(f"{kafka_config.dlq_topic}/" in line and "-> raw record to" in line for line in lines)
    # Where and what, never the body.
    assert not any("name 1" in line or "evt-10-1" in line for line in lines)
    summary = report.summary(ReplayOptions(dry_run=True), kafka_config.dlq_topic, kafka_config.raw_topic)
    assert summary[0].endswith("3 read, 3 selected, 3 would be replayed (dry run: nothing published)")
    assert "  by reason: unknown_source=2, unparseable_body=1" in summary


async def test_a_direct_replay_after_the_fix_publishes_the_events_with_stable_ids(kafka_config: KafkaConfig) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    options = ReplayOptions(direct=True, reasons=frozenset({"unknown_source"}))

    first = await replay(fixed_config(kafka_config), options)
    second = await replay(fixed_config(kafka_config), options)

    assert (first.selected, first.replayed) == (second.selected, second.replayed) == (2, 2)
    events = await read_events_until(kafka_config, UNKNOWN_SOURCE_IDS | {"rnd:evt-1-2"})
    replayed = [event for event in events if event.id in UNKNOWN_SOURCE_IDS]
    # Replaying twice gives the same events again, with the same ids: the sinks keep one each.
    assert Counter(event.id for event in replayed) == Counter({"acme:evt-10-1": 2, "acme:evt-11-1": 2})
    assert all(event.source == "/webhooks/acme" for event in replayed)


async def test_a_replay_to_the_raw_topic_is_mapped_by_the_running_normalizer(kafka_config: KafkaConfig) -> None:
    originals = await dead_letters_of_a_missing_source(kafka_config)
    raw_before = await topic_size(kafka_config, kafka_config.raw_topic)

    report = await replay(fixed_config(kafka_config), ReplayOptions(sources=frozenset({"acme"})))

    assert (report.selected, report.replayed) == (2, 2)
    # Every record has the same key, so the raw topic's records are one partition's, in order.
    republished = (await read_topic(kafka_config, kafka_config.raw_topic, raw_before + 2))[raw_before:]
    # The original record: its key, its bytes, its headers - without the dead-letter ones.
    assert [(record.key, record.value, list(record.headers)) for record in republished] == [
        originals[0],
        originals[2],
    ]
    assert not any(name.startswith(DLQ_HEADER_PREFIX) for record in republished for name, _ in record.headers)
    async with running_normalizer(fixed_config(kafka_config)):
        events = await read_events_until(kafka_config, UNKNOWN_SOURCE_IDS)
    assert {event.id for event in events} >= UNKNOWN_SOURCE_IDS


async def test_filters_select_by_offset_time_type_and_provider(kafka_config: KafkaConfig) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    config = fixed_config(kafka_config)
    letters = await read_topic(kafka_config, kafka_config.dlq_topic, 3)
    [partition] = {record.partition for record in letters}
    middle = sorted(record.offset for record in letters)[1]

    async def selected(**filters: Any) -> int:
        report = await replay(config, ReplayOptions(dry_run=True, **filters))
        return report.selected

    assert await selected(partitions=frozenset({partition}), from_offset=middle, to_offset=middle) == 1
    assert await selected(partitions=frozenset({partition}), from_offset=middle) == 2
    assert await selected(partitions=frozenset({(partition + 1) % kafka_config.topic_partitions})) == 0
    assert await selected(since=time.time() + 3600) == 0
    assert await selected(until=time.time() - 3600) == 0
    assert await selected(since=time.time() - 3600, until=time.time() + 3600) == 3
    # The type is the one a record maps to now: the unparseable body maps to none.
    assert await selected(types=("officernd.member.*",)) == 2
    assert await selected(types=("october.*",)) == 0
    assert await selected(providers=frozenset({"octamile"})) == 0
    assert await selected(sources=frozenset({"rnd"}), reasons=frozenset({"unparseable_body"})) == 1


async def test_a_direct_replay_of_what_still_fails_publishes_nothing_for_it(kafka_config: KafkaConfig) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    events_before = await topic_size(kafka_config, kafka_config.events_topic)
    out = io.StringIO()

    report = await replay(
        fixed_config(kafka_config), ReplayOptions(direct=True, sources=frozenset({"rnd"}), verbose=True), out=out
    )

    assert (report.selected, report.replayed) == (1, 0)
    assert report.still_failing == Counter({"map/unparseable_body": 1})
    assert "still fails: map unparseable_body" in out.getvalue()
    assert await topic_size(kafka_config, kafka_config.events_topic) == events_before


async def _on_the_raw_topic(config: HookbusConfig, records: list[Record]) -> None:
    await ensure_topics(config.kafka, hookbus_topics(config))
    await produce(config.kafka, config.kafka.raw_topic, records)


async def _raw_topic_with_an_event_that_cannot_be_encoded(
    kafka: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> HookbusConfig:
    """The raw topic holds ``rnd:evt-9-1``, which cannot be encoded, then ``rnd:evt-1-1``."""
    encoding_fails_for(monkeypatch, "rnd:evt-9-1")
    config = pipeline_config(kafka, "rnd")
    await _on_the_raw_topic(config, [raw_record("rnd", member_update(9, 1)), raw_record("rnd", member_update(1, 1))])
    return config


async def test_a_direct_replay_reports_an_event_that_cannot_be_encoded_as_still_failing(
    kafka_config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await _raw_topic_with_an_event_that_cannot_be_encoded(kafka_config, monkeypatch)
    out = io.StringIO()

    report = await replay(config, ReplayOptions(input=ReplayInput.RAW, direct=True, verbose=True), out=out)

    assert (report.selected, report.replayed) == (2, 1)
    assert report.still_failing == Counter({"normalize/internal_error": 1})
    assert "still fails: normalize internal_error (ValueError)" in out.getvalue()
    assert [event.id for event in await read_events_until(kafka_config, {"rnd:evt-1-1"})] == ["rnd:evt-1-1"]


async def test_a_dry_run_from_the_raw_topic_reports_what_the_normalizer_would_dead_letter(
    kafka_config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await _raw_topic_with_an_event_that_cannot_be_encoded(kafka_config, monkeypatch)
    out = io.StringIO()
    options = ReplayOptions(input=ReplayInput.RAW, dry_run=True, verbose=True)

    report = await replay(config, options, out=out)

    assert (report.selected, report.replayed) == (2, 2)
    assert report.would_fail == Counter({"normalize/internal_error": 1})
    [failing] = [line for line in out.getvalue().splitlines() if "would be dead-lettered" in line]
    assert "would be dead-lettered: normalize internal_error (ValueError)" in failing
    summary = report.summary(options, kafka_config.raw_topic, kafka_config.raw_topic)
    assert "  would be dead-lettered: normalize/internal_error=1" in summary


async def test_a_direct_replay_of_a_body_nested_300_levels_maps_it_or_reports_it(kafka_config: KafkaConfig) -> None:
    config = with_generic_source(pipeline_config(kafka_config, "rnd"))
    await _on_the_raw_topic(config, [deeply_nested_record(300), raw_record("rnd", member_update(1, 1))])

    report = await replay(config, ReplayOptions(input=ReplayInput.RAW, direct=True))

    # Whether it maps is the mapping's business: either it maps, or it still fails as the dead
    # letter it would be (counted by stage/reason).
    if report.replayed == 1:
        [(stage_and_reason, count)] = report.still_failing.items()
        assert (stage_and_reason.count("/"), count) == (1, 1)
    else:
        assert (report.replayed, report.still_failing) == (2, Counter())
    assert {event.id for event in await read_events_until(kafka_config, {"rnd:evt-1-1"})} >= {"rnd:evt-1-1"}


async def test_a_partition_the_topic_does_not_have_is_refused(kafka_config: KafkaConfig) -> None:
    # The topics do not exist yet either: replay creates them (empty), then refuses.
    with pytest.raises(ReplayError, match="no partition 7"):
        await replay(fixed_config(kafka_config), ReplayOptions(partitions=frozenset({7})))


async def test_the_command_prints_a_summary(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    config_file = write_config_file(tmp_path, fixed_config(kafka_config))
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser)
    args = parser.parse_args(["--config", str(config_file), "--dry-run", "--reason", "unknown_source"])
    printed = io.StringIO()

    def run_command() -> int:
        # The command runs its own event loop, as from the terminal.
        with contextlib.redirect_stdout(printed):
            return main(args)

    exit_code = await asyncio.to_thread(run_command)

    assert exit_code == 0
    lines = printed.getvalue().splitlines()
    assert lines[0] == (
        f"{kafka_config.dlq_topic} -> {kafka_config.raw_topic}: 3 read, 2 selected, 2 would be replayed"
        " (dry run: nothing published)"
    )
    assert lines[1:] == ["  by reason: unknown_source=2", "  by source: acme=2"]


# --- offline ----------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_command_line_gives_the_options() -> None:
    options = options_from_args(
        _args(
            "--source", "a", "--source", "b", "--type", "officernd.*", "--reason", "unknown_source",
            "--partition", "2", "--from-offset", "5", "--to-offset", "9", "--since", "2024-05-01T10:00:00Z",
            "--direct", "--dry-run", "-v",
        )
    )  # fmt: skip

    assert options == ReplayOptions(
        input=ReplayInput.DLQ,
        sources=frozenset({"a", "b"}),
        types=("officernd.*",),
        reasons=frozenset({"unknown_source"}),
        since=parse_moment("2024-05-01T10:00:00+00:00"),
        partitions=frozenset({2}),
        from_offset=5,
        to_offset=9,
        direct=True,
        dry_run=True,
        verbose=True,
    )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--from-offset", "3"], "need --partition"),
        (["--from", "raw", "--reason", "unknown_source"], "have none"),
        (["--since", "2024-05-02", "--until", "2024-05-01"], "before --until"),
    ],
)
def test_contradictory_options_are_refused(argv: list[str], complaint: str) -> None:
    with pytest.raises(ReplayError, match=complaint):
        options_from_args(_args(*argv))


def test_times_are_rfc3339_or_a_duration_ago() -> None:
    now = 1_714_557_600.0

    assert parse_moment("2024-05-01T10:00:00Z") == now
    assert parse_moment("2024-05-01T12:00:00+02:00") == now
    assert parse_moment("2024-05-01T10:00:00") == now
    assert parse_moment("90m", now=now) == now - 5400
    assert parse_moment("2h", now=now) == now - 7200
    assert parse_moment("1.5d", now=now) == now - 129_600
    with pytest.raises(argparse.ArgumentTypeError):
        parse_moment("last tuesday")


def test_the_progress_bar_is_drawn_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress(4, stream)
        for _ in range(4):
            bar.advance()
        bar.close()

    assert pipe.getvalue() == ""
    assert terminal.getvalue().endswith("\rreplay [" + "#" * Progress.WIDTH + "] 100% 4/4\n")


def test_a_report_without_selections_says_so_in_one_line() -> None:
    summary = ReplayReport(read=5).summary(ReplayOptions(), "t.dlq", "t.raw")

    assert summary == ["t.dlq -> t.raw: 5 read, 0 selected, 0 replayed"]


# --- a sink's dead letters, and corrected dead letters ------------------------------------


def _sink_config(kafka: KafkaConfig, dsn: str) -> HookbusConfig:
    section = {"type": "postgres", "dsn": dsn, "batch_timeout_seconds": 0.2, "retry_initial_seconds": 0.1}
    return dataclasses.replace(config_with({"archive": section}), kafka=kafka)


async def _pg(dsn: str, query: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


async def dead_letters_of_a_sink(kafka: KafkaConfig, dsn: str) -> tuple[HookbusConfig, list[Any]]:
    """Run the PostgreSQL sink ``archive`` over four events while a constraint refuses two of
    them: two rows and two dead letters in ``<events>.dlq.archive``. Then the constraint goes."""
    config = _sink_config(kafka, dsn)
    await _pg(dsn, "SELECT 1")
    sink = POSTGRES.create(POSTGRES.parse("archive", {"dsn": dsn}), sink_context())
    await sink.open()
    await sink.close()
    await _pg(dsn, "ALTER TABLE hookbus_events ADD CONSTRAINT refused CHECK (subject NOT IN ('member/2', 'member/3'))")
    await publish(kafka, [sink_event(number, key="same") for number in range(1, 5)])
    async with running_sink(config, "archive"):
        letters = await read_sink_topic(kafka, f"{kafka.events_topic}.dlq.archive", 2)
    await _pg(dsn, "ALTER TABLE hookbus_events DROP CONSTRAINT refused")
    return config, letters


@pytest.mark.postgres
async def test_a_sinks_dead_letters_are_written_to_that_sink_again_and_nowhere_else(
    kafka_config: KafkaConfig, pg_database: str
) -> None:
    config, letters = await dead_letters_of_a_sink(kafka_config, pg_database)
    dlq = f"{kafka_config.events_topic}.dlq.archive"
    events_before = await topic_size(kafka_config, kafka_config.events_topic)
    out = io.StringIO()

    report = await replay(config, ReplayOptions(sink="archive", verbose=True), out=out)

    assert (report.read, report.selected, report.replayed, report.still_failing) == (2, 2, 2, Counter())
    assert report.by_reason == Counter({"invalid_data": 2})
    rows = await _pg(pg_database, "SELECT id, kafka_partition, kafka_offset FROM hookbus_events ORDER BY id")
    assert [row["id"] for row in rows] == [sink_event(number).id for number in range(1, 5)]
    # The rows of the replayed events carry the position of their record in the events topic.
    originals = {header(letter, "ce_id"): letter for letter in letters}
    for row in rows[1:3]:
        letter = originals[row["id"]]
        assert (row["kafka_partition"], row["kafka_offset"]) == (
            int(header(letter, "hookbus-dlq-partition") or -1),
            int(header(letter, "hookbus-dlq-offset") or -1),
        )
    # Nothing was published: the other sinks see nothing again, and the dead letters stay.
    assert await topic_size(kafka_config, kafka_config.events_topic) == events_before
    assert await topic_size(kafka_config, dlq) == 2
    assert "-> written to sink archive" in out.getvalue()
    # Replaying again writes nothing twice (ids).
    again = await replay(config, ReplayOptions(sink="archive"))
    assert again.replayed == 2
    assert len(await _pg(pg_database, "SELECT id FROM hookbus_events")) == 4


@pytest.mark.postgres
async def test_what_a_sink_still_refuses_is_counted_and_stays_a_dead_letter(
    kafka_config: KafkaConfig, pg_database: str
) -> None:
    config, _letters = await dead_letters_of_a_sink(kafka_config, pg_database)
    await _pg(pg_database, "ALTER TABLE hookbus_events ADD CONSTRAINT refused CHECK (subject <> 'member/3')")

    report = await replay(config, ReplayOptions(sink="archive"))

    assert (report.selected, report.replayed) == (2, 1)
    assert report.still_failing == Counter({"invalid_data": 1})
    assert await topic_size(kafka_config, f"{kafka_config.events_topic}.dlq.archive") == 2


@pytest.mark.postgres
async def test_a_corrected_sink_dead_letter_is_written_flagged_as_edited(
    kafka_config: KafkaConfig, pg_database: str, tmp_path: Path
) -> None:
    config, letters = await dead_letters_of_a_sink(kafka_config, pg_database)
    letter = next(item for item in letters if header(item, "ce_id") == sink_event(2).id)
    body = tmp_path / "fixed.json"
    body.write_bytes(b'{"number": 2, "name": "corrected"}')
    seen: list[Any] = []

    options = ReplayOptions(sink="archive", edit=Edit(letter.partition, letter.offset, body.read_bytes()))
    report = await replay(config, options, observe=seen.append)

    assert (report.selected, report.replayed, report.edited) == (1, 1, 1)
    [row] = await _pg(pg_database, "SELECT data FROM hookbus_events WHERE subject = 'member/2'")
    assert orjson.loads(row["data"]) == {"number": 2, "name": "corrected"}
    assert len(await _pg(pg_database, "SELECT id FROM hookbus_events")) == 3
    # What the sink was told it read: the original headers, flagged, with the original's digest.
    [record] = seen
    assert header(record, "hookbus-edited") == "true"
    assert header(record, "hookbus-original-sha256") == hashlib.sha256(letter.value).hexdigest()
    assert not any(name.startswith(DLQ_HEADER_PREFIX) for name, _ in record.headers)
    # The dead letter itself is left as it was.
    dlq = f"{kafka_config.events_topic}.dlq.archive"
    assert [(item.offset, item.value) for item in await read_topic(kafka_config, dlq, 2)] == [
        (item.offset, item.value) for item in letters
    ]


async def test_a_corrected_normalizer_dead_letter_is_published_flagged_and_the_original_kept(
    kafka_config: KafkaConfig,
) -> None:
    originals = await dead_letters_of_a_missing_source(kafka_config)
    letters = await read_topic(kafka_config, kafka_config.dlq_topic, 3)
    broken = next(letter for letter in letters if letter.value == originals[1][1])
    raw_before = await topic_size(kafka_config, kafka_config.raw_topic)
    corrected = member_update(1, 1)
    config = fixed_config(kafka_config)

    report = await replay(config, ReplayOptions(edit=Edit(broken.partition, broken.offset, corrected)))

    assert (report.selected, report.replayed, report.edited) == (1, 1, 1)
    [published] = (await read_topic(kafka_config, kafka_config.raw_topic, raw_before + 1))[raw_before:]
    assert published.value == corrected
    assert published.key == originals[1][0]
    flags = [
        ("hookbus-edited", b"true"),
        ("hookbus-original-sha256", hashlib.sha256(originals[1][1]).hexdigest().encode()),
    ]
    assert list(published.headers) == [*originals[1][2], *flags]
    assert await topic_size(kafka_config, kafka_config.dlq_topic) == 3
    again = await read_topic(kafka_config, kafka_config.dlq_topic, 3)
    assert [(item.offset, item.value, item.headers) for item in again] == [
        (item.offset, item.value, item.headers) for item in letters
    ]
    # Mapped by the running normalizer, the corrected body is the event the original was meant to be.
    async with running_normalizer(config):
        events = await read_events_until(kafka_config, {"rnd:evt-1-1"})
    assert "rnd:evt-1-1" in {event.id for event in events}


async def test_an_edit_of_an_offset_the_dead_letter_topic_does_not_have_is_refused(kafka_config: KafkaConfig) -> None:
    await dead_letters_of_a_missing_source(kafka_config)
    with pytest.raises(ReplayError, match="no dead letter at"):
        await replay(fixed_config(kafka_config), ReplayOptions(edit=Edit(0, 999, b"{}")))


def test_the_command_line_gives_the_sink_and_the_edit(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"fixed": true}')

    options = options_from_args(_args("--sink", "archive", "--edit", "3:42", "--body", str(body)))

    assert options == ReplayOptions(sink="archive", edit=Edit(3, 42, b'{"fixed": true}'))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--edit", "0:1"], "--edit needs --body"),
        (["--body", "x.json"], "--body needs --edit"),
        (["--sink", "a", "--from", "raw"], "--sink replays that sink's dead letters"),
        (["--sink", "a", "--direct"], "--sink replays that sink's dead letters"),
        (["--sink", "a", "--source", "x"], "--source and --provider"),
        (["--from", "raw", "--edit", "0:1", "--body", "x.json"], "--edit corrects a dead letter"),
        (["--edit", "0:1", "--body", "/nonexistent/body.json"], "cannot read --body"),
    ],
)
def test_contradictory_sink_and_edit_options_are_refused(argv: list[str], complaint: str) -> None:
    with pytest.raises(ReplayError, match=complaint):
        options_from_args(_args(*argv))


@pytest.mark.postgres
async def test_the_command_replays_a_sinks_dead_letters_and_exits_1_for_what_still_fails(
    kafka_config: KafkaConfig, pg_database: str, tmp_path: Path
) -> None:
    config, _letters = await dead_letters_of_a_sink(kafka_config, pg_database)
    await _pg(pg_database, "ALTER TABLE hookbus_events ADD CONSTRAINT refused CHECK (subject <> 'member/3')")
    kafka = {name: getattr(kafka_config, name) for name in ("bootstrap_servers", "client_id", "events_topic")}
    config_file = tmp_path / "hookbus.yaml"
    config_file.write_text(yaml.safe_dump({"kafka": kafka, "sinks": dict(config.sinks)}), encoding="utf-8")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser)
    args = parser.parse_args(["--config", str(config_file), "--sink", "archive"])
    printed = io.StringIO()

    def run_command() -> int:
        # Log lines go to the terminal's stderr from the CLI; here they must not mix with what it prints.
        with structlog.testing.capture_logs(), contextlib.redirect_stdout(printed):
            return main(args)

    exit_code = await asyncio.to_thread(run_command)

    assert exit_code == 1
    lines = printed.getvalue().splitlines()
    assert lines[0] == f"{kafka_config.events_topic}.dlq.archive -> sink archive: 2 read, 2 selected, 1 replayed"
    assert "  still failing: invalid_data=1" in lines
    assert len(await _pg(pg_database, "SELECT id FROM hookbus_events")) == 3
