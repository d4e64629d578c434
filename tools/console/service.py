"""``hookbus console``: the index's feeder, its pruning and the HTTP API, in one process
(or as one service of ``hookbus dev``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiokafka.errors import KafkaError

from hookbus.config import HookbusConfig, load_config
from hookbus.errors import KafkaUnavailableError
from hookbus.logging import get_logger
from hookbus.ops_server import serving_ops
from hookbus.signals import stop_on_signals
from tools.console.api import Console, console_app
from tools.console.feeder import Feeder
from tools.console.fetch import RecordFetcher
from tools.console.index import Index, IndexDatabase
from tools.console.lag import LagProbe
from tools.console.settings import ConsoleSettings, console_settings
from tools.errors import ConsoleError

__all__ = ["PRUNE_EVERY_SECONDS", "main", "run_console"]

PRUNE_EVERY_SECONDS: Final = 3600.0
EXIT_UNAVAILABLE: Final = 1


async def _prune_every(index: Index, settings: ConsoleSettings, stop: asyncio.Event) -> None:
    log = get_logger(service="console", component="retention")
    while not stop.is_set():
        deleted = await index.run(lambda database: database.prune(time.time() - settings.keep_seconds))
        if deleted:
            log.info("console_index_pruned", rows=deleted, keep_days=settings.keep_days)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY_SECONDS)


def _index_database(settings: ConsoleSettings) -> Callable[[], IndexDatabase]:
    dsn = settings.index_dsn
    if dsn is not None:
        return lambda: IndexDatabase.postgres(dsn.value.decode("utf-8"))
    return lambda: IndexDatabase.sqlite(settings.index_path)


async def run_console(config: HookbusConfig, *, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Serve the console until ``stop`` is set. Refuses to start (:class:`ConfigError`) without
    a ``console.token``; :class:`KafkaUnavailableError` when Kafka cannot be reached at start."""
    settings = console_settings(config)
    log = get_logger(service="console", host=settings.host, port=settings.port)
    index = await Index.open(_index_database(settings))
    fetcher, lag = RecordFetcher(config), LagProbe(config)
    feeder = Feeder(config, index)
    runner = web.AppRunner(console_app(Console(config, settings, index, fetcher, lag, feeder)), access_log=None)
    try:
        try:
            await fetcher.start()
            await lag.start()
        except KafkaError as exc:
            raise KafkaUnavailableError(f"cannot reach {config.kafka.bootstrap_servers}: {exc!r}") from exc
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            raise ConsoleError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}", reason="cannot_listen"
            ) from exc
        async with serving_ops(config.ops, feeder):
            feeding = asyncio.create_task(feeder.run(stop), name="hookbus-console-feeder")
            pruning = asyncio.create_task(_prune_every(index, settings, stop), name="hookbus-console-retention")
            log.info("console_started", index=settings.index_location)
            if ready is not None:
                ready.set()
            try:
                done, _ = await asyncio.wait({feeding, pruning}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                stop.set()
                await asyncio.gather(feeding, pruning, return_exceptions=True)
    finally:
        await runner.cleanup()
        await lag.stop()
        await fetcher.stop()
        await index.close()
        log.info("console_stopped")


def main(args: argparse.Namespace) -> int:
    """``hookbus console``: run until SIGTERM or SIGINT; 0 after a clean stop, 1 when Kafka cannot be reached."""
    config = load_config(args.config)
    console_settings(config)  # a bad or missing section is a config error before anything starts
    return asyncio.run(_serve(config))


async def _serve(config: HookbusConfig) -> int:
    try:
        with stop_on_signals() as stop:
            await run_console(config, stop=stop)
    except (KafkaUnavailableError, ConsoleError) as exc:
        get_logger(service="console").error("console_failed", reason=exc.reason, detail=exc.detail)
        return EXIT_UNAVAILABLE
    return 0
