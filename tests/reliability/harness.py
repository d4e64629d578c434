"""What the fault and fuzz tests share: the pipeline as real processes, a provider-like sender, the accounting.

Every service runs as ``python -m hookbus ...`` in a child process with its stderr in a log
file, so a test can SIGKILL it, SIGTERM it, start it again, read what it logged and measure
its memory. The sender signs events exactly as ``hookbus send`` does (its code, not a copy)
and behaves like the providers: one that retries sends the same request again after a
refusal, one that never retries does not. The accounting follows every sent body through
the raw topic (by its bytes) to the events topic and the table (by the ingest id), so it
does not depend on how the normalizer derives event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from hookbus.config import KafkaConfig
from hookbus.provider import Credentials, SignedRequest, provider
from tools.localprocess import HookbusProcess, free_port
from tools.send import example_body, sign, webhook_url

FULL_MODE = os.environ.get("HOOKBUS_RELIABILITY_FULL") == "1"
"""``HOOKBUS_RELIABILITY_FULL=1`` (``scripts/reliability``): thousands of events, longer fuzzing."""
LOOPBACK = "127.0.0.1"
SERVICE_READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
REQUEST_TIMEOUT_SECONDS = 10.0
RETRY_DELAY_SECONDS = 0.5
# A retrying provider keeps trying this long (real ones try for hours; the test is bounded).
RETRY_WINDOW_SECONDS = 120.0
MAX_CONCURRENT_REQUESTS = 200
CONNECTION_ERROR = "connection_error"
TABLE = "events"
SINK = "pg"
"""The PostgreSQL sink instance of :func:`pipeline_document`."""
# Frozen this long, a consumer builds a backlog of some 200 events yet keeps its group membership.
BACKLOG_SECONDS = 2.0
KILL_AFTER_THAW_SECONDS = 0.1
NORMALIZER_STARTED = "normalizer_started"
SINK_STARTED = "sink_started"


@dataclass(frozen=True, slots=True)
class SignedSource:
    """A configured source and the credentials its provider signs with (test values)."""

    name: str
    provider: str
    secret: str | None = None
    api_key: str | None = None

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.secret.encode() if self.secret is not None else None, self.api_key)

    @property
    def retries(self) -> bool:
        return provider(self.provider).retries

    def section(self, **extra: Any) -> dict[str, Any]:
        section: dict[str, Any] = {"name": self.name, "provider": self.provider, **extra}
        if self.secret is not None:
            section["secrets"] = [self.secret]
        if self.api_key is not None:
            section["api_key"] = self.api_key
        return section

    def signed(self, body: bytes, *, now: float | None = None, event_type: str | None = None) -> SignedRequest:
        return sign(self.provider, body, self.credentials, event_type=event_type, now=now)

    def example_section(self, **extra: Any) -> dict[str, Any]:
        """The section its provider's examples configure (``Examples.source``: a generic source's
        signature and mapping, say), with this source's credentials for ``${SECRET}`` and ``${API_KEY}``."""
        credentials = {"${SECRET}": self.secret or "", "${API_KEY}": self.api_key or ""}

        def expanded(value: Any) -> Any:
            if isinstance(value, str):
                for placeholder, credential in credentials.items():
                    value = value.replace(placeholder, credential)
                return value
            if isinstance(value, Mapping):
                return {key: expanded(item) for key, item in value.items()}
            if isinstance(value, list | tuple):
                return [expanded(item) for item in value]
            return value

        return {
            "name": self.name,
            "provider": self.provider,
            **expanded(provider(self.provider).examples.source),
            **extra,
        }


OCTOBER = SignedSource("october", "october", secret="rel-october-secret-7f3a91c2d4")
OFFICERND = SignedSource("officernd", "officernd", secret="rel-officernd-secret-2b8e44d0a1")
OFFERTE_ADVISEUR = SignedSource("offerte_adviseur", "offerte_adviseur", secret="rel-offerte-secret-9c1d5e6f0b")
OCTAMILE = SignedSource("octamile", "octamile", api_key="rel-octamile-key-4a7b2c9e5d")
SOURCES = (OCTOBER, OFFICERND, OFFERTE_ADVISEUR, OCTAMILE)


def fresh_topics(bootstrap_servers: str, partitions: int = 3) -> KafkaConfig:
    """A KafkaConfig whose topic names belong to one scenario alone."""
    prefix = f"rel-{uuid.uuid4().hex[:10]}"
    return KafkaConfig(
        bootstrap_servers=bootstrap_servers,
        client_id=prefix,
        raw_topic=f"{prefix}.raw",
        events_topic=f"{prefix}.events",
        dlq_topic=f"{prefix}.dlq",
        requests_topic=f"{prefix}.requests",
        topic_partitions=partitions,
        replication_factor=1,
        development_mode=True,
    )


