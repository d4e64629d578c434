"""``hookbus gateway`` as a process: draining on SIGTERM, what its logs never contain, config errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yaml

from hookbus.config import KafkaConfig, parse_config
from hookbus.kafka import UnsafeTopicsError
from ingest.publisher import KafkaPublisher
from ingest.server import _keep_connecting, serve
from tests.ingest.conftest import RawTopic, eventually
from tests.support import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

SIGNING_SECRET = "whsec-officernd-5d1c9a7e3b"
API_KEY = "octamile-key-84f2c61d0e9b"
SHUTDOWN_TIMEOUT_SECONDS = 10.0
EXIT_CONFIG_ERROR = 2


def write_config(path: Path, kafka: KafkaConfig, port: int) -> Path:
    config = {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "raw_topic": kafka.raw_topic,
            "events_topic": kafka.events_topic,
            "dlq_topic": kafka.dlq_topic,
            "topic_partitions": kafka.topic_partitions,
            "replication_factor": kafka.replication_factor,
            "development_mode": kafka.development_mode,
        },
        # The drain test holds bodies for seconds across SIGTERM: the answer deadline must not cut them.
        "gateway": {
            "host": "127.0.0.1",
            "port": port,
            "shutdown_timeout_seconds": SHUTDOWN_TIMEOUT_SECONDS,
            "answer_deadline_seconds": SHUTDOWN_TIMEOUT_SECONDS,
        },
        "sources": [
            {"name": "rnd", "provider": "officernd", "secrets": [SIGNING_SECRET]},
            {"name": "insurer", "provider": "octamile", "api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]},
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def officernd_signature(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> str:
    """The officernd-signature header as OfficeRnD documents it: HMAC-SHA256(secret, body + "." + t)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), body + b"." + str(timestamp).encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},signature={digest}"


def officernd_body(number: int) -> bytes:
    return json.dumps(
        {"event": f"evt-{number:06d}", "eventType": "member.updated", "data": {"object": {"_id": f"m-{number}"}}}
    ).encode()


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    port: int
    stderr: bytearray = field(default_factory=bytearray)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stderr.decode().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError as exc:
                raise AssertionError(f"not a JSON log line: {line!r}") from exc
        return lines


