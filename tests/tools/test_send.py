"""``hookbus send``: its example events are what the gateway and the normalizer accept.

Offline, every example of every provider is judged by the gateway's own decision code and
mapped by the normalizer; live, every one is posted to a real gateway on the test broker.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml

from hookbus.config import HookbusConfig, KafkaConfig
from hookbus.kafka import make_consumer
from hookbus.provider import Credentials, provider, providers
from hookbus.rawevent import AuthMethod, RawEvent
from hookbus.request import Accept, RawRequest, Reason, Reject
from ingest.decision import decide, kept_headers
from ingest.server import serve
from normalizer.normalizer import Normalizer
from tests.support import free_port
from tools.devstack import DevOptions, DevState, RunningDev, dev_config_document, load_dev_config
from tools.send import example_body, send_events, sign, stored_credentials

ALL_EXAMPLES = [(name, event_type) for name, item in providers().items() for event_type in item.examples.event_types]
SIGNING_PROVIDERS = [name for name, item in providers().items() if item.signs]
LOOPBACK = "127.0.0.1"


@pytest.fixture
def dev_state(tmp_path: Path) -> DevState:
    return DevState.prepare(tmp_path / "dev", yaml.safe_dump(dev_config_document()))


def dev_config(state: DevState, *, kafka: KafkaConfig | None = None, port: int = 8080) -> HookbusConfig:
    """The example configuration as ``hookbus dev`` loads it, on the test's topics when given."""
    options = DevOptions(
        state_dir=state.directory,
        port=port,
        topic_prefix=kafka.raw_topic.removesuffix(".raw") if kafka is not None else "hookbus",
    )
    bootstrap = kafka.bootstrap_servers if kafka is not None else "127.0.0.1:9092"
    return load_dev_config(state, options, bootstrap)


def _normalized(config: HookbusConfig, name: str, event_type: str, state: DevState) -> tuple[Accept, str, bool]:
    """The verdict, the canonical type and the knowntype flag of one fresh example."""
    source = config.source(name)
    assert source is not None
    now = time.time()
    body = example_body(name, event_type, now=now)
    signed = sign(name, body, stored_credentials(state, name), event_type=event_type, now=now)
    request = RawRequest.build(
        method="POST", body=body, client_addr=LOOPBACK, headers=signed.headers, query=signed.query
    )
    verdict = decide(source, request, now)
    assert isinstance(verdict, Accept), (name, event_type, verdict)
    kept = kept_headers(source)
    raw = RawEvent(
        source=source.name,
        provider=name,
        ingest_id=uuid.uuid4().hex,
        received_at=now,
        body=body,
        content_type=signed.headers["Content-Type"],
        auth=verdict.auth,
        headers={header.lower(): value for header, value in signed.headers.items() if header.lower() in kept},
    )
    event = Normalizer({item.name: item for item in config.sources}).normalize(raw)
    return verdict, event.type, bool(event.extensions["knowntype"])


def test_every_documented_event_type_has_an_example(dev_state: DevState) -> None:
    config = dev_config(dev_state)
    for name, item in providers().items():
        mapped = {_normalized(config, name, event_type, dev_state)[1] for event_type in item.examples.event_types}
        documented = set(item.mapper.known_types.values())
        # A table naming a placeholder (generic.<source>.received) is the source's own vocabulary.
        if not any("<" in canonical for canonical in documented):
            assert mapped == documented, name


def test_each_send_is_a_distinct_event() -> None:
    for name, event_type in ALL_EXAMPLES:
        assert example_body(name, event_type) != example_body(name, event_type), (name, event_type)


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="no event type"):
        example_body("october", "deleted_everything")


def test_the_octamile_approval_carries_a_valid_pdf_certificate() -> None:
    body = orjson.loads(example_body("octamile", "approved"))
    assert (body["status"], body["crtfctType"]) == ("a", "pdf")
    document = base64.b64decode(body["crtfct"], validate=True)
    assert document.startswith(b"%PDF-1.")
    assert document.rstrip().endswith(b"%%EOF")
    # The cross-reference table must point at each object exactly, or readers repair or refuse it.
    xref_at = int(re.findall(rb"startxref\n(\d+)\n", document)[-1])
    assert document[xref_at:].startswith(b"xref\n")
    offsets = [int(offset) for offset in re.findall(rb"^(\d{10}) 00000 n $", document, flags=re.MULTILINE)]
    assert offsets
    for number, offset in enumerate(offsets, start=1):
        assert document[offset:].startswith(b"%d 0 obj\n" % number)
    declined = orjson.loads(example_body("octamile", "declined"))
    assert declined["status"] == "d"
    assert "crtfct" not in declined


@pytest.mark.parametrize(("provider_name", "event_type"), ALL_EXAMPLES)
def test_examples_pass_verification_and_normalize(provider_name: str, event_type: str, dev_state: DevState) -> None:
    config = dev_config(dev_state)
    verdict, event_type_mapped, known = _normalized(config, provider_name, event_type, dev_state)
    item = provider(provider_name)
    source = config.source(provider_name)
    assert source is not None
    expected_auth = AuthMethod.SIGNATURE if item.verifier.authenticates(source) else AuthMethod.API_KEY
    assert verdict == Accept(expected_auth)
    assert known is True
    assert event_type_mapped.startswith(f"{provider_name}.")