def sink_dead_letter_topic(kafka: KafkaConfig) -> str:
    """Where the pipeline's PostgreSQL sink puts the events its database refuses."""
    return f"{kafka.events_topic}.dlq.{SINK}"


def pipeline_document(
    kafka: KafkaConfig,
    *,
    port: int,
    dsn: str,
    workdir: Path,
    sources: Sequence[Mapping[str, Any]],
    gateway: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration file of one pipeline: its topics, gateway, sources, normalizer and a PostgreSQL sink.

    Retry caps are short so a service notices a returning broker or database within a second or two.
    """
    prefix = kafka.raw_topic.removesuffix(".raw")
    return {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "client_id": kafka.client_id,
            "raw_topic": kafka.raw_topic,
            "events_topic": kafka.events_topic,
            "dlq_topic": kafka.dlq_topic,
            "topic_partitions": kafka.topic_partitions,
            "replication_factor": kafka.replication_factor,
            "development_mode": kafka.development_mode,
        },
        "gateway": {
            "host": LOOPBACK,
            "port": port,
            "ack_timeout_seconds": 1.5,
            "shutdown_timeout_seconds": 5.0,
            "spool_dir": str(workdir / "spool"),
            **(gateway or {}),
        },
        "sources": list(sources),
        "normalizer": {"group_id": f"{prefix}.normalizer", "batch_timeout_ms": 100, "retry_backoff_max_ms": 1000},
        "sinks": {
            SINK: {
                "type": "postgres",
                "dsn": dsn,
                "table": TABLE,
                "group_id": f"{prefix}.sink",
                "batch_timeout_seconds": 0.2,
                "retry_initial_seconds": 0.2,
                "retry_max_seconds": 1.0,
            }
        },
    }


# --- processes ------------------------------------------------------------------------------


class ServiceProcess(HookbusProcess):
    """A hookbus command of the pipeline under test, with what the fault tests do to it."""

    async def kill_mid_batch(self) -> None:
        """SIGKILL while the process holds a batch: it is frozen (SIGSTOP) while a backlog builds up,
        thawed, and killed while it works through the backlog's first batch."""
        self.send_signal(signal.SIGSTOP)
        await asyncio.sleep(BACKLOG_SECONDS)
        self.send_signal(signal.SIGCONT)
        await asyncio.sleep(KILL_AFTER_THAW_SECONDS)
        self.kill()

    def terminate(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM and wait for the exit (SIGKILL after ``timeout``); the exit code."""
        return self.end(timeout)

    def rss_kib(self) -> int:
        """The resident set size (VmRSS) of the running process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    async def wait_logged(self, marker: str, *, timeout: float = SERVICE_READY_TIMEOUT_SECONDS) -> None:
        """Wait until what the process wrote since its last start holds ``marker``."""
        deadline = time.monotonic() + timeout
        while marker not in self.log_since_launch():
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.exit_code}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {marker!r} within {timeout:g} s")
            await asyncio.sleep(0.1)


@dataclass
class Pipeline:
    """The services of one scenario, on its own topics, port and table."""

    workdir: Path
    kafka: KafkaConfig
    port: int
    dsn: str
    config_path: Path
    processes: list[ServiceProcess] = field(default_factory=list)
    more_gateway_ports: list[int] = field(default_factory=list)
    """The ports of the gateways after the first (:meth:`start` with ``gateways`` above 1)."""

    @classmethod
    def write(cls, workdir: Path, kafka: KafkaConfig, *, port: int, dsn: str, document: dict[str, Any]) -> Pipeline:
        config_path = workdir / "hookbus.yaml"
        config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return cls(workdir=workdir, kafka=kafka, port=port, dsn=dsn, config_path=config_path)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_urls(self) -> list[str]:
        """Every gateway's URL, the first one's first: what a load balancer in front of them would spread over."""
        return [f"http://{LOOPBACK}:{port}" for port in (self.port, *self.more_gateway_ports)]

    def service(self, name: str, *arguments: str, config_path: Path | None = None) -> ServiceProcess:
        config = config_path or self.config_path
        process = ServiceProcess(name, [*arguments, "--config", str(config)], workdir=self.workdir)
        self.processes.append(process)
        return process

    def _another_gateway(self, number: int) -> ServiceProcess:
        """A gateway replica with a port and a spool of its own, as each replica has its own volume."""
        document = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        port = free_port()
        document["gateway"] |= {"port": port, "spool_dir": str(self.workdir / f"spool-{number}")}
        config_path = self.workdir / f"hookbus-gateway-{number}.yaml"
        config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
        self.more_gateway_ports.append(port)
        return self.service(f"gateway-{number}", "gateway", config_path=config_path)

    async def start(self, *, gateways: int = 1, normalizers: int = 1, sinks: int = 1) -> Running:
        """Start ``gateways`` gateways, ``normalizers`` normalizers in one group and ``sinks`` PostgreSQL sinks
        in another, together; return once every gateway is ready and every consumer has started."""
        running = Running(
            gateways=[self.service("gateway", "gateway"), *map(self._another_gateway, range(1, gateways))],
            normalizers=[self.service(f"normalizer-{number}", "normalizer") for number in range(normalizers)],
            sinks=[self.service("sink" if number == 0 else f"sink-{number}", "sink", SINK) for number in range(sinks)],
        )
        for process in running.all():
            process.start()
        await asyncio.gather(
            *(self.wait_ready(gateway, url) for gateway, url in zip(running.gateways, self.base_urls, strict=True)),
            *(normalizer.wait_logged(NORMALIZER_STARTED) for normalizer in running.normalizers),
            *(sink.wait_logged(SINK_STARTED) for sink in running.sinks),
        )
        return running

    async def restart_gateway(self, gateway: ServiceProcess, base_url: str | None = None) -> None:
        gateway.restart()
        await self.wait_ready(gateway, base_url)

    async def wait_ready(
        self, gateway: ServiceProcess, base_url: str | None = None, timeout: float = SERVICE_READY_TIMEOUT_SECONDS
    ) -> None:
        deadline = time.monotonic() + timeout
        url = f"{base_url or self.base_url}/readyz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if not gateway.running:
                    raise AssertionError(f"the gateway exited with {gateway.exit_code}:\n{gateway.log_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the gateway was not ready within {timeout:g} s")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to every service at once, then wait for each (SIGKILL after the timeout)."""
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.terminate()

    def crashed(self) -> list[str]:
        """Services that were expected to run and exited (a clean exit after SIGTERM is not a crash)."""
        return [process.name for process in self.processes if process.exit_code not in {None, 0, -signal.SIGKILL}]

    def logs(self) -> dict[str, str]:
        return {process.name: process.log_text() for process in self.processes}

    def spooled_answers(self) -> int:
        """How many 2xx the gateways answered from their spools (their request log lines say so)."""
        count = 0
        for process in self.processes:
            if not process.name.startswith("gateway"):
                continue
            for line in process.log_text().splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    count += (
                        isinstance(entry, dict) and entry.get("event") == "request" and entry.get("spooled") is True
                    )
        return count


@dataclass(frozen=True, slots=True)
class Running:
    """The services of a started pipeline."""

    gateways: list[ServiceProcess]
    normalizers: list[ServiceProcess]
    sinks: list[ServiceProcess]

    @property
    def gateway(self) -> ServiceProcess:
        return self.gateways[0]

    @property
    def sink(self) -> ServiceProcess:
        return self.sinks[0]

    def all(self) -> list[ServiceProcess]:
        return [*self.gateways, *self.normalizers, *self.sinks]


# --- the sender -----------------------------------------------------------------------------


@dataclass
class Delivery:
    """One event a provider sends, and what the gateway answered each attempt."""

    source: SignedSource
    body: bytes
    signed: SignedRequest
    gateway: int = 0
    """Which gateway the first attempt goes to (a retry goes to the next)."""
    attempts: list[str] = field(default_factory=list)
    ingest_id: str | None = None
    sent_at: float = field(default_factory=time.monotonic)
    """When the first attempt was sent (``time.monotonic``)."""

    @property
    def accepted(self) -> bool:
        return self.ingest_id is not None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class StreamSender:
    """Sends ``count`` fresh events at ``rate`` per second, round robin over ``sources``.

    A source whose provider retries sends the very same request again (same bytes, same
    signature) after a refusal or a connection error, for up to ``RETRY_WINDOW_SECONDS``;
    a provider that never retries gives up after the first answer. Given several gateways'
    URLs, events are spread over them round robin, a refused connection is tried on the next
    one, and a retry goes to the next one, as a load balancer in front of gateway replicas would.
    """

    def __init__(
        self, base_urls: str | Sequence[str], sources: Sequence[SignedSource], *, count: int, rate: float
    ) -> None:
        self._base_urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        self._sources = sources
        self._count = count
        self._rate = rate
        self.deliveries: list[Delivery] = []
        self._answered = 0

    @property
    def answered(self) -> int:
        """How many events have had a first answer (or a connection error)."""
        return self._answered

    async def wait_answered(self, count: int, *, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self._answered < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self._answered} of {count} events were answered in {timeout:g} s")
            await asyncio.sleep(0.05)

    async def run(self) -> list[Delivery]:
        limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_REQUESTS)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http, asyncio.TaskGroup() as tasks:
            started = time.monotonic()
            for number in range(self._count):
                await asyncio.sleep(max(0.0, started + number / self._rate - time.monotonic()))
                source = self._sources[number % len(self._sources)]
                body = example_body(source.provider)
                delivery = Delivery(source, body, source.signed(body), gateway=number % len(self._base_urls))
                self.deliveries.append(delivery)
                await limit.acquire()
                task = tasks.create_task(self._deliver(http, delivery))
                task.add_done_callback(lambda _: limit.release())
        return self.deliveries

    async def _deliver(self, http: aiohttp.ClientSession, delivery: Delivery) -> None:
        give_up_at = time.monotonic() + RETRY_WINDOW_SECONDS
        while True:
            outcome, ingest_id = await self._attempt(http, delivery)
            if not delivery.attempts:
                self._answered += 1
            delivery.attempts.append(outcome)
            if ingest_id is not None:
                delivery.ingest_id = ingest_id
                return
            if not delivery.source.retries or time.monotonic() > give_up_at:
                return
            await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _attempt(self, http: aiohttp.ClientSession, delivery: Delivery) -> tuple[str, str | None]:
        """One attempt of the provider. A refused connection is tried on the next gateway at once, as a load
        balancer does (nginx's ``proxy_next_upstream error``): the request never reached the first one. Any
        other failure is the provider's to retry, or not."""
        first = delivery.gateway + len(delivery.attempts)
        for offset in range(len(self._base_urls)):
            base_url = self._base_urls[(first + offset) % len(self._base_urls)]
            url = webhook_url(base_url, delivery.source.name)
            try:
                async with http.post(
                    url, data=delivery.body, headers=delivery.signed.headers, params=delivery.signed.query
                ) as response:
                    document = await response.json(content_type=None)
                    if 200 <= response.status < 300:
                        return str(response.status), str(document["id"])
                    return str(response.status), None
            except aiohttp.ClientConnectorError:
                continue
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                return CONNECTION_ERROR, None
        return CONNECTION_ERROR, None


# --- the accounting -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value.decode("utf-8", errors="replace")
        return None


async def read_topic(kafka: KafkaConfig, topic: str, *, timeout: float = 60.0) -> list[KafkaRecord]:
    """Every record of ``topic`` (one of ``kafka``'s, so with its partition count) from its beginning
    to its current end, without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    records: list[KafkaRecord] = []
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, partition) for partition in range(kafka.topic_partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        deadline = time.monotonic() + timeout
        while [partition for partition in assigned if await consumer.position(partition) < ends[partition]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout:g} s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(KafkaRecord(item.key, item.value, tuple(item.headers or ())) for item in batch)
    finally:
        await consumer.stop()
    return records


async def table_rows(dsn: str, table: str = TABLE) -> list[tuple[str, str]]:
    """``(event id, ingest id)`` of every row; none when the sink has not created the table yet."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        if await connection.fetchval("SELECT to_regclass($1)", table) is None:
            return []
        rows = await connection.fetch(f"SELECT id, event->>'ingestid' AS ingest_id FROM {table}")  # noqa: S608
    finally:
        await connection.close()
    return [(row["id"], row["ingest_id"]) for row in rows]


async def wait_drained(dsn: str, target: int, *, timeout: float, settle: float = 1.5) -> int:
    """Poll the row count until it reaches ``target`` and stops growing for ``settle`` seconds,
    or ``timeout`` passes; the last count. Bounded: what is missing then is reported as lost."""
    deadline = time.monotonic() + timeout
    count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            current = len(await table_rows(dsn))
            if current != count:
                count, last_change = current, time.monotonic()
            elif count >= target and time.monotonic() - last_change >= settle:
                return count
        await asyncio.sleep(0.25)
    return count


@dataclass(frozen=True, slots=True)
class Tally:
    """Where every sent event ended up. ``lost`` and ``duplicates`` must be 0."""

    sent: int
    answered_2xx: int
    refusals: dict[str, int]
    """Every non-2xx attempt, by status (``connection_error`` when there was no answer)."""
    never_2xx: int
    raw_records: int
    topic_records: int
    in_topic: int
    """Sent events with at least one CloudEvent in the events topic."""
    redelivered: int
    """Extra copies in the events topic: a batch published again after a crash or rebalance (at least once)."""
    rows: int
    duplicates: int
    lost: int
    other_5xx: int
    """5xx answers other than the documented 503."""
    dead_letters: int
    arrived_without_2xx: int
    """Events never answered 2xx that were stored anyway (a 503 after Kafka took the record): allowed."""
    crashed: tuple[str, ...] = ()
    lost_examples: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        problems = []
        if self.lost:
            problems.append(f"{self.lost} lost")
        if self.duplicates:
            problems.append(f"{self.duplicates} duplicated")
        if self.other_5xx:
            problems.append(f"{self.other_5xx} unexpected 5xx")
        if self.crashed:
            problems.append(f"crashed: {', '.join(self.crashed)}")
        return problems


async def account(pipeline: Pipeline, deliveries: Sequence[Delivery]) -> Tally:
    """Follow every sent body: raw topic (by its bytes), events topic and table (by ingest id)."""
    kafka = pipeline.kafka
    raw, events, dead = await asyncio.gather(
        read_topic(kafka, kafka.raw_topic),
        read_topic(kafka, kafka.events_topic),
        read_topic(kafka, kafka.dlq_topic),
    )
    by_digest = {delivery.digest: index for index, delivery in enumerate(deliveries)}
    delivery_of_ingest_id: dict[str, int] = {}
    for record in raw:
        index = by_digest.get(hashlib.sha256(record.value or b"").hexdigest())
        ingest_id = record.header("hookbus-ingest-id")
        if index is not None and ingest_id is not None:
            delivery_of_ingest_id[ingest_id] = index
    in_topic = {delivery_of_ingest_id.get(record.header("ce_ingestid") or "") for record in events} - {None}
    rows = await table_rows(pipeline.dsn)
    rows_per_delivery = Counter(delivery_of_ingest_id.get(ingest_id) for _, ingest_id in rows)
    stored = {index for index in rows_per_delivery if index is not None}
    accepted = {index for index, delivery in enumerate(deliveries) if delivery.accepted}
    lost = sorted(accepted - stored)
    refusals = Counter(
        attempt for delivery in deliveries for attempt in delivery.attempts if not attempt.startswith("2")
    )
    duplicates = sum(count - 1 for index, count in rows_per_delivery.items() if index is not None and count > 1)
    duplicates += len(rows) - len({event_id for event_id, _ in rows})
    return Tally(
        sent=len(deliveries),
        answered_2xx=len(accepted),
        refusals=dict(sorted(refusals.items())),
        never_2xx=len(deliveries) - len(accepted),
        raw_records=len(raw),
        topic_records=len(events),
        in_topic=len(in_topic),
        redelivered=len(events) - len(in_topic),
        rows=len(rows),
        duplicates=duplicates,
        lost=len(lost),
        other_5xx=sum(count for status, count in refusals.items() if status.startswith("5") and status != "503"),
        dead_letters=len(dead),
        arrived_without_2xx=len(stored - accepted),
        crashed=tuple(pipeline.crashed()),
        lost_examples=tuple(f"{deliveries[index].source.name}:{deliveries[index].attempts}" for index in lost[:5]),
    )


def secrets_in(text: str, secrets: Sequence[str]) -> list[str]:
    """Which of ``secrets`` occur in ``text``."""
    return [secret for secret in secrets if secret in text]


def iter_record_texts(records: Sequence[KafkaRecord]) -> Iterator[str]:
    """Every key, value, header name and header value of ``records``, as text to search."""
    for record in records:
        for part in (record.key, record.value):
            if part:
                yield part.decode("utf-8", errors="replace")
        for name, value in record.headers:
            yield name
            yield value.decode("utf-8", errors="replace")


# --- requests as bytes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What the gateway answered a request sent as bytes."""

    status: int
    body: bytes

    @property
    def ingest_id(self) -> str | None:
        """The id of a 2xx answer (``{"id": ...}``), the ingest id of the raw event."""
        if not 200 <= self.status < 300:
            return None
        with contextlib.suppress(ValueError):
            document = json.loads(self.body)
            ingest_id = document.get("id") if isinstance(document, dict) else None
            if isinstance(ingest_id, str):
                return ingest_id
        return None


def post_bytes(
    address: tuple[str, int], target: str, headers: Sequence[tuple[str, bytes]], body: bytes
) -> RawAnswer | None:
    """POST ``body`` to ``target`` with header values sent byte for byte (aiohttp's client refuses
    non-ASCII ones); blocking, so run it in a thread. ``None`` when the connection broke."""
    connection = http.client.HTTPConnection(*address, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        connection.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return RawAnswer(response.status, response.read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
