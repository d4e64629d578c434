"""``hookbus sink <name>`` as a process: a config error exits 2, SIGTERM exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
import yaml

from hookbus.cli import EXIT_CONFIG_ERROR
from hookbus.config import KafkaConfig


async def test_a_bad_section_is_a_config_error(tmp_path: Path) -> None:
    # A process of its own: the command configures logging for the whole interpreter.
    config = tmp_path / "hookbus.yaml"
    config.write_text(yaml.safe_dump({"sinks": {"archive": {"type": "sqlite", "tabel": "x"}}}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", "sink", "--config", str(config), "archive", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await process.communicate()
    assert process.returncode == EXIT_CONFIG_ERROR
    assert b"sinks.archive.tabel" in errors


@pytest.mark.kafka
async def test_sigterm_stops_the_process_with_exit_code_0(tmp_path: Path, kafka_config: KafkaConfig) -> None:
    config = tmp_path / "hookbus.yaml"
    kafka = {
        "bootstrap_servers": kafka_config.bootstrap_servers,
        "events_topic": kafka_config.events_topic,
        "topic_partitions": 1,
        "development_mode": True,
    }
    sinks = {"local": {"type": "sqlite", "path": str(tmp_path / "hookbus.db")}}
    config.write_text(yaml.safe_dump({"kafka": kafka, "sinks": sinks}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", "sink", "--config", str(config), "local", stderr=asyncio.subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        lines: list[bytes] = []
        async with asyncio.timeout(60):
            while b'"sink_started"' not in (line := await process.stderr.readline()):
                assert line, b"".join(lines).decode(errors="replace")
                lines.append(line)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.kafka
async def test_unsafe_topics_outside_development_mode_exit_1_with_each_problem(
    tmp_path: Path, kafka_config: KafkaConfig
) -> None:
    config = tmp_path / "hookbus.yaml"
    kafka = {
        "bootstrap_servers": kafka_config.bootstrap_servers,
        "events_topic": kafka_config.events_topic,
        "topic_partitions": 1,
    }
    sinks = {"local": {"type": "sqlite", "path": str(tmp_path / "hookbus.db")}}
    config.write_text(yaml.safe_dump({"kafka": kafka, "sinks": sinks}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", "sink", "--config", str(config), "local", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await process.communicate()

    assert process.returncode == 1
    logs = [json.loads(line) for line in errors.splitlines() if line.startswith(b"{")]
    [refusal] = [entry for entry in logs if entry["event"] == "unsafe_topics"]
    assert refusal["reason"] == "unsafe_topics"
    assert any(
        problem.startswith(f"{kafka_config.events_topic}: replication_unsafe") for problem in refusal["problems"]
    )
