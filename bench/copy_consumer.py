"""The normalizer's ceiling: the same consumer group loop copying raw records to the events
topic unchanged (no parsing, no mapping), with hookbus.kafka's consumer and producer settings
and the normalizer's batch size, ordering and commit-after-acknowledgement.

``python -m bench.copy_consumer --config F`` runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from hookbus.config import load_config
from hookbus.kafka import make_consumer, make_producer, max_record_bytes
from normalizer.settings import parse_settings


async def copy(config_path: str) -> None:
    config = load_config(config_path)
    settings = parse_settings(config.normalizer, path=config.path)
    limit = max_record_bytes(config)
    consumer = make_consumer(config.kafka, config.kafka.raw_topic, group_id=settings.group_id, max_record_size=limit)
    producer = make_producer(config.kafka, max_request_size=limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=settings.batch_timeout_ms, max_records=settings.batch_size)
            if not batch:
                continue
            acknowledgements = [
                await producer.send(
                    config.kafka.events_topic, record.value, key=record.key, headers=list(record.headers)
                )
                for records in batch.values()
                for record in records
            ]
            await asyncio.gather(*acknowledgements)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    asyncio.run(copy(parser.parse_args().config))


if __name__ == "__main__":
    main()