async def run_hookbus(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@contextlib.asynccontextmanager
async def gateway_process(config: Path, port: int, *extra: str) -> AsyncIterator[GatewayProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", "gateway", "--config", str(config), *extra, stderr=asyncio.subprocess.PIPE
    )
    gateway = GatewayProcess(process, port)

    async def collect() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(65536):
            gateway.stderr += chunk

    collector = asyncio.create_task(collect())
    try:
        await wait_until_alive(gateway)
        yield gateway
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await collector


async def wait_until_alive(gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession() as http:

        async def alive() -> bool:
            assert gateway.process.returncode is None, gateway.stderr.decode()
            try:
                async with http.get(gateway.url("/healthz")) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(alive, timeout=60, interval=0.1)


async def stop_gracefully(gateway: GatewayProcess) -> int:
    """SIGTERM, then the exit code, which must come within the shutdown timeout."""
    gateway.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(SHUTDOWN_TIMEOUT_SECONDS + 2):
        return await gateway.process.wait()


async def post_signed(
    http: aiohttp.ClientSession, gateway: GatewayProcess, number: int, body: aiohttp.payload.Payload | None = None
) -> str | None:
    """Send one signed OfficeRnD request; its ingest id when answered 2xx, else ``None``."""
    raw = officernd_body(number)
    headers = {"Content-Type": "application/json", "officernd-signature": officernd_signature(raw)}
    try:
        async with http.post(gateway.url("/webhooks/rnd"), data=body or raw, headers=headers) as response:
            if 200 <= response.status < 300:
                ingest_id: str = (await response.json())["id"]
                return ingest_id
            return None
    except aiohttp.ClientError:
        return None


@dataclass
class HeldBodies:
    """Request bodies sent in two halves: the second only once ``release`` is set."""

    expected: int
    started: int = 0
    all_started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def body(self, number: int) -> aiohttp.payload.Payload:
        raw = officernd_body(number)

        async def halves() -> AsyncIterator[bytes]:
            yield raw[: len(raw) // 2]
            self.started += 1
            if self.started == self.expected:
                self.all_started.set()
            await self.release.wait()
            yield raw[len(raw) // 2 :]

        return aiohttp.payload.AsyncIterablePayload(halves())


async def wait_until_refused(port: int) -> None:
    """Until the gateway no longer accepts connections (its listening socket is closed)."""

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            return False  # queued on the listening socket as it closed: the next try is refused
        writer.close()
        return False

    await eventually(refused, timeout=SHUTDOWN_TIMEOUT_SECONDS, interval=0.05)


async def test_sigterm_drains_requests_in_flight(
    tmp_path: Path, kafka_config: KafkaConfig, raw_topic: RawTopic
) -> None:
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", kafka_config, port)
    held = HeldBodies(expected=200)
    async with (
        gateway_process(config, port) as gateway,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        requests = [
            asyncio.create_task(post_signed(http, gateway, number, held.body(number)))
            for number in range(held.expected)
        ]
        async with asyncio.timeout(30):
            await held.all_started.wait()
        # The gateway accepts connections in order: once a later one is answered, every request above is in.
        async with aiohttp.ClientSession() as probe, probe.get(gateway.url("/healthz")) as response:
            assert response.status == 200
        gateway.process.send_signal(signal.SIGTERM)
        await wait_until_refused(port)
        held.release.set()
        async with asyncio.timeout(SHUTDOWN_TIMEOUT_SECONDS + 2):
            ingest_ids = await asyncio.gather(*requests)
            exit_code = await gateway.process.wait()
    assert exit_code == 0, gateway.stderr.decode()[-2000:]
    events = [line.get("event") for line in gateway.log_lines()]
    assert events.count("request") == held.expected
    assert "request" not in events[: events.index("draining")]
    assert None not in ingest_ids
    stored = await raw_topic.records_by_ingest_id()
    assert set(ingest_ids) <= set(stored)


async def test_logs_hold_no_secret_signature_api_key_or_body(
    tmp_path: Path, kafka_config: KafkaConfig, raw_topic: RawTopic
) -> None:
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", kafka_config, port)
    body = officernd_body(424242)
    forbidden = [SIGNING_SECRET, API_KEY, body.decode(), "evt-424242"]
    async with gateway_process(config, port) as gateway, aiohttp.ClientSession() as http:
        good, bad = officernd_signature(body), officernd_signature(body, secret="not-the-secret")
        forbidden += [good, bad, good.split("signature=")[1], bad.split("signature=")[1]]
        sends = [
            ("rnd", {}, {"officernd-signature": good}),
            ("rnd", {}, {"officernd-signature": bad}),
            ("rnd", {}, {"officernd-signature": "t=garbage," + bad}),
            ("insurer", {"api-key": API_KEY}, {}),
            ("insurer", {}, {"X-API-Key": API_KEY}),
            ("insurer", {"api-key": API_KEY[::-1]}, {}),
        ]
        forbidden.append(API_KEY[::-1])
        statuses = []
        for source, query, headers in sends:
            async with http.post(
                gateway.url(f"/webhooks/{source}"),
                params=query,
                data=body,
                headers={"Content-Type": "application/json", **headers},
            ) as response:
                statuses.append(response.status)
                answer = await response.text()
                assert SIGNING_SECRET not in answer
                assert API_KEY not in answer
        assert await stop_gracefully(gateway) == 0
    assert statuses == [200, 401, 401, 200, 200, 401]
    request_lines = [line for line in gateway.log_lines() if line.get("event") == "request"]
    assert [line["status"] for line in request_lines] == statuses
    for line in request_lines:
        assert {"source", "verdict", "reason", "status", "duration_ms", "ingest_id", "client_addr"} <= set(line)
    log_text = gateway.stderr.decode()
    assert [text for text in forbidden if text in log_text] == []


async def test_workers_share_the_port_and_stop_together(
    tmp_path: Path, kafka_config: KafkaConfig, raw_topic: RawTopic
) -> None:
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", kafka_config, port)
    async with gateway_process(config, port, "--workers", "2") as gateway, aiohttp.ClientSession() as http:
        ingest_ids = [await post_signed(http, gateway, number) for number in range(20)]
        assert await stop_gracefully(gateway) == 0
    assert None not in ingest_ids
    assert set(ingest_ids) <= set(await raw_topic.records_by_ingest_id())
    # Read as text (two processes share stderr, and a log line is not written in one piece):
    # each worker names its pid in its "listening" line.
    assert len(set(re.findall(r'"pid":(\d+)', gateway.stderr.decode()))) == 2


@pytest.mark.parametrize(
    ("source", "key"),
    [
        # Read by the configuration loader: OfficeRnD signs, so a secret is required.
        ({"name": "rnd", "provider": "officernd"}, "secrets"),
        # Checked by the gateway's provider options: secrets without a signature scheme.
        ({"name": "crm", "provider": "generic", "secrets": ["s3cret"], "api_key": "k"}, "secrets"),
    ],
)
async def test_config_error_exits_2_with_one_line(tmp_path: Path, source: dict[str, Any], key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    code, stderr = await run_hookbus("gateway", "--config", str(path))
    assert code == EXIT_CONFIG_ERROR
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(path) in lines[0]
    assert repr(source["name"]) in lines[0]
    assert repr(key) in lines[0]


@pytest.mark.kafka
async def test_the_gateway_refuses_to_start_on_unsafe_topics_outside_development_mode(
    tmp_path: Path, kafka_config: KafkaConfig
) -> None:
    strict = dataclasses.replace(kafka_config, development_mode=False)
    source = {"name": "insurer", "provider": "octamile", "api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"]}
    config = dataclasses.replace(
        parse_config({"sources": [source], "gateway": {"spool_dir": str(tmp_path / "spool")}}), kafka=strict
    )

    with pytest.raises(UnsafeTopicsError) as refused:
        await serve(config, host="127.0.0.1", port=free_port(), stop=asyncio.Event())

    assert {problem.topic for problem in refused.value.problems} == {
        strict.raw_topic,
        strict.events_topic,
        strict.dlq_topic,
    }


@pytest.mark.kafka
async def test_a_gateway_connecting_in_the_background_keeps_spooling_and_says_why_while_the_topics_are_unsafe(
    kafka_config: KafkaConfig,
) -> None:
    strict = dataclasses.replace(kafka_config, development_mode=False)
    config = dataclasses.replace(parse_config({}), kafka=strict)
    publisher = KafkaPublisher.from_config(config)

    async def refused() -> bool:
        return any(entry["event"] == "unsafe_topics" for entry in logs)

    with structlog.testing.capture_logs() as logs:
        connecting = asyncio.create_task(_keep_connecting(config, publisher))
        try:
            await eventually(refused, timeout=60)
            assert not connecting.done()
        finally:
            connecting.cancel()
            await asyncio.wait([connecting])
            await publisher.stop()

    refusal = next(entry for entry in logs if entry["event"] == "unsafe_topics")
    assert refusal["reason"] == "unsafe_topics"
    assert f"{strict.raw_topic}: replication_unsafe: " in " ".join(refusal["problems"])
