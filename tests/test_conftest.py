"""The shared fixtures give each test a real broker and database of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from hookbus.config import KafkaConfig
from hookbus.kafka import TopicSpec, ensure_topics


async def test_kafka_config_names_topics_of_this_test_on_the_broker(
    kafka_bootstrap: str, kafka_config: KafkaConfig
) -> None:
    topics = [kafka_config.raw_topic, kafka_config.events_topic, kafka_config.dlq_topic]
    await ensure_topics(kafka_config, [TopicSpec(name, 3, 1) for name in topics])

    assert kafka_config.bootstrap_servers == kafka_bootstrap
    assert await _partition_counts(kafka_bootstrap, topics) == dict.fromkeys(topics, 3)
    assert len({name.rsplit(".", 1)[0] for name in topics}) == 1


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Partitions per topic, once the broker's metadata lists them all (creation returns before that)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(100):
            counts = {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics(topics)}
            if all(counts.values()):
                break
            await asyncio.sleep(0.1)
        return counts
    finally:
        await admin.close()


async def test_pg_database_is_a_new_empty_database(pg_dsn: str, pg_database: str) -> None:
    connection = await asyncpg.connect(pg_database)
    try:
        database = await connection.fetchval("SELECT current_database()")
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await connection.close()

    assert pg_database.endswith(f"/{database}")
    assert not pg_dsn.endswith(f"/{database}")
    assert tables == 0


def test_vectors_dir_holds_the_shared_vectors(vectors_dir: Path) -> None:
    assert (vectors_dir / "README.md").is_file()
    assert list(vectors_dir.glob("*.json"))
