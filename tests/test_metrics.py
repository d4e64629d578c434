"""``/metrics`` of every process after real traffic, and the names the dashboard and the alert rules use.

The pipeline runs as the operator runs it: ``hookbus gateway --workers 2``, ``hookbus normalizer``
and ``hookbus sink lite`` (SQLite), each a process with its own ops port, on topics of the test
broker that belong to this module. Requests are signed as OfficeRnD signs them and sent on a
new connection each, so the kernel spreads them over both workers; whichever worker answers a
scrape must count them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from hookbus.config import KafkaConfig, SourceConfig
from hookbus.metrics import OTHER, UNKNOWN
from hookbus.provider import Credentials
from hookbus.rawevent import SOURCE_HEADER
from hookbus.stage.runtime import Outgoing
from normalizer.metrics import NormalizerMetrics
from tests.conftest import own_topics
from tests.reliability.harness import pipeline_document
from tests.sinks.helpers import eventually
from tests.sinks.test_tables import Record
from tests.support import free_port
from tools.localprocess import LOOPBACK
from tools.send import example_body, sign, webhook_url

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

REPOSITORY = Path(__file__).resolve().parent.parent
DASHBOARD = REPOSITORY / "deploy" / "grafana" / "hookbus.json"
ALERT_RULES = REPOSITORY / "deploy" / "prometheus" / "alerts.yaml"
SOURCE = "rnd"
SINK = "lite"
SECRET = "metrics-officernd-secret-7c1e"
CREDENTIALS = Credentials(secret=SECRET.encode())
ACCEPTED = 20
SPOOL_MAX_BYTES = 64 * 1024 * 1024
START_TIMEOUT_SECONDS = 60.0
COUNT_TIMEOUT_SECONDS = 45.0
# Every series name a family of each type is exposed under.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@dataclasses.dataclass(frozen=True, slots=True)
class Process:
    name: str
    process: asyncio.subprocess.Process
    ops_port: int
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines


@dataclasses.dataclass(frozen=True, slots=True)
class Pipeline:
    gateway: Process
    normalizer: Process
    sink: Process
    gateway_port: int
    normalizer_group: str
    http: aiohttp.ClientSession

    async def scrape(self, process: Process) -> dict[str, Metric]:
        """``/metrics`` of ``process``, parsed: every family by name."""
        async with self.http.get(f"http://{LOOPBACK}:{process.ops_port}/metrics") as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "text/plain"
            text = await response.text()
        return {family.name: family for family in text_string_to_metric_families(text)}

    async def post(self, path_source: str, body: bytes, credentials: Credentials = CREDENTIALS) -> int:
        signed = sign("officernd", body, credentials)
        url = webhook_url(f"http://{LOOPBACK}:{self.gateway_port}", path_source)
        async with self.http.post(url, data=body, headers=signed.headers) as response:
            return response.status


def value(families: Mapping[str, Metric], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or ``None`` when there is none."""
    family_name = re.sub(r"(_total|_bucket|_count|_sum)$", "", name)
    family = families.get(family_name) or families.get(name)
    if family is None:
        return None
    for sample in family.samples:
        if sample.name == name and sample.labels == labels:
            return float(sample.value)
    return None


def samples(families: Mapping[str, Metric], name: str, **labels: str) -> list[float]:
    """Every value of the sample ``name`` whose labels include ``labels``."""
    return [
        float(sample.value)
        for family in families.values()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def counted_by_process(directory: Path, counter: str, labels: Mapping[str, str]) -> Counter[str]:
    """What each process wrote to its file in the multiprocess directory for ``counter`` with ``labels``."""
    counted: Counter[str] = Counter()
    for path in directory.glob("counter_*.db"):
        for key, count, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            name, _sample, sample_labels, _help = json.loads(key)
            if name == counter and sample_labels == labels:
                counted[path.stem] += int(count)
    return counted


def exposed_names(families: Iterable[Metric]) -> set[str]:
    return {family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))}


def normalizer_group(kafka: KafkaConfig) -> str:
    return f"{kafka.raw_topic.removesuffix('.raw')}.normalizer"  # as pipeline_document names it


