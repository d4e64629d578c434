"""Input that must not break the gateway, replayed requests, and secrets that must never leak.

One live pipeline for the module (``hookbus gateway``, ``hookbus normalizer``, ``hookbus sink
pg`` as processes, on the shared broker, which stays up): malformed framing is written on
raw sockets (aiohttp's client would refuse to send it), well-framed but hostile requests
come from hypothesis, slow clients trickle bytes. After every attack the gateway must still
answer ``/healthz``, its memory must stay bounded, no answer may be a 5xx (Kafka is up, so
not even the documented 503), and every refusal must carry a JSON body with an ``error``
reason. The last test scans every log, every Kafka record and every response of the module
for the secrets and API keys it used.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from hookbus.config import KafkaConfig
from providers.officernd.examples import SIGNATURE_HEADER as OFFICERND_SIGNATURE_HEADER
from tests.reliability.harness import (
    FULL_MODE,
    LOOPBACK,
    OCTAMILE,
    OCTOBER,
    OFFERTE_ADVISEUR,
    OFFICERND,
    SOURCES,
    KafkaRecord,
    Pipeline,
    Running,
    SignedSource,
    fresh_topics,
    iter_record_texts,
    pipeline_document,
    read_topic,
    secrets_in,
    table_rows,
)
from tests.reliability.report import ATTACKS, Finding
from tests.support import free_port, temporary_database
from tools.send import example_body

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

TOLERANCE_SECONDS = 3.0
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_SECONDS = 2.0
MAX_RSS_GROWTH_KIB = 100 * 1024
ANSWER_TIMEOUT_SECONDS = 8.0
HYPOTHESIS_EXAMPLES = 2000 if FULL_MODE else 150
MUTATIONS = 2000 if FULL_MODE else 150
SLOW_CLIENTS = 200 if FULL_MODE else 40
TRICKLE_INTERVAL_SECONDS = 0.1
TRICKLE_BYTES = 100 if FULL_MODE else 30
CONCURRENT_ATTACKS = 20
PIPELINE_TIMEOUT_SECONDS = 60.0
# In every body the module sends: bodies are not secrets, but no log may contain one.
BODY_MARKER = "body-marker-5e0c1f9a7b"
WRONG_API_KEY = "rel-wrong-api-key-6d2f8e1c"


@dataclass
class Live:
    """The module's running pipeline and everything the gateway answered, for the final scan."""

    pipeline: Pipeline
    running: Running
    baseline_rss_kib: int
    answers: list[bytes] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return LOOPBACK, self.pipeline.port


@pytest.fixture(scope="module")
async def fuzz_database(pg_dsn: str) -> AsyncIterator[str]:
    async with temporary_database(pg_dsn, prefix="hookbus_fuzz") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def live(
    kafka_bootstrap: str, fuzz_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    workdir = tmp_path_factory.mktemp("fuzz")
    kafka = fresh_topics(kafka_bootstrap)
    port = free_port()
    sources = [source.section(tolerance_seconds=TOLERANCE_SECONDS, max_body_bytes=MAX_BODY_BYTES) for source in SOURCES]
    document = pipeline_document(
        kafka,
        port=port,
        dsn=fuzz_database,
        workdir=workdir,
        sources=sources,
        gateway={"read_timeout_seconds": READ_TIMEOUT_SECONDS},
    )
    pipeline = Pipeline.write(workdir, kafka, port=port, dsn=fuzz_database, document=document)
    try:
        running = await pipeline.start()
        state = Live(pipeline, running, baseline_rss_kib=0)
        # Warm up first (imports, buffers, the producer's connections), so growth means a leak.
        for _ in range(20):
            status, _ = await post(state, OFFICERND, marked_body(OFFICERND))
            assert status == 200
        state.baseline_rss_kib = running.gateway.rss_kib()
        yield state
    finally:
        await asyncio.to_thread(pipeline.stop)
        await delete_topics(kafka)


async def delete_topics(kafka: KafkaConfig) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = (kafka.raw_topic, kafka.events_topic, kafka.dlq_topic, kafka.requests_topic)
        mine = [topic for topic in ours if topic in existing]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def marked_body(source: SignedSource) -> bytes:
    """A realistic event of ``source``'s provider carrying the body marker in an extra field."""
    document = orjson.loads(example_body(source.provider))
    document["note"] = f"{BODY_MARKER} {uuid.uuid4().hex}"
    return orjson.dumps(document)


async def post(
    state: Live, source: SignedSource, body: bytes, *, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """POST a correctly signed ``body`` to ``source``; the status and the raw answer."""
    signed = source.signed(body)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)) as http_session,
        http_session.post(
            f"http://{LOOPBACK}:{state.pipeline.port}/webhooks/{source.name}",
            data=body,
            headers={**signed.headers, **(headers or {})},
            params=signed.query,
        ) as response,
    ):
        answer = await response.read()
    state.answers.append(answer)
    return response.status, answer


