"""``hookbus requests`` reads what a gateway's request log holds, filtered, newest first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import time
from pathlib import Path

import orjson
import yaml

from hookbus.config import KafkaConfig, load_config
from hookbus.requestlog import RawPointer, RequestLogEntry
from ingest.requestlog import RequestLogWriter
from tools.requests import add_arguments, main


def entry(number: int, *, verdict: str, status: int, reason: str | None = None, **more: object) -> RequestLogEntry:
    return RequestLogEntry(
        id=f"entry-{number}",
        # Two minutes ago and later, from when the test runs: the command reads the last ten.
        time=time.time() - 120 + number,
        source="rnd" if number % 2 else "lend",
        known_source=True,
        provider="officernd",
        method="POST",
        client_addr="203.0.113.9",
        verdict=verdict,
        reason=reason,
        detail=None if reason is None else "the signature is not the source's",
        status=status,
        size=12,
        duration_ms=1.5,
        **more,  # type: ignore[arg-type]
    )


def entries() -> list[RequestLogEntry]:
    return [
        entry(1, verdict="accept", status=200, ingest_id="entry-1", raw=RawPointer("t.raw", 0, 7)),
        entry(2, verdict="reject", status=401, reason="bad_signature", body_prefix=b'{"half": '),
        entry(3, verdict="accept", status=200, ingest_id="entry-3", raw=RawPointer("t.raw", spooled=True)),
    ]


async def logged(kafka: KafkaConfig, folder: Path) -> Path:
    """The entries written as a gateway writes them; the configuration file the command reads."""
    document = {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "raw_topic": kafka.raw_topic,
            "topic_partitions": kafka.topic_partitions,
            "development_mode": True,
        }
    }
    path = folder / "hookbus.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    config = load_config(str(path))
    writer = RequestLogWriter(config)
    writer.start()
    for item in entries():
        writer.record(item)
    await writer.stop(timeout=30)
    assert writer.dropped == 0
    return path


async def run(config_file: Path, *argv: str) -> list[str]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser)
    args = parser.parse_args(["--config", str(config_file), "--since", "10m", *argv])
    printed = io.StringIO()

    def command() -> int:
        # The command runs its own event loop, as from the terminal.
        with contextlib.redirect_stdout(printed):
            return main(args)

    assert await asyncio.to_thread(command) == 0
    return printed.getvalue().splitlines()


async def test_entries_are_listed_newest_first_and_filtered(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    config_file = await logged(kafka_config, tmp_path)

    lines = await run(config_file)
    assert [line.split(" id=")[1].split()[0] for line in lines] == ["entry-3", "entry-2", "entry-1"]
    assert lines[0].endswith("raw=spool")
    assert lines[2].endswith("raw=t.raw/0@7")
    assert " 401 reject POST lend reason=bad_signature from=203.0.113.9 size=12 " in lines[1]

    assert len(await run(config_file, "--verdict", "accept")) == 2
    assert [line.split(" id=")[1] for line in await run(config_file, "--reason", "bad_signature")] == ["entry-2"]
    assert len(await run(config_file, "--source", "rnd", "--status", "200")) == 2
    limited = await run(config_file, "--limit", "1")
    assert limited[1] == "... 2 older entries not shown (--limit)"


async def test_one_entry_in_full_shows_its_refused_body(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    config_file = await logged(kafka_config, tmp_path)

    document = orjson.loads("\n".join(await run(config_file, "--id", "entry-2")))
    assert document["detail"] == "the signature is not the source's"
    assert document["body_prefix_text"] == '{"half": '
    assert [orjson.loads(line)["id"] for line in await run(config_file, "--json", "--verdict", "reject")] == ["entry-2"]


async def test_a_gateway_that_never_ran_has_an_empty_log(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    path = tmp_path / "hookbus.yaml"
    path.write_text(
        yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_config.bootstrap_servers, "raw_topic": "never.raw"}}),
        encoding="utf-8",
    )
    assert await run(path) == []