def config_file(path: Path, kafka: KafkaConfig, *, ops_port: int, gateway_port: int) -> Path:
    document = pipeline_document(
        kafka,
        port=gateway_port,
        dsn="postgresql://unused",
        workdir=path.parent,
        # OfficeRnD never retries: its sources spool, so the spool's gauges are there.
        sources=[{"name": SOURCE, "provider": "officernd", "secrets": [SECRET]}],
        gateway={"spool_max_bytes": SPOOL_MAX_BYTES},
    )
    sinks = {SINK: {"type": "sqlite", "path": str(path.parent / "hookbus.db"), "batch_timeout_seconds": 0.1}}
    document = {**document, "ops": {"host": LOOPBACK, "port": ops_port}, "sinks": sinks}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def hookbus_process(name: str, directory: Path, ops_port: int, *arguments: str) -> AsyncIterator[Process]:
    """``hookbus <arguments>`` until the block ends (SIGTERM, then its exit awaited), once ``/healthz`` answers."""
    log = directory / f"{name}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hookbus", "--log-format", "json", *arguments, stderr=output, stdout=output
        )
    running = Process(name, process, ops_port, log)
    try:
        async with aiohttp.ClientSession() as http:

            async def alive() -> bool:
                assert process.returncode is None, log.read_text(encoding="utf-8")
                try:
                    async with http.get(f"http://{LOOPBACK}:{ops_port}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            assert await eventually(alive, timeout=START_TIMEOUT_SECONDS), f"{name} did not start"
        yield running
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            await process.wait()


@pytest.fixture(scope="module")
async def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    directory = tmp_path_factory.mktemp("metrics")
    gateway_port = free_port()
    ports = {name: free_port() for name in ("gateway", "normalizer", "sink")}
    async with own_topics(kafka_bootstrap) as kafka:
        configs = {
            name: str(config_file(directory / f"{name}.yaml", kafka, ops_port=port, gateway_port=gateway_port))
            for name, port in ports.items()
        }
        async with (
            hookbus_process(
                "gateway", directory, ports["gateway"], "gateway", "--config", configs["gateway"], "--workers", "2"
            ) as gateway,
            hookbus_process(
                "normalizer", directory, ports["normalizer"], "normalizer", "--config", configs["normalizer"]
            ) as normalizer,
            hookbus_process("sink", directory, ports["sink"], "sink", SINK, "--config", configs["sink"]) as sink,
            # A new connection for every request: the kernel picks a worker per connection.
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        ):
            pipeline = Pipeline(gateway, normalizer, sink, gateway_port, normalizer_group(kafka), http)
            statuses = [await pipeline.post(SOURCE, example_body("officernd")) for _ in range(ACCEPTED)]
            statuses.append(await pipeline.post(SOURCE, b"not json, but signed"))  # accepted, dead-lettered
            statuses.append(await pipeline.post(SOURCE, b"{}", Credentials(secret=b"the wrong secret")))
            statuses.append(await pipeline.post("no-such-source", b"{}"))
            assert statuses == [200] * (ACCEPTED + 1) + [401, 404]
            yield pipeline


async def test_the_gateway_counts_every_request_whichever_of_its_two_workers_answered_it_or_the_scrape(
    pipeline: Pipeline,
) -> None:
    families = await pipeline.scrape(pipeline.gateway)
    accepted = {"source": SOURCE, "verdict": "accept", "reason": "none", "status": "200"}
    assert value(families, "hookbus_gateway_requests_total", **accepted) == ACCEPTED + 1
    assert (
        value(
            families,
            "hookbus_gateway_requests_total",
            source=SOURCE,
            verdict="reject",
            reason="bad_signature",
            status="401",
        )
        == 1
    )
    # The path named a source that does not exist: one label value, not the name sent.
    assert (
        value(
            families,
            "hookbus_gateway_requests_total",
            source=UNKNOWN,
            verdict="reject",
            reason="unknown_source",
            status="404",
        )
        == 1
    )
    assert samples(families, "hookbus_gateway_requests_total", source="no-such-source") == []
    # Bodies read whole: the accepted ones and the one whose signature was wrong.
    assert value(families, "hookbus_gateway_request_body_bytes_count", source=SOURCE) == ACCEPTED + 2
    assert (
        value(families, "hookbus_gateway_publish_duration_seconds_count", source=SOURCE, outcome="kafka")
        == ACCEPTED + 1
    )
    assert (
        value(families, "hookbus_gateway_request_duration_seconds_count", source=SOURCE, verdict="accept")
        == ACCEPTED + 1
    )
    # The in-flight gauges are sampled every second: the sample after the last answer says 0.
    for _ in range(50):
        if value(families, "hookbus_gateway_inflight_requests") == 0:
            break
        await asyncio.sleep(0.1)
        families = await pipeline.scrape(pipeline.gateway)
    assert value(families, "hookbus_gateway_inflight_requests") == 0
    assert value(families, "hookbus_gateway_inflight_body_bytes") == 0
    assert value(families, "hookbus_gateway_spool_records", source=SOURCE) == 0
    # Each worker has half the spool's room; the live workers are summed.
    assert value(families, "hookbus_gateway_spool_limit_bytes", source=SOURCE) == SPOOL_MAX_BYTES

    # Both workers answered requests: each counted some of them in its own file.
    [directory] = [line["path"] for line in pipeline.gateway.log_lines() if line.get("event") == "metrics_directory"]
    accepted_by_worker = counted_by_process(Path(directory), "hookbus_gateway_requests", accepted)
    assert len(accepted_by_worker) == 2, accepted_by_worker
    assert all(accepted_by_worker.values()), accepted_by_worker
    # Whichever worker answers the scrape sums both.
    for _ in range(6):
        again = await pipeline.scrape(pipeline.gateway)
        assert value(again, "hookbus_gateway_requests_total", **accepted) == ACCEPTED + 1


async def test_the_normalizer_counts_events_by_provider_and_documented_type_and_dead_letters_by_reason(
    pipeline: Pipeline,
) -> None:
    group = pipeline.normalizer_group

    async def counted() -> dict[str, Metric] | None:
        families = await pipeline.scrape(pipeline.normalizer)
        lag = samples(families, "hookbus_stage_consumer_lag_records", consumer_group=group)
        done = value(families, "hookbus_normalizer_records_total", provider="officernd") == ACCEPTED + 1
        return families if done and len(lag) == 3 and sum(lag) == 0 else None

    families = await eventually(counted, timeout=COUNT_TIMEOUT_SECONDS)
    assert families is not None, "the normalizer did not count every record, or its lag stayed above 0"
    events = {"provider": "officernd", "type": "officernd.member.updated"}
    assert value(families, "hookbus_normalizer_events_total", **events) == ACCEPTED
    assert (
        value(families, "hookbus_normalizer_dead_letters_total", provider="officernd", reason="unparseable_body") == 1
    )
    batches = value(families, "hookbus_stage_batch_duration_seconds_count", consumer_group=group)
    assert batches is not None
    assert batches >= 1


async def test_the_sink_counts_what_it_wrote_how_long_writing_took_and_how_old_each_event_was(
    pipeline: Pipeline,
) -> None:
    group = f"hookbus-sink-{SINK}"

    async def counted() -> dict[str, Metric] | None:
        families = await pipeline.scrape(pipeline.sink)
        lag = samples(families, "hookbus_stage_consumer_lag_records", consumer_group=group)
        done = value(families, "hookbus_sink_events_written_total", sink=SINK) == ACCEPTED
        return families if done and len(lag) == 3 and sum(lag) == 0 else None

    families = await eventually(counted, timeout=COUNT_TIMEOUT_SECONDS)
    assert families is not None, "the sink did not count every event, or its lag stayed above 0"
    writes = value(families, "hookbus_sink_write_duration_seconds_count", sink=SINK)
    assert writes is not None
    assert writes >= 1
    # Every event's age at its write: the pipeline's end-to-end latency.
    assert value(families, "hookbus_sink_event_age_seconds_count", sink=SINK) == ACCEPTED
    assert samples(families, "hookbus_sink_dead_letters_total", sink=SINK) == []


async def test_every_metric_the_dashboard_and_the_alert_rules_query_is_exposed_by_some_process(
    pipeline: Pipeline,
) -> None:
    exposed: set[str] = set()
    for process in (pipeline.gateway, pipeline.normalizer, pipeline.sink):
        exposed |= exposed_names((await pipeline.scrape(process)).values())
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) >= 8
    queried = {name for expression in expressions for name in metric_names(expression)}
    assert queried, "no metric name found in the expressions"
    assert sorted(queried - exposed) == []


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside label matchers and strings."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_matchers)
    return set(re.findall(r"\bhookbus_[a-zA-Z0-9_:]+", without_groupings))