# --- judging answers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


@dataclass
class Verdicts:
    """What the gateway answered to one kind of attack."""

    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    without_json_error: list[str] = field(default_factory=list)

    def judge(self, what: str, answer: Answer | None, *, head: bool = False) -> None:
        self.requests += 1
        if answer is None:
            self.statuses["closed"] += 1
            return
        self.statuses[str(answer.status)] += 1
        if answer.status >= 500:
            self.server_errors.append(f"{what}: {answer.status} {answer.body[:200]!r}")
        if answer.status >= 400 and not head and not has_json_error(answer.body):
            self.without_json_error.append(f"{what}: {answer.status} {answer.body[:120]!r}")

    def finding(self, name: str, rss_growth_kib: int) -> Finding:
        problems = []
        if self.server_errors:
            problems.append(f"{len(self.server_errors)} 5xx")
        if self.without_json_error:
            problems.append(f"{len(self.without_json_error)} refusals without a JSON error")
        if rss_growth_kib > MAX_RSS_GROWTH_KIB:
            problems.append(f"RSS grew {rss_growth_kib} KiB")
        numbers = {
            "requests": self.requests,
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": len(self.server_errors),
            "refusals_without_json_error": len(self.without_json_error),
            "rss_growth_kib": rss_growth_kib,
        }
        return Finding(ATTACKS, name, numbers, tuple(problems))


def has_json_error(body: bytes) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and isinstance(document.get("error"), str) and bool(document["error"])


