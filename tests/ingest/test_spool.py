"""The spool on its own: durable appends, recovery, torn tails, order, bounds, group commit, slots."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from ingest.errors import SpoolFullError
from ingest.spool import (
    FRAME,
    SEGMENT_SUFFIX,
    SOURCES_DIRECTORY,
    Spool,
    SpoolRecord,
    claim,
    claim_sources,
    frame,
    set_aside,
)

MAX_BYTES = 1024 * 1024


def record(number: int, body: bytes = b"") -> SpoolRecord:
    return SpoolRecord(
        key=b"officernd",
        headers=(("hookbus-ingest-id", f"id-{number:04d}".encode()), ("hookbus-source", b"officernd")),
        value=body or f'{{"n":{number}}}'.encode(),
    )


def segments(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.name.endswith(SEGMENT_SUFFIX))


async def read_all(spool: Spool) -> list[SpoolRecord]:
    spooled = await spool.read(max_records=10_000)
    return [item.record for item in spooled]


def test_a_record_round_trips_through_its_encoding() -> None:
    original = SpoolRecord(key=b"k", headers=(("hookbus-h-x", b"\x00\xff"), ("empty", b"")), value=b"\x00body")
    assert SpoolRecord.decode(original.encode()) == original
    assert original.ingest_id == ""
    assert record(7).ingest_id == "id-0007"


async def test_appended_records_read_back_in_order_and_survive_reopening(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    for number in range(5):
        await spool.append(record(number))
    assert spool.depth().records == 5
    assert await read_all(spool) == [record(number) for number in range(5)]
    await spool.close()

    reopened = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    assert reopened.depth().records == 5
    assert await read_all(reopened) == [record(number) for number in range(5)]
    await reopened.close()


async def test_acknowledged_records_are_gone_and_a_drained_segment_is_deleted(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    for number in range(4):
        await spool.append(record(number))
    first_two = (await spool.read(max_records=2))[-1]
    await spool.acknowledge(first_two)
    assert spool.depth().records == 2
    assert await read_all(spool) == [record(2), record(3)]
    assert len(segments(tmp_path / "slot")) == 1

    rest = (await spool.read(max_records=10))[-1]
    await spool.acknowledge(rest)
    assert spool.empty
    assert segments(tmp_path / "slot") == []
    # Writing again after the last segment was deleted starts a new one.
    await spool.append(record(9))
    assert await read_all(spool) == [record(9)]
    await spool.close()


async def test_a_drainer_stopped_between_acknowledging_and_deleting_leaves_no_delivered_segment(
    tmp_path: Path,
) -> None:
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    for number in range(3):
        await spool.append(record(number))
    last = (await spool.read(max_records=10))[-1]
    # The drainer is cancelled while it waits to delete (another write holds the spool's I/O).
    async with spool._io:
        acknowledging = asyncio.create_task(spool.acknowledge(last))
        await asyncio.sleep(0)
        acknowledging.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await acknowledging
    assert spool.depth().records == 0
    assert len(segments(tmp_path / "slot")) == 1

    await spool.close()

    assert segments(tmp_path / "slot") == []
    reopened = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    assert reopened.depth().records == 0
    await reopened.close()


@pytest.mark.parametrize("cut", [1, FRAME.size - 1, FRAME.size + 3])
async def test_a_torn_last_record_is_truncated_and_the_complete_ones_kept(tmp_path: Path, cut: int) -> None:
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    for number in range(3):
        await spool.append(record(number))
    await spool.close()
    [segment] = segments(tmp_path / "slot")
    intact = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(frame(record(3))[:cut])

    recovered = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    assert segment.stat().st_size == intact
    assert await read_all(recovered) == [record(number) for number in range(3)]
    await recovered.close()


async def test_a_last_record_with_a_bad_crc_is_truncated(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    await spool.append(record(0))
    await spool.append(record(1))
    await spool.close()
    [segment] = segments(tmp_path / "slot")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))

    recovered = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    assert await read_all(recovered) == [record(0)]
    await recovered.close()


async def test_a_segment_holding_only_a_torn_record_is_removed(tmp_path: Path) -> None:
    slot = tmp_path / "slot"
    slot.mkdir()
    (slot / f"{0:016d}{SEGMENT_SUFFIX}").write_bytes(frame(record(0))[:5])
    recovered = Spool.open(slot, max_bytes=MAX_BYTES)
    assert recovered.empty
    assert segments(slot) == []
    await recovered.close()


async def test_a_full_spool_refuses_and_takes_again_once_drained(tmp_path: Path) -> None:
    one = len(frame(record(0)))
    spool = Spool.open(tmp_path / "slot", max_bytes=3 * one)
    for number in range(3):
        await spool.append(record(number))
    with pytest.raises(SpoolFullError) as refused:
        await spool.append(record(3))
    assert refused.value.retriable
    assert refused.value.reason == "spool_full"
    await spool.acknowledge((await spool.read(max_records=3))[-1])
    await spool.append(record(3))
    assert await read_all(spool) == [record(3)]
    await spool.close()


async def test_concurrent_appends_share_fsyncs_and_keep_every_record_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(descriptor: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    spool = Spool.open(tmp_path / "slot", max_bytes=MAX_BYTES)
    count = 200
    await asyncio.gather(*(spool.append(record(number, bytes([number % 251]) * 300)) for number in range(count)))
    # The first write also fsyncs the directory of its new segment.
    assert fsyncs < count
    read = await read_all(spool)
    # Appends that started together are written in the order they were made.
    assert read == [record(number, bytes([number % 251]) * 300) for number in range(count)]
    await spool.close()


async def test_a_slot_is_held_by_one_process_and_others_get_the_next_one(tmp_path: Path) -> None:
    root = tmp_path / "raw-topic"
    first = claim(root, max_bytes=MAX_BYTES)
    second = claim(root, max_bytes=MAX_BYTES)
    assert first.own.directory != second.own.directory
    await first.own.append(record(1))
    await second.own.close(remove_if_empty=True)
    await first.own.close()

    # The records of a slot nobody holds are adopted, to be drained, by the next process.
    third = claim(root, max_bytes=MAX_BYTES)
    fourth = claim(root, max_bytes=MAX_BYTES)
    holding = [spool for spool in (third.own, *third.adopted, fourth.own, *fourth.adopted) if not spool.empty]
    assert [await read_all(spool) for spool in holding] == [[record(1)]]
    for spool in (third.own, *third.adopted, fourth.own, *fourth.adopted):
        await spool.close()


async def test_adopted_records_count_against_the_budget(tmp_path: Path) -> None:
    root = tmp_path / "raw-topic"
    one = len(frame(record(0)))
    for index in range(2):
        left_behind = Spool.open(root / f"worker-{index}", max_bytes=MAX_BYTES)
        await left_behind.append(record(index))
        await left_behind.close()

    claimed = claim(root, max_bytes=3 * one)
    assert claimed.own.directory.name == "worker-0"
    assert [spool.directory.name for spool in claimed.adopted] == ["worker-1"]
    await claimed.own.append(record(2))
    with pytest.raises(SpoolFullError):
        await claimed.own.append(record(3))
    for spool in (claimed.own, *claimed.adopted):
        await spool.close()


def test_a_record_set_aside_is_kept_whole_in_a_file_of_its_own(tmp_path: Path) -> None:
    kept = [set_aside(tmp_path / "undeliverable", record(number, b"x" * 10)) for number in (1, 1, 2)]

    assert len(set(kept)) == 3, "a second record with the same ingest id must not overwrite the first"
    for path, number in zip(kept, (1, 1, 2), strict=True):
        assert path.name.startswith(f"id-{number:04d}-")
        data = path.read_bytes()
        length, _crc = FRAME.unpack(data[: FRAME.size])
        assert data == frame(record(number, b"x" * 10))
        assert SpoolRecord.decode(data[FRAME.size : FRAME.size + length]) == record(number, b"x" * 10)


async def test_each_source_gets_its_own_spool_with_an_equal_share_and_recovers_it_after_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "raw-topic"
    one = len(frame(record(0)))
    claimed = claim_sources(root, ["b", "a"], max_bytes=4 * one)
    assert {name: claimed.by_source[name].own.directory for name in "ab"} == {
        name: root / SOURCES_DIRECTORY / name / "worker-0" for name in "ab"
    }
    await claimed.by_source["a"].own.append(record(1))
    await claimed.by_source["a"].own.append(record(2))
    with pytest.raises(SpoolFullError):
        await claimed.by_source["a"].own.append(record(3))
    # Source a's full share leaves source b its own.
    await claimed.by_source["b"].own.append(record(4))
    # A crash: the locks go, nothing is closed.
    for source in claimed.by_source.values():
        source.own.release()

    recovered = claim_sources(root, ["a", "b"], max_bytes=4 * one)
    assert await read_all(recovered.by_source["a"].own) == [record(1), record(2)]
    assert await read_all(recovered.by_source["b"].own) == [record(4)]
    assert recovered.shared == ()
    for source in recovered.by_source.values():
        await source.own.close()


async def test_slots_of_the_single_spool_of_an_earlier_version_are_claimed_to_be_drained(tmp_path: Path) -> None:
    root = tmp_path / "raw-topic"
    left_behind = Spool.open(root / "worker-0", max_bytes=MAX_BYTES)
    await left_behind.append(record(1))
    await left_behind.close()
    Spool.open(root / "worker-1", max_bytes=MAX_BYTES).release()

    claimed = claim_sources(root, ["a"], max_bytes=MAX_BYTES)
    assert [spool.directory for spool in claimed.shared] == [root / "worker-0"]
    assert await read_all(claimed.shared[0]) == [record(1)]
    for spool in (*claimed.shared, claimed.by_source["a"].own):
        await spool.close()
