"""What every benchmark stage shares: results, percentiles, process sampling, tools, the broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import psutil

from tools.localkafka import LocalKafka
from tools.localprocess import LOOPBACK, free_port

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hookbus-bench"
TOOLS = CACHE / "bin"


class BenchError(Exception):
    """A stage could not run; its message goes into the report instead of the numbers."""


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency percentiles in milliseconds."""

    p50: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0)
        ordered = sorted(seconds)
        return cls(
            p50=percentile(ordered, 50) * 1000,
            p99=percentile(ordered, 99) * 1000,
            p999=percentile(ordered, 99.9) * 1000,
            max=ordered[-1] * 1000,
        )


def percentile(ordered: Sequence[float], rank: float) -> float:
    """The nearest-rank percentile of an already sorted sequence."""
    index = max(0, min(len(ordered) - 1, round(rank / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU (percent of one core, averaged) and peak resident memory of a process tree."""

    cpu_percent: float
    peak_rss_mb: float


@dataclass(slots=True)
class Measurement:
    """One measured case of a stage: a rate, maybe latencies and resource use."""

    stage: str
    case: str
    rate: float
    unit: str
    latency: Latency | None = None
    usage: Usage | None = None
    ok: int = 0
    failed: int = 0
    note: str = ""
    cpu_ms_per_event: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per event of each process measured (end to end: gateway, normalizer, sink)."""
    hops: dict[str, Latency] = field(default_factory=dict)
    """Latency of each hop an event takes (end to end), in the order taken."""


@dataclass(slots=True)
class StageResult:
    name: str
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    """Lines put into the report as they are (a profile)."""
    error: str = ""

    def find(self, case: str) -> Measurement | None:
        return next((item for item in self.measurements if item.case == case), None)


class Mode(StrEnum):
    """How long each case runs: ``smoke`` only proves the harness works (seconds a case, no
    number in it means anything), ``quick`` gives rough numbers, ``full`` the report's."""

    SMOKE = "smoke"
    QUICK = "quick"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how hard to run."""

    mode: Mode
    out: Path
    workers: int
    overload_factor: float = 3.0
    """The overload stage offers this many times the highest rate the gateway holds."""
    overload_seconds: float | None = None
    """How long it does; by default 30 s, 6 s when quick, 2 s in a smoke run."""

    def pick(self, *, smoke: T, quick: T, full: T) -> T:
        """The value of this mode."""
        return {Mode.SMOKE: smoke, Mode.QUICK: quick, Mode.FULL: full}[self.mode]

    @property
    def attack_seconds(self) -> float:
        return self.pick(smoke=1.0, quick=4.0, full=20.0)

    @property
    def hold_seconds(self) -> float:
        return self.pick(smoke=2.0, quick=10.0, full=60.0)

    @property
    def overload_duration(self) -> float:
        if self.overload_seconds is not None:
            return self.overload_seconds
        return self.pick(smoke=2.0, quick=6.0, full=30.0)

    @property
    def drain_events(self) -> int:
        return self.pick(smoke=5_000, quick=10_000, full=50_000)


class UsageSampler:
    """Samples CPU and RSS of a process and its children every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._peak_rss = 0
        self._cpu_seconds_start = 0.0
        self._cpu_seconds_end = 0.0
        self._started = 0.0
        self._ended = 0.0

    def _tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self._root, *self._root.children(recursive=True)]
        return []

    def _cpu_seconds(self) -> float:
        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = 0
            for process in self._tree():
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            self._peak_rss = max(self._peak_rss, rss)

    def __enter__(self) -> UsageSampler:
        self._cpu_seconds_start = self._cpu_seconds()
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._cpu_seconds_end = self._cpu_seconds()
        self._ended = time.monotonic()
        self._stop.set()
        self._thread.join()

    def usage(self) -> Usage:
        elapsed = max(self._ended - self._started, 1e-9)
        return Usage(
            cpu_percent=100 * (self._cpu_seconds_end - self._cpu_seconds_start) / elapsed,
            peak_rss_mb=self._peak_rss / 2**20,
        )


def tool(name: str) -> Path:
    """A tool bench/run built into the cache, or one on PATH."""
    cached = TOOLS / name
    if cached.exists():
        return cached
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} is not built (bench/run builds it into {TOOLS})")
    return Path(found)


class Child:
    """A server this benchmark started: its own process group, ended by its PID only."""

    def __init__(self, argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.name = Path(argv[0]).name
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=REPO,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
            time.sleep(0.1)
        raise BenchError(f"nothing listened on port {port} within {timeout:.0f} s; see {self.log}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def child(
    argv: Sequence[str], *, log: Path, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Child]:
    """Run a server for the length of a ``with`` block; wait for ``port`` when given."""
    process = Child(argv, log=log, env=env)
    try:
        if port is not None:
            process.wait_port(port)
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[str]:
    """The broker to measure against: ``$BENCH_KAFKA_BOOTSTRAP_SERVERS``, else a local Kafka started here."""
    given = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    kafka = LocalKafka(workdir=workdir / "kafka", jvm_options=("-Xms512m", "-Xmx1g", "-XX:+UseG1GC"))
    kafka.start()
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


def machine_facts() -> dict[str, str]:
    """Cores, memory and versions, for the report's header."""
    facts = {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "python": platform.python_version(),
    }
    for name, argv in {
        "java": ["java", "-version"],
        "go": ["go", "version"],
        "vegeta": ["echo", "vegeta v12.13.0 (Go module proxy)"],
    }.items():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            output = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            text = (output.stdout or output.stderr).strip().splitlines()
            facts[name] = text[0] if text else "?"
    from importlib.metadata import version

    for package in ("hookbus", "aiohttp", "aiokafka", "asyncpg", "uvloop"):
        with contextlib.suppress(Exception):
            facts[package] = version(package)
    return facts


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def new_port() -> int:
    return free_port()


def write_config(path: Path, bootstrap: str, prefix: str, **sections: object) -> Path:
    """A hookbus configuration on ``bootstrap`` with topics named ``<prefix>.raw`` etc."""
    import yaml

    from bench.payloads import sources_config

    document = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "client_id": f"bench-{prefix}",
            "raw_topic": f"{prefix}.raw",
            "events_topic": f"{prefix}.events",
            "dlq_topic": f"{prefix}.dlq",
            "topic_partitions": 3,
            "replication_factor": 1,
            "development_mode": True,
        },
        "gateway": {"host": LOOPBACK, "ack_timeout_seconds": 10, "answer_deadline_seconds": 11},
        "sources": sources_config(),
        **sections,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def hookbus_command(*arguments: str) -> list[str]:
    return [str(VENV_PYTHON), "-m", "hookbus", *arguments]


@dataclass(frozen=True, slots=True)
class Drain:
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


PROGRESS_POLL_SECONDS = 0.1


async def watch_progress(
    count: Callable[[], Awaitable[int]], expected: int, process: Child, *, timeout: float
) -> Drain:
    """Time ``process`` bringing ``count()`` up to ``expected``: from the first item out to the
    last, so start-up (imports, group join, migrations) is not counted."""
    deadline = time.monotonic() + timeout
    first_seen: tuple[float, int] | None = None
    seen = 0
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise BenchError(f"{process.name} exited with {process.process.returncode}; see {process.log}")
        seen = await count()
        now = time.monotonic()
        if seen and first_seen is None:
            first_seen = (now, seen)
        if seen >= expected and first_seen is not None:
            return Drain(records=seen - first_seen[1], seconds=now - first_seen[0])
        await asyncio.sleep(PROGRESS_POLL_SECONDS)
    raise BenchError(f"only {seen} of {expected} arrived within {timeout:.0f} s; see {process.log}")


@contextlib.contextmanager
def postgres(workdir: Path) -> Iterator[str]:
    """A PostgreSQL server DSN: ``$BENCH_PG_DSN``, else a durable local cluster started here."""
    given = os.environ.get("BENCH_PG_DSN")
    if given:
        yield given
        return
    from tools.localpg import LocalPostgres

    server = LocalPostgres(durable=True)
    server.start()
    try:
        yield server.dsn
    finally:
        server.stop()