@pytest.mark.parametrize("provider", [*SIGNING_PROVIDERS, "generic"])
def test_a_request_signed_with_another_secret_is_rejected(provider: str, dev_state: DevState) -> None:
    config = dev_config(dev_state)
    source = config.source(provider)
    assert source is not None
    now = time.time()
    body = example_body(provider, now=now)
    wrong = Credentials(secret=b"not-the-secret", api_key=dev_state.api_key(provider))
    signed = sign(provider, body, wrong, now=now)
    request = RawRequest.build(
        method="POST", body=body, client_addr=LOOPBACK, headers=signed.headers, query=signed.query
    )

    verdict = decide(source, request, now)

    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.BAD_SIGNATURE


@dataclass(frozen=True, slots=True)
class LiveGateway:
    url: str
    config: HookbusConfig
    state: DevState


@pytest.fixture
async def live_gateway(kafka_config: KafkaConfig, dev_state: DevState) -> AsyncIterator[LiveGateway]:
    """The gateway serving the example configuration on a free port and the test's topics."""
    port = free_port()
    config = dev_config(dev_state, kafka=kafka_config, port=port)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(config, host=LOOPBACK, port=port, stop=stop, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    assert ready.is_set(), "the gateway did not start within 60 s"
    try:
        yield LiveGateway(f"http://{LOOPBACK}:{port}", config, dev_state)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _raw_ingest_ids(config: HookbusConfig, expected: int) -> list[str]:
    """The ingest ids of the first ``expected`` records of the raw topic (bounded wait)."""
    consumer = make_consumer(config.kafka, config.kafka.raw_topic, group_id=f"test-{uuid.uuid4().hex}")
    await consumer.start()
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(ids) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    ids.append(RawEvent.from_kafka(record.headers, record.value).ingest_id)
    finally:
        await consumer.stop()
    return ids


async def test_every_example_is_accepted_by_a_live_gateway(live_gateway: LiveGateway) -> None:
    accepted: list[str] = []
    for name, event_type in ALL_EXAMPLES:
        answers = await send_events(
            url=live_gateway.url,
            source=name,
            provider_name=name,
            event_type=event_type,
            credentials=stored_credentials(live_gateway.state, name),
        )
        assert [answer.status for answer in answers] == [200], (name, event_type, answers)
        assert answers[0].ingest_id, (name, event_type)
        accepted.append(answers[0].ingest_id)

    # 2xx means Kafka acknowledged: every accepted request is on the raw topic.
    assert sorted(await _raw_ingest_ids(live_gateway.config, len(accepted))) == sorted(accepted)


async def _run_send(*arguments: str, cwd: Path | None = None, user_state: Path | None = None) -> tuple[int, str, str]:
    environment = {**os.environ}
    if user_state is not None:
        environment["XDG_STATE_HOME"] = str(user_state)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookbus",
        "send",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_command_sends_with_the_dev_secrets_and_reports_the_answer(live_gateway: LiveGateway) -> None:
    state_dir = str(live_gateway.state.directory)

    code, out, _ = await _run_send("october", "--url", live_gateway.url, "--state-dir", state_dir, "--count", "2")

    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    ids = [re.fullmatch(r"update_request 200 id=(\S+)", line) for line in lines]
    assert all(ids), out
    assert len({match.group(1) for match in ids if match}) == 2

    code, out, _ = await _run_send(
        "octamile", "declined", "--url", live_gateway.url, "--state-dir", state_dir, "--api-key", "wrong"
    )

    assert code == 1
    assert out.startswith("declined 401 bad_api_key"), out


async def test_the_command_finds_the_last_dev_stack_from_any_directory(
    live_gateway: LiveGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_state = tmp_path / "user-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(user_state))
    state = live_gateway.state
    RunningDev(state.directory, live_gateway.url, state.directory / "config.yaml").record()

    code, out, err = await _run_send("october", cwd=tmp_path, user_state=user_state)

    assert code == 0, err
    assert re.fullmatch(r"update_request 200 id=\S+\n", out), out


async def test_the_command_refuses_to_send_without_credentials(tmp_path: Path) -> None:
    code, _, err = await _run_send("officernd", "--url", f"http://{LOOPBACK}:9", "--state-dir", str(tmp_path))

    assert code == 2
    assert f"{tmp_path / 'secrets.env'}" in err
    assert "Start `hookbus dev` first, pass --state-dir DIR" in err


async def test_without_a_dev_stack_anywhere_the_error_says_what_to_do(tmp_path: Path) -> None:
    code, _, err = await _run_send("october", cwd=tmp_path, user_state=tmp_path / "user-state")

    assert code == 2
    assert f"{tmp_path / 'var' / 'dev' / 'secrets.env'}" in err
    assert f"{tmp_path / 'user-state' / 'hookbus'}" in err
    assert "Start `hookbus dev` first" in err