def parse_answer(data: bytes) -> Answer | None:
    """The first HTTP response in ``data``; ``None`` when the gateway closed without answering."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    while head.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1")) and separator:
        # An interim answer (100 Continue): the final one follows.
        head, separator, rest = rest.partition(b"\r\n\r\n")
    if not separator or not head.startswith(b"HTTP/1."):
        return None
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return Answer(status, rest[:length] if length is not None else rest)


async def healthy_and_bounded(state: Live) -> int:
    """Assert the gateway still runs and answers /healthz; its RSS growth since warm-up in KiB."""
    gateway = state.running.gateway
    assert gateway.running, gateway.log_text()[-3000:]
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)) as http_session,
        http_session.get(f"http://{LOOPBACK}:{state.pipeline.port}/healthz") as response,
    ):
        assert response.status == 200
    return gateway.rss_kib() - state.baseline_rss_kib


def conclude(findings: list[Finding], verdicts: Verdicts, name: str, growth: int) -> None:
    findings.append(verdicts.finding(name, growth))
    assert not verdicts.server_errors, verdicts.server_errors[:5]
    assert not verdicts.without_json_error, verdicts.without_json_error[:5]
    assert growth <= MAX_RSS_GROWTH_KIB


# --- raw sockets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawCase:
    """Bytes written as they are, then ``trickled`` one byte per TRICKLE_INTERVAL_SECONDS.
    ``half_close`` ends the sending side afterwards (a truncated request)."""

    name: str
    data: bytes
    half_close: bool = False
    trickled: bytes = b""


def request_bytes(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"", *, version: bytes = b"1.1"
) -> bytes:
    lines = [
        method + b" " + target + b" HTTP/" + version,
        b"Host: 127.0.0.1",
        *(name + b": " + value for name, value in headers),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def officernd_request(body: bytes, *, extra: Sequence[tuple[bytes, bytes]] = (), length: int | None = None) -> bytes:
    signed = OFFICERND.signed(body)
    headers = [(name.encode(), value.encode()) for name, value in signed.headers.items()]
    headers.append((b"Content-Length", str(len(body) if length is None else length).encode()))
    return request_bytes(b"POST", b"/webhooks/officernd", [*headers, *extra], body)


def chunked(*chunks: bytes, end: bool = True) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + (b"0\r\n\r\n" if end else b"")


def malformed_cases() -> list[RawCase]:
    """Framing aiohttp's client will not produce; each must end in a 4xx or a closed connection."""
    body = marked_body(OFFICERND)
    signature = OFFICERND.signed(body).headers[OFFICERND_SIGNATURE_HEADER].encode()
    post_headers = [(b"Content-Type", b"application/json")]
    big = b"x" * (4 * MAX_BODY_BYTES)
    chunked_header = [(b"Transfer-Encoding", b"chunked")]
    return [
        RawCase("TLS handshake bytes on the HTTP port", bytes.fromhex("160301020001000001fc0303") + b"\x00" * 64),
        RawCase("request line without a target", b"GET\r\n\r\n"),
        RawCase("unknown HTTP version", request_bytes(b"POST", b"/webhooks/officernd", [], version=b"9.9")),
        RawCase("NUL in the method", request_bytes(b"P\x00ST", b"/webhooks/officernd", [])),
        RawCase("request line of 100 kB", request_bytes(b"GET", b"/webhooks/" + b"a" * 100_000, [])),
        RawCase(
            "path traversal", request_bytes(b"POST", b"/webhooks/../../../etc/passwd", [(b"Content-Length", b"0")])
        ),
        RawCase("encoded traversal", request_bytes(b"POST", b"/webhooks/%2e%2e%2f%2e%2e%2fetc%2fpasswd", [])),
        RawCase(
            "percent-encoded garbage", request_bytes(b"POST", b"/webhooks/%ff%fe%00%zz%", [(b"Content-Length", b"0")])
        ),
        RawCase("NUL and bytes >127 in the path", request_bytes(b"POST", b"/webhooks/\xff\x00x", [])),
        RawCase("absolute-form target", request_bytes(b"POST", b"http://evil.example/webhooks/officernd", [])),
        RawCase(
            "500 headers", request_bytes(b"POST", b"/webhooks/officernd", [(b"X-H%d" % n, b"v") for n in range(500)])
        ),
        RawCase("one header of 100 kB", request_bytes(b"POST", b"/webhooks/officernd", [(b"X-Big", b"a" * 100_000)])),
        RawCase(
            "invalid bytes in a header value",
            request_bytes(b"POST", b"/webhooks/officernd", [(b"X-Bad", b"\xff\xfe\x00")]),
        ),
        RawCase("invalid header name", request_bytes(b"POST", b"/webhooks/officernd", [(b"Bad Header", b"x")])),
        RawCase("header line without a colon", request_bytes(b"POST", b"/webhooks/officernd", [(b"NoColonHere", b"")])),
        RawCase("obsolete line folding", request_bytes(b"POST", b"/webhooks/officernd", [(b"X-Fold", b"a\r\n b")])),
        RawCase("bare LF line endings", b"POST /webhooks/officernd HTTP/1.1\nHost: x\nContent-Length: 0\n\n"),
        RawCase(
            "invalid UTF-8 in the signature header",
            officernd_request(body, extra=[(OFFICERND_SIGNATURE_HEADER.encode(), b"t=1,signature=\xc3\x28")]),
        ),
        RawCase(
            "duplicate signature headers, the valid one second",
            request_bytes(
                b"POST",
                b"/webhooks/officernd",
                [
                    (b"officernd-signature", b"t=1,signature=00"),
                    (b"officernd-signature", signature),
                    (b"Content-Length", str(len(body)).encode()),
                    *post_headers,
                ],
                body,
            ),
        ),
        RawCase("two different Content-Length headers", officernd_request(body, extra=[(b"Content-Length", b"3")])),
        RawCase("negative Content-Length", officernd_request(b"", length=-5)),
        RawCase(
            "non-numeric Content-Length",
            request_bytes(b"POST", b"/webhooks/officernd", [(b"Content-Length", b"12abc")]),
        ),
        RawCase(
            "Content-Length with Transfer-Encoding (smuggling)",
            request_bytes(
                b"POST",
                b"/webhooks/officernd",
                [(b"Content-Length", b"4"), *chunked_header],
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        RawCase(
            "invalid chunk size",
            request_bytes(b"POST", b"/webhooks/officernd", chunked_header, b"zz\r\nhello\r\n0\r\n\r\n"),
        ),
        RawCase(
            "chunked body cut off",
            request_bytes(
                b"POST", b"/webhooks/officernd", chunked_header, chunked(b'{"event":', end=False) + b"40\r\nabc"
            ),
            half_close=True,
        ),
        RawCase("Content-Length body cut off", officernd_request(body, length=len(body) + 100), half_close=True),
        RawCase("Content-Length body never completed", officernd_request(body, length=len(body) + 100)),
        RawCase("declared 10 GB", officernd_request(b"{}", length=10 * 1024**3)),
        RawCase("oversized body", officernd_request(big)),
        RawCase(
            "oversized chunked body",
            request_bytes(b"POST", b"/webhooks/officernd", chunked_header, chunked(*[big[:8192]] * 40)),
        ),
        RawCase(
            "Expect: 100-continue, oversized",
            officernd_request(b"", length=len(big), extra=[(b"Expect", b"100-continue")]),
        ),
        RawCase("HTTP/1.0 without Host", b"POST /webhooks/officernd HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
        RawCase("connection closed at once", b"", half_close=True),
        RawCase("headers never finished", b"POST /webhooks/officernd HTTP/1.1\r\nHost: x\r\n", half_close=True),
        RawCase("invalid UTF-8 body, valid signature", officernd_request(b'\xff\xfe{"event":\xc3\x28}')),
        RawCase("garbage JSON, valid signature", officernd_request(b'{"event": [1, 2,,, ' + BODY_MARKER.encode())),
        RawCase("headers trickled a byte at a time", b"", trickled=officernd_request(body)[:TRICKLE_BYTES]),
    ]


def mutated_cases(count: int, seed: int) -> list[RawCase]:
    """A valid signed request with random bytes flipped, inserted or cut: framing and signature both suffer."""
    generator = random.Random(seed)
    cases = []
    for number in range(count):
        data = bytearray(officernd_request(marked_body(OFFICERND)))
        for _ in range(generator.randint(1, 8)):
            position = generator.randrange(len(data))
            action = generator.randrange(3)
            if action == 0:
                data[position] = generator.randrange(256)
            elif action == 1:
                data[position:position] = bytes(generator.randrange(256) for _ in range(generator.randint(1, 16)))
            else:
                del data[position : position + generator.randint(1, 16)]
        cases.append(RawCase(f"mutation {number}", bytes(data), half_close=generator.random() < 0.3))
    return cases


async def exchange(state: Live, case: RawCase) -> Answer | None:
    """Write ``case`` on a fresh connection and read the first answer (bounded)."""
    reader, writer = await asyncio.open_connection(*state.address)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(case.data)
            await writer.drain()
            for byte in case.trickled:
                await asyncio.sleep(TRICKLE_INTERVAL_SECONDS)
                writer.write(bytes([byte]))
                await writer.drain()
            if case.half_close and writer.can_write_eof():
                writer.write_eof()
        data = bytearray()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                while chunk := await reader.read(65536):
                    data += chunk
                    answer = parse_answer(bytes(data))
                    if answer is not None and len(answer.body) >= _declared_length(bytes(data)):
                        break
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    answer = parse_answer(bytes(data))
    state.answers.append(answer.body if answer is not None else bytes(data))
    return answer


def _declared_length(data: bytes) -> int:
    head = data.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def run_cases(state: Live, cases: Iterable[RawCase]) -> Verdicts:
    verdicts = Verdicts()
    limit = asyncio.Semaphore(CONCURRENT_ATTACKS)

    async def one(case: RawCase) -> None:
        async with limit:
            verdicts.judge(case.name, await exchange(state, case))

    async with asyncio.TaskGroup() as tasks:
        for case in cases:
            tasks.create_task(one(case))
    return verdicts


async def test_malformed_framing_never_breaks_the_gateway(live: Live, findings: list[Finding]) -> None:
    verdicts = await run_cases(live, malformed_cases())
    conclude(findings, verdicts, "malformed HTTP framing on raw sockets (37 kinds)", await healthy_and_bounded(live))


async def test_mutated_requests_never_break_the_gateway(live: Live, findings: list[Finding]) -> None:
    verdicts = await run_cases(live, mutated_cases(MUTATIONS, seed=20240611))
    conclude(findings, verdicts, f"{MUTATIONS} byte-mutated signed requests", await healthy_and_bounded(live))


async def test_slow_clients_do_not_starve_others(live: Live, findings: list[Finding]) -> None:
    """Connections trickling headers or bodies a byte per 100 ms, while a provider posts normally."""
    body = marked_body(OFFICERND)
    request = officernd_request(body)
    body_starts = len(request) - len(body)
    slow_cases = [
        RawCase(f"slow headers {number}", b"", trickled=request[:TRICKLE_BYTES]) for number in range(SLOW_CLIENTS // 2)
    ] + [
        # Past the read timeout: the gateway answers 408 and closes.
        RawCase(f"slow body {number}", request[:body_starts], trickled=body[:TRICKLE_BYTES])
        for number in range(SLOW_CLIENTS - SLOW_CLIENTS // 2)
    ]
    slow = asyncio.create_task(run_cases_unbounded(live, slow_cases))
    await asyncio.sleep(1.0)
    status, answer = await post(live, OFFICERND, marked_body(OFFICERND))
    assert status == 200, answer
    verdicts = await slow
    conclude(findings, verdicts, f"{SLOW_CLIENTS} slow clients (a byte per 100 ms)", await healthy_and_bounded(live))


async def run_cases_unbounded(state: Live, cases: Sequence[RawCase]) -> Verdicts:
    """All ``cases`` at once: slow clients hold their connections together."""
    verdicts = Verdicts()
    answers = await asyncio.gather(*(exchange(state, case) for case in cases))
    for case, answer in zip(cases, answers, strict=True):
        verdicts.judge(case.name, answer)
    return verdicts


# --- hypothesis: well-framed, hostile requests -----------------------------------------------

_HEADER_NAMES = st.sampled_from(
    [
        "officernd-signature",
        "X-O5R-HASH",
        "X-O5R-TIMESTAMP",
        "x-offerte-adviseur-signature",
        "X-API-Key",
        "X-Forwarded-For",
        "Content-Type",
        "Content-Encoding",
        "Authorization",
        "Cookie",
        "X-Anything",
    ]
) | st.from_regex(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}\Z")
_HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200)
_SEGMENTS = st.sampled_from(
    ["officernd", "october", "offerte_adviseur", "octamile", "nope", "..", "%2e%2e", "%00", "a" * 300, ""]
) | st.text(max_size=60).map(lambda text: quote(text, safe=""))


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], bytes]:
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]))
    path = draw(st.sampled_from(["/webhooks/{}", "/webhooks/{}/more", "/{}", "/webhooks//{}", "/healthz/{}"]))
    target = path.format(draw(_SEGMENTS))
    query = draw(
        st.lists(st.tuples(st.sampled_from(["api-key", "token", "x", "api_key"]), st.text(max_size=30)), max_size=3)
    )
    if query:
        target += "?" + urlencode(query)
    headers = draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=12))
    source = draw(st.sampled_from(SOURCES))
    body = draw(
        st.one_of(
            st.binary(max_size=2048),
            st.text(max_size=512).map(str.encode),
            st.just(b"\xff\xfe\xfd" + BODY_MARKER.encode()),
        )
    )
    if draw(st.booleans()):
        # A valid signature over a body that is garbage, perhaps with a second, wrong signature.
        signed = source.signed(body)
        headers = [*signed.headers.items(), *headers]
        target = f"/webhooks/{source.name}" + ("?" + urlencode(signed.query) if signed.query else "")
        if draw(st.booleans()):
            headers += [(name, "0" * 64) for name in signed.headers if name.lower() != "content-type"]
    return method, target, headers, body


