"""Running the gateway: ``hookbus gateway`` and :func:`serve` for ``hookbus dev``.

Config, then build, then run: the configuration is loaded and checked before anything
listens (a bad file exits 2 with one line on stderr), the topics are created, the producer
started, then the HTTP server. On SIGTERM or SIGINT the listening socket closes first,
requests in flight still get their answer once Kafka acknowledged them, then the producer
flushes and stops, all within ``gateway.shutdown_timeout_seconds``.

``--workers N`` runs N processes sharing the port with SO_REUSEPORT, each with its own
producer and, for each spooling source, its own spool slot
(``<spool_dir>/<raw topic>/sources/<source>/worker-<n>``, held by a lock); a process has
``spool_max_bytes / N`` of room, split equally between its spooling sources. The parent only
forwards the stop signal and waits.

When some source spools (see :class:`~ingest.publisher.SpoolingPublisher`), the gateway
also starts while Kafka is unreachable: it spools, answers 503 for the other sources, and
keeps connecting in the background; whatever a previous run left in the spool drains once
Kafka is back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from hookbus.config import HookbusConfig, load_config
from hookbus.errors import ConfigError, HookbusError, KafkaUnavailableError
from hookbus.kafka import UnsafeTopicsError, ensure_topics, hookbus_topics, require_safe_topics
from hookbus.logging import LogOptions, configure_logging, get_logger
from hookbus.metrics import mark_process_dead, multiprocess_directory
from hookbus.ops_server import serving_ops
from hookbus.signals import stop_on_signals
from hookbus.stage.backoff import Backoff
from ingest.budget import warn_of_bodies_larger_than_the_budget
from ingest.decision import check_sources, required_headers_read
from ingest.errors import IngestError
from ingest.gateway import ADMISSION, IN_FLIGHT, READINESS, Clock, build_app
from ingest.metrics import SpoolGauges
from ingest.publisher import UNDELIVERABLE_DIRECTORY, KafkaPublisher, Publisher, SpoolingPublisher
from ingest.requestlog import RequestLogWriter
from ingest.runner import GatewayRunner
from ingest.spool import SpoolDepth, claim_sources

# Of the shutdown budget, what is kept for the producer to flush after the last answer.
PRODUCER_STOP_SHARE = 0.2
MIN_PRODUCER_STOP_SECONDS = 0.5
# How long requests still running after the drain get before they are cancelled.
CUT_SHORT_SECONDS = 0.5
# A request whose body trickles in after its response was sent is read and dropped for at
# most this long; then the connection is closed.
LINGERING_SECONDS = 2.0
# Connections the kernel queues until the gateway accepts them (capped by net.core.somaxconn).
# aiohttp's 128 overflows in a burst: the kernel then drops SYNs, the sender retries them after
# 1, 3, 7 s, and the request arrives long past any deadline. Accepted, it is answered in time,
# if only with 503 overloaded (ingest.admission).
LISTEN_BACKLOG = 2048
EXIT_OK = 0
EXIT_FAILED = 1
CONNECT_RETRY_INITIAL_SECONDS = 0.5
CONNECT_RETRY_MAX_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int
    reuse_port: bool = False
    processes: int = 1
    """How many gateway processes share the port (and the spool budget)."""


def runner_options(config: HookbusConfig) -> dict[str, Any]:
    """aiohttp server options from the gateway section.

    The body is never decompressed (signatures cover the bytes as sent), aiohttp's access log
    is off (the gateway writes its own line per request), and header sizes are bounded.
    aiohttp's keep-alive timer runs from the moment a connection opens (and again after each
    response) until the next request's headers are complete, so it is also the bound on a
    client that dribbles its request line and headers (slow loris); the body has its own
    bound, ``read_timeout_seconds``, in the handler.
    """
    gateway = config.gateway
    return {
        "access_log": None,
        "auto_decompress": False,
        "handle_signals": False,
        "lingering_time": LINGERING_SECONDS,
        "max_line_size": gateway.max_header_bytes,
        "max_field_size": gateway.max_header_bytes,
        "max_headers": gateway.max_headers,
        "keepalive_timeout": gateway.keepalive_timeout_seconds,
        # Requests in flight are waited for before aiohttp shuts down (see ingest.gateway.InFlight):
        # what is left by then is cut short.
        "shutdown_timeout": CUT_SHORT_SECONDS,
    }


async def serve(
    config: HookbusConfig,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    clock: Clock = time.time,
    reuse_port: bool = False,
    processes: int = 1,
) -> None:
    """Serve the gateway on ``host:port`` until ``stop`` is set, then drain and return.

    ``ready`` is set once the server accepts connections; ``processes`` gateways share the
    spool budget. Raises :class:`~hookbus.errors.ConfigError` for a bad provider option and,
    when no source spools, :class:`~hookbus.errors.KafkaUnavailableError` when Kafka cannot
    be reached at startup, both before anything listens, and
    :class:`~hookbus.kafka.UnsafeTopicsError` when the topics cannot keep a 2xx durable.
    """
    check_sources(config.sources, file=config.path)
    warn_of_bodies_larger_than_the_budget(config, processes)
    log = get_logger(service="gateway")
    for source in config.sources:
        if read := required_headers_read(source):
            log.warning("required_header_not_kept", source=source.name, headers=sorted(read))
    publishing = await Publishing.start(config, processes)
    request_log = RequestLogWriter(config) if config.request_log.enabled else None
    if request_log is not None:
        request_log.start()
    app = build_app(
        config,
        publisher=publishing.publisher,
        clock=clock,
        backlog=publishing.backlog,
        processes=processes,
        request_log=request_log,
        spool=publishing.spool_gauges,
    )
    runner = GatewayRunner(app, **runner_options(config))
    deadline = time.monotonic() + config.gateway.shutdown_timeout_seconds
    try:
        # /metrics (and the probes again) on the ops port, off the public listener, for as long as
        # requests are answered.
        async with serving_ops(config.ops, app[READINESS], reuse_port=reuse_port):
            await runner.setup()
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=LISTEN_BACKLOG)
            try:
                await site.start()
            except OSError as exc:
                raise IngestError(f"cannot listen on {host}:{port}: {exc.strerror}", reason="cannot_listen") from exc
            # aiohttp names no public accessor for a site's listening sockets; uvloop's server, like
            # asyncio's, has ``sockets`` (sockets its loop owns: only read from, never closed here).
            app[ADMISSION].wait.watch(list(getattr(site._server, "sockets", ())))
            log.info(
                "listening", host=host, port=port, pid=os.getpid(), sources=[source.name for source in config.sources]
            )
            if ready is not None:
                ready.set()
            await stop.wait()
            deadline = time.monotonic() + config.gateway.shutdown_timeout_seconds
            log.info("draining")
            await site.stop()
            drained = await app[IN_FLIGHT].drain(config.gateway.shutdown_timeout_seconds * (1 - PRODUCER_STOP_SHARE))
            if not drained:
                log.warning("drain_timeout")
    finally:
        await runner.cleanup()
        if request_log is not None:
            await request_log.stop(max(0.0, deadline - time.monotonic()) * PRODUCER_STOP_SHARE)
        await publishing.stop(deadline)
    log.info("stopped")


@dataclass(slots=True)
class Publishing:
    """The producer, the spool when some source spools, and the background connection attempts."""

    kafka: KafkaPublisher
    spooling: SpoolingPublisher | None
    connecting: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: HookbusConfig, processes: int) -> Publishing:
        """Claim a spool slot (recovering it), connect to Kafka, start draining.

        Without a spooling source, Kafka must answer now; with one, the gateway may start
        without it and connects in the background.
        """
        kafka = KafkaPublisher.from_config(config)
        spooling_sources = frozenset(source.name for source in config.sources if source.spool)
        spooling = None
        if spooling_sources:
            spool_root = Path(config.gateway.spool_dir) / config.kafka.raw_topic
            budget = config.gateway.spool_max_bytes // max(1, processes)
            claimed = await asyncio.to_thread(claim_sources, spool_root, spooling_sources, max_bytes=budget)
            spooling = SpoolingPublisher(kafka, claimed, undeliverable=spool_root / UNDELIVERABLE_DIRECTORY)
        publishing = cls(kafka, spooling)
        try:
            await _connect(config, kafka)
        except KafkaUnavailableError as exc:
            if spooling is None:
                raise
            get_logger(service="gateway").warning("kafka_unavailable_at_startup", error=exc.detail)
            publishing.connecting = asyncio.create_task(_keep_connecting(config, kafka), name="kafka-connect")
        if spooling is not None:
            spooling.start()
        return publishing

    @property
    def publisher(self) -> Publisher:
        return self.spooling if self.spooling is not None else self.kafka

    @property
    def backlog(self) -> Callable[[], SpoolDepth] | None:
        return self.spooling.depth if self.spooling is not None else None

    @property
    def spool_gauges(self) -> SpoolGauges | None:
        if self.spooling is None:
            return None
        return SpoolGauges(self.spooling.depth_by_source, self.spooling.limits_by_source())

    async def stop(self, deadline: float) -> None:
        """Stop draining and close the spool, then let the producer flush until ``deadline``."""
        if self.connecting is not None:
            self.connecting.cancel()
        if self.spooling is not None:
            await self.spooling.stop()
        try:
            async with asyncio.timeout(max(MIN_PRODUCER_STOP_SECONDS, deadline - time.monotonic())):
                await self.kafka.stop()
        except TimeoutError:
            get_logger(service="gateway").warning("producer_stop_timeout")


async def _connect(config: HookbusConfig, kafka: KafkaPublisher) -> None:
    topics = hookbus_topics(config)
    await ensure_topics(config.kafka, topics)
    await require_safe_topics(config.kafka, topics, get_logger(service="gateway"))
    await kafka.start()


async def _keep_connecting(config: HookbusConfig, kafka: KafkaPublisher) -> None:
    """Connect to Kafka once it answers; meanwhile the spool takes the events."""
    backoff = Backoff(CONNECT_RETRY_INITIAL_SECONDS, CONNECT_RETRY_MAX_SECONDS)
    while True:
        await asyncio.sleep(backoff.next_delay())
        try:
            await _connect(config, kafka)
        except KafkaUnavailableError:
            continue
        except UnsafeTopicsError as exc:
            # Found only once Kafka answers: the spool keeps the events until an operator fixes the topics.
            get_logger(service="gateway").error("unsafe_topics", **exc.log_fields())
            continue
        get_logger(service="gateway").info("kafka_connected")
        return


def _listen_address(config: HookbusConfig, args: argparse.Namespace) -> Listen:
    return Listen(
        host=args.host if args.host is not None else config.gateway.host,
        port=args.port if args.port is not None else config.gateway.port,
        reuse_port=args.workers > 1,
        processes=args.workers,
    )


def _new_event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_gateway(config: HookbusConfig, listen: Listen) -> int:
    """Run one gateway process until SIGTERM or SIGINT; the process's exit code."""

    async def run() -> None:
        with stop_on_signals() as stop:
            await serve(
                config,
                host=listen.host,
                port=listen.port,
                stop=stop,
                reuse_port=listen.reuse_port,
                processes=listen.processes,
            )

    with asyncio.Runner(loop_factory=_new_event_loop_factory()) as runner:
        try:
            runner.run(run())
        except ConfigError:
            raise
        except HookbusError as exc:
            get_logger(service="gateway").error("startup_failed", reason=exc.reason, error=exc.detail)
            return EXIT_FAILED
    return EXIT_OK


