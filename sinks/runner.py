"""``hookbus sink <name>``: feed one sink instance from the events topic, at least once.

The instance is its own consumer group, an output stage of :mod:`hookbus.stage` (see
:mod:`hookbus.stage.output` for batching, retries, pausing and dead letters). This module
wires a configured instance to it: the sink's context, its filters, its dead-letter topic
(``<events_topic>.dlq.<name>``, whose dead letters also carry ``hookbus-dlq-sink``), and the
deliveries topic it reports each event's outcome to (``report_deliveries``). The
runner keeps trying to start (the destination or Kafka may come up after it). An event the
sink's ``write`` keeps raising on is dead-lettered after the stage's ``max_attempts`` (3)
(``write_crashed``) while an outage of the destination is retried without bound (see
:mod:`hookbus.stage`). On SIGTERM a batch being written is finished, a batch waiting for a
retry is abandoned uncommitted, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio

from hookbus.config import HookbusConfig, load_config
from hookbus.kafka import TopicSpec, UnsafeTopicsError, delivery_reports_topic, hookbus_topics, max_record_bytes
from hookbus.logging import get_logger
from hookbus.signals import stop_on_signals
from hookbus.sink import Sink, SinkContext
from hookbus.stage.output import OutputStage, RecordOf
from hookbus.stage.runtime import StageRuntime, StageSettings
from sinks.configure import ConfiguredSink, configure_sink

__all__ = ["main", "run_sink"]


def stage_settings(config: HookbusConfig, configured: ConfiguredSink) -> StageSettings:
    """How the runtime runs the instance: the events topic in, its own dead-letter topic, and
    the deliveries topic when it reports its deliveries."""
    kafka = config.kafka
    runner = configured.runner
    events_spec = next(spec for spec in hookbus_topics(config) if spec.name == kafka.events_topic)
    dlq_spec = TopicSpec(
        configured.dead_letter_topic, kafka.topic_partitions, kafka.replication_factor, events_spec.configs
    )
    return StageSettings(
        topic=kafka.events_topic,
        group_id=configured.group_id,
        dead_letter_topic=configured.dead_letter_topic,
        topics=[events_spec, dlq_spec, *([delivery_reports_topic(config)] if runner.report_deliveries else [])],
        batch_size=runner.batch_size,
        batch_timeout_seconds=runner.batch_timeout_seconds,
        retry_initial_seconds=runner.retry_initial_seconds,
        retry_max_seconds=runner.retry_max_seconds,
        dead_letter_extra={"sink": configured.name},
        keep_trying_to_start=True,
        ops=config.ops,
    )


async def run_sink(
    config: HookbusConfig, name: str, *, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Run the sink instance ``name`` until ``stop`` is set. ``ready`` is set once it consumes.

    :class:`~hookbus.errors.ConfigError` at once if its configuration section is wrong.
    """
    configured = configure_sink(config, name)
    log = get_logger(service="sink", sink=configured.name, sink_type=configured.runner.type)
    record_bytes = max_record_bytes(config)

    def create_sink(record_of: RecordOf) -> Sink:
        context = SinkContext(
            name=configured.name, log=log, kafka=config.kafka, max_record_bytes=record_bytes, record_of=record_of
        )
        return configured.create(context)

    stage = OutputStage(
        create_sink,
        configured.runner.accepts,
        name=configured.name,
        deliveries_topic=config.kafka.deliveries_topic if configured.runner.report_deliveries else None,
    )
    runtime = StageRuntime(
        config.kafka, stage_settings(config, configured), stage, max_record_bytes=record_bytes, log=log, stop=stop
    )
    log.info("sink_starting", group_id=configured.group_id, dead_letter_topic=configured.dead_letter_topic)
    async with runtime.started() as started:
        if not started:
            return
        if ready is not None:
            ready.set()
        log.info("sink_started")
        await runtime.consume()
    log.info("sink_stopped")


def main(args: argparse.Namespace) -> int:
    """``hookbus sink <name>``: run until SIGTERM or SIGINT, then exit 0; 1 on unsafe topics."""
    config = load_config(args.config)
    configure_sink(config, args.name)

    async def serve() -> None:
        with stop_on_signals() as stop:
            await run_sink(config, args.name, stop=stop)

    try:
        asyncio.run(serve())
    except UnsafeTopicsError as exc:
        get_logger(service="sink", sink=args.name).error("unsafe_topics", **exc.log_fields())
        return 1
    return 0