def send_sync(state: Live, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> Answer | None:
    connection = http.client.HTTPConnection(*state.address, timeout=ANSWER_TIMEOUT_SECONDS)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value.encode("latin-1"))
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = Answer(response.status, response.read())
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return None
    finally:
        connection.close()
    state.answers.append(answer.body)
    return answer


async def test_hostile_well_framed_requests(live: Live, findings: list[Finding]) -> None:
    verdicts = Verdicts()

    @settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        deadline=None,
        derandomize=not FULL_MODE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=hostile_requests())
    def attack(request: tuple[str, str, list[tuple[str, str]], bytes]) -> None:
        method, target, headers, body = request
        answer = send_sync(live, method, target, headers, body)
        verdicts.judge(f"{method} {target[:80]}", answer, head=method == "HEAD")
        assert answer is None or answer.status < 500, answer

    # Blocking sockets, so off the event loop the other tests' fixtures live on.
    await asyncio.to_thread(attack)
    growth = await healthy_and_bounded(live)
    conclude(findings, verdicts, f"{HYPOTHESIS_EXAMPLES} hypothesis requests (methods, paths, headers, bodies)", growth)


# --- replayed requests ----------------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[bool]], *, timeout: float = PIPELINE_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s")
        await asyncio.sleep(0.25)