def _worker(config_path: str, logs: LogOptions, listen: Listen) -> None:
    configure_logging(logs.level, log_format=logs.log_format)
    sys.exit(run_gateway(load_config(config_path), listen))


def run_workers(config: HookbusConfig, listen: Listen, count: int, logs: LogOptions) -> int:
    """``count`` gateway processes on one port; SIGTERM and SIGINT are passed on to them.

    Their metrics are kept in a directory of this run's (:mod:`hookbus.metrics`), so that any
    worker answers a scrape for all of them."""
    with multiprocess_directory() as metrics_directory:
        get_logger(service="gateway").info("metrics_directory", path=str(metrics_directory), workers=count)
        return _run_worker_processes(config, listen, count, logs, metrics_directory)


def _run_worker_processes(
    config: HookbusConfig, listen: Listen, count: int, logs: LogOptions, metrics_directory: Path
) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(config.path, logs, listen), name=f"gateway-{index}")
        for index in range(count)
    ]

    def forward(signum: int, _: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.pid is not None:
            mark_process_dead(worker.pid, metrics_directory)
    return EXIT_OK if all(worker.exitcode == EXIT_OK for worker in workers) else EXIT_FAILED


def main(args: argparse.Namespace) -> int:
    """``hookbus gateway``: load and check the configuration, then serve until told to stop."""
    config = load_config(args.config)
    check_sources(config.sources, file=config.path)
    listen = _listen_address(config, args)
    if args.workers > 1:
        return run_workers(config, listen, args.workers, LogOptions.from_args(args))
    return run_gateway(config, listen)
