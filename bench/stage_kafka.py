"""Stage 2: the broker's own ceiling, measured with Kafka's ProducerPerformance tool."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

from bench.common import BenchError, Latency, Measurement, Settings, StageResult
from hookbus.config import KafkaConfig
from hookbus.kafka import TopicSpec, ensure_topics
from tools.localkafka import MAX_MESSAGE_BYTES, LocalKafka

CODEC = KafkaConfig().compression_type
# Same producer settings as hookbus.kafka.make_producer, with hookbus's default codec.
PRODUCER_PROPS = (
    "acks=all",
    "enable.idempotence=true",
    f"compression.type={CODEC}",
    "linger.ms=5",
    "batch.size=262144",
)
# record size -> records in a smoke, quick and full run
SIZES = {
    1024: (1_000, 100_000, 1_000_000),
    64 * 1024: (100, 4_000, 40_000),
    5 * 1024 * 1024: (4, 40, 300),
}
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec .*?(?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, \d+ ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th"
)


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("kafka")
    topic = "bench-kafka.ceiling"
    kafka = KafkaConfig(bootstrap_servers=bootstrap)
    spec = TopicSpec(topic, 3, 1, {"max.message.bytes": str(MAX_MESSAGE_BYTES)})
    asyncio.run(ensure_topics(kafka, [spec]))
    launcher = LocalKafka()
    for size, (smoke, quick, full) in SIZES.items():
        records = settings.pick(smoke=smoke, quick=quick, full=full)
        command = launcher.tool_command(
            "org.apache.kafka.tools.ProducerPerformance",
            *["--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1"],
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            *PRODUCER_PROPS,
            f"max.request.size={MAX_MESSAGE_BYTES}",
        )
        finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        match = _SUMMARY.search(finished.stdout)
        if finished.returncode != 0 or match is None:
            raise BenchError(f"ProducerPerformance failed: {(finished.stdout + finished.stderr)[-400:]}")
        p50, p99, p999, peak = (float(match[name]) for name in ("p50", "p99", "p999", "max"))
        result.measurements.append(
            Measurement(
                "kafka",
                f"producer-perf/{_size_name(size)}",
                float(match["rate"]),
                "records/s",
                Latency(p50=p50, p99=p99, p999=p999, max=peak),
                ok=int(match["records"]),
            )
        )
    result.notes.append(
        f"org.apache.kafka.tools.ProducerPerformance, one producer, acks=all, idempotent, {CODEC}, linger 5 ms,"
        " random payloads (the tool's own), topic with 3 partitions."
    )
    return result


def _size_name(size: int) -> str:
    return f"{size // 2**20}mb" if size >= 2**20 else f"{size // 1024}k"