async def replay(
    state: Live, source: SignedSource, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """Send a captured request again, byte for byte: same body, same signature, same timestamp."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)) as http_session,
        http_session.post(
            f"http://{LOOPBACK}:{state.pipeline.port}/webhooks/{source.name}", data=body, headers=headers, params=query
        ) as response,
    ):
        answer = await response.read()
    state.answers.append(answer)
    return response.status, orjson.loads(answer)


@pytest.mark.parametrize("source", [OCTOBER, OFFICERND], ids=lambda source: source.name)
async def test_replay_within_tolerance_is_one_row_and_after_it_is_rejected(
    live: Live, source: SignedSource, findings: list[Finding]
) -> None:
    body = marked_body(source)
    signed = source.signed(body)
    first_status, first = await replay(live, source, body, signed.headers, signed.query)
    again_status, again = await replay(live, source, body, signed.headers, signed.query)
    assert (first_status, again_status) == (200, 200), (first, again)
    await asyncio.sleep(TOLERANCE_SECONDS + 1.5)
    late_status, late = await replay(live, source, body, signed.headers, signed.query)
    assert late_status == 401
    assert late["error"] == "stale_timestamp"

    ingest_ids = {first["id"], again["id"]}
    events: list[KafkaRecord] = []

    async def both_normalized() -> bool:
        nonlocal events
        records = await read_topic(live.pipeline.kafka, live.pipeline.kafka.events_topic)
        events = [record for record in records if record.header("ce_ingestid") in ingest_ids]
        return len(events) == 2

    await wait_for(both_normalized)
    event_ids = {record.header("ce_id") for record in events}
    assert len(event_ids) == 1, "a replayed request must map to the same event id"
    [event_id] = event_ids

    async def stored() -> bool:
        return any(row_id == event_id for row_id, _ in await table_rows(live.pipeline.dsn))

    await wait_for(stored)
    await asyncio.sleep(1.0)  # the second copy, if it were stored apart, would be by now
    rows = [row for row in await table_rows(live.pipeline.dsn) if row[1] in ingest_ids or row[0] == event_id]
    assert len(rows) == 1, rows
    verdicts = Verdicts()
    for what, status, answer in (
        ("first", first_status, first),
        ("replay", again_status, again),
        ("late replay", late_status, late),
    ):
        verdicts.judge(what, Answer(status, orjson.dumps(answer)))
    findings.append(verdicts.finding(f"{source.name} request replayed within and after the tolerance", 0))


# --- secrets --------------------------------------------------------------------------------


async def test_no_secret_api_key_signature_or_body_leaks(live: Live, findings: list[Finding]) -> None:
    """Runs last: scans what the whole module produced, after sending every credential every way."""
    verdicts = Verdicts()
    signatures: list[str] = []
    octamile_key = OCTAMILE.api_key
    assert octamile_key is not None

    async def judge(what: str, source: SignedSource, body: bytes, **headers: str) -> int:
        status, answer = await post(live, source, body, headers=headers)
        verdicts.judge(what, Answer(status, answer))
        return status

    # The API key in the query string (sign() puts it there), in X-API-Key, and wrong keys in both.
    assert await judge("API key in the query", OCTAMILE, marked_body(OCTAMILE)) == 200
    status, answer = await raw_post(live, "/webhooks/octamile", marked_body(OCTAMILE), {"X-API-Key": octamile_key})
    verdicts.judge("API key in X-API-Key", Answer(status, answer))
    assert status == 200, answer
    for where in ("query", "header"):
        target = f"/webhooks/octamile?api-key={WRONG_API_KEY}" if where == "query" else "/webhooks/octamile"
        headers = {"X-API-Key": WRONG_API_KEY} if where == "header" else {}
        status, answer = await raw_post(live, target, marked_body(OCTAMILE), headers)
        verdicts.judge(f"wrong API key in the {where}", Answer(status, answer))
        assert status == 401, answer
    # The right key next to a credential-looking query parameter: neither may reach Kafka.
    status, answer = await raw_post(
        live, f"/webhooks/octamile?api-key={octamile_key}&token={WRONG_API_KEY}", marked_body(OCTAMILE), {}
    )
    verdicts.judge("API key and token in the query", Answer(status, answer))
    # Signed garbage (dead letters) and wrong signatures, for every signing provider.
    for source in (OCTOBER, OFFICERND, OFFERTE_ADVISEUR):
        garbage = b'{"not": "an event", "marker": "' + BODY_MARKER.encode() + b'"'
        signatures += [value for name, value in source.signed(garbage).headers.items() if name != "Content-Type"]
        assert await judge(f"{source.name} signed garbage", source, garbage) == 200
        forged = {name: "0" * 64 for name in source.signed(b"").headers if name.lower() != "content-type"}
        status = await judge(f"{source.name} bad signature", source, marked_body(source), **forged)
        assert status == 401

    kafka = live.pipeline.kafka

    async def dead_lettered() -> bool:
        return len(await read_topic(kafka, kafka.dlq_topic)) >= 3

    await wait_for(dead_lettered)
    records = {
        topic: await read_topic(kafka, topic) for topic in (kafka.raw_topic, kafka.events_topic, kafka.dlq_topic)
    }
    # The request log keeps a prefix of refused bodies (the marker), never a credential or a signature.
    request_log = await read_topic(kafka, kafka.requests_topic)
    secrets = [value for source in SOURCES for value in (source.secret, source.api_key) if value] + [WRONG_API_KEY]
    logs = live.pipeline.logs()
    answers = [answer.decode("utf-8", errors="replace") for answer in live.answers]
    leaks = [
        f"{place} of {name}"
        for name, text in logs.items()
        for place, hits in (
            ("secret in the log", secrets_in(text, secrets)),
            ("signature in the log", secrets_in(text, signatures)),
        )
        if hits
    ]
    leaks += [f"body marker in the log of {name}" for name, text in logs.items() if BODY_MARKER in text]
    leaks += [
        f"secret in a record of {topic}"
        for topic, topic_records in records.items()
        for text in iter_record_texts(topic_records)
        if secrets_in(text, secrets)
    ]
    leaks += [
        f"secret or signature in the request log: {text[:120]!r}"
        for text in iter_record_texts(request_log)
        if secrets_in(text, secrets) or secrets_in(text, signatures)
    ]
    assert request_log, "the gateway wrote its request log"
    leaks += [
        f"secret or signature in an answer: {text[:120]!r}"
        for text in answers
        if secrets_in(text, [*secrets, *signatures])
    ]
    assert all(logs.values()), "every service wrote a log"
    assert records[kafka.raw_topic], "the raw topic was scanned"
    findings.append(
        Finding(
            ATTACKS,
            "credentials everywhere: scanned every log, raw/events/dlq record and answer",
            {
                **verdicts.finding("", 0).numbers,
                "scanned_log_bytes": sum(len(text) for text in logs.values()),
                "scanned_records": sum(len(topic_records) for topic_records in records.values()),
                "scanned_answers": len(answers),
            },
            tuple(leaks[:5]),
        )
    )
    assert not leaks, leaks[:10]
    assert not verdicts.server_errors, verdicts.server_errors


async def raw_post(state: Live, target: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """POST ``body`` to ``target`` as given (no signing, no query added)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)) as http_session,
        http_session.post(
            URL(f"http://{LOOPBACK}:{state.pipeline.port}{target}", encoded=True),
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as response,
    ):
        answer = await response.read()
    state.answers.append(answer)
    return response.status, answer