def test_metric_names_are_read_from_selectors_not_from_labels_or_groupings() -> None:
    expression = (
        'sum by (source, hookbus_fake) (rate(hookbus_gateway_requests_total{reason="hookbus_not_a_metric"}[5m]))'
        " / ignoring(reason) hookbus_gateway_spool_bytes"
    )
    assert metric_names(expression) == {"hookbus_gateway_requests_total", "hookbus_gateway_spool_bytes"}


def test_the_normalizer_labels_an_undocumented_type_other_and_an_unconfigured_source_unknown() -> None:
    standard = SourceConfig(name="std", provider="standard_webhooks")
    metrics = NormalizerMetrics([standard])

    def published(source: bytes, label: str, *, dead_letter: bool = False) -> Outgoing:
        record = Record(topic="raw", partition=0, offset=0, headers=((SOURCE_HEADER, source),))
        return Outgoing("out", None, b"", [], record, label, dead_letter)

    def counts() -> list[float]:
        return [
            REGISTRY.get_sample_value(name, labels) or 0.0
            for name, labels in (
                ("hookbus_normalizer_events_total", {"provider": "standard_webhooks", "type": OTHER}),
                ("hookbus_normalizer_records_total", {"provider": UNKNOWN}),
                ("hookbus_normalizer_dead_letters_total", {"provider": UNKNOWN, "reason": "not_a_raw_event"}),
            )
        ]

    before = counts()
    metrics.count(
        [
            # Standard Webhooks names its types in the payload: none is documented, so none is a label.
            published(b"std", "com.standardwebhooks.invoice.paid"),
            published(b"elsewhere", "not_a_raw_event", dead_letter=True),
        ]
    )
    assert [later - earlier for earlier, later in zip(before, counts(), strict=True)] == [1, 1, 1]