def malformed_with_credentials(marker: str) -> RawCase:
    """A request whose framing breaks on a header carrying the API key, followed by a marked body."""
    key = (OCTAMILE.api_key or "").encode()
    return RawCase(
        "API key and body in a malformed request",
        b"POST /webhooks/octamile HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: "
        + key
        + b"\x00\r\nContent-Length: 40\r\n\r\n"
        + marker.encode(),
    )


async def test_a_malformed_request_does_not_put_its_api_key_or_body_into_the_log(live: Live) -> None:
    marker = f"{BODY_MARKER}-{uuid.uuid4().hex}"
    answer = await exchange(live, malformed_with_credentials(marker))
    assert answer is not None
    assert answer.status == 400
    await asyncio.sleep(0.5)
    log = live.running.gateway.log_text()
    assert (OCTAMILE.api_key or "") not in log
    assert marker not in log


async def test_a_malformed_request_is_refused_with_a_json_error_that_does_not_echo_it(live: Live) -> None:
    answer = await exchange(live, malformed_with_credentials(BODY_MARKER))
    assert answer is not None
    assert answer.status == 400
    assert has_json_error(answer.body), answer.body
    assert (OCTAMILE.api_key or "").encode() not in answer.body


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/nope"), ("POST", "/webhooks/officernd/extra"), ("POST", "/healthz")]
)
async def test_refusals_outside_the_webhook_route_are_json_errors(live: Live, method: str, path: str) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)) as http_session,
        http_session.request(method, f"http://{LOOPBACK}:{live.pipeline.port}{path}", data=b"{}") as response,
    ):
        body = await response.read()
    assert response.status in {404, 405}
    assert has_json_error(body), body
