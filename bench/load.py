"""The HTTP load source: vegeta, with pre-signed targets. Python only prepares and reads its results."""

from __future__ import annotations

import base64
import binascii
import csv
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import BenchError, Latency, tool
from bench.payloads import Request

MAX_RATE_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class AttackResult:
    sent: int
    ok: int
    failed: int
    seconds: float
    latency: Latency
    """Of the 2xx answers."""
    statuses: dict[int, int]
    answered: Latency
    """Of every answer, refusals and the client's own timeouts (status 0) included."""
    accepted_ids: frozenset[str]
    """The ingest ids of the 2xx answers, when the attack was asked to keep them."""

    @property
    def rate(self) -> float:
        """Successful requests per second over the attack."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def write_targets(path: Path, requests: Iterable[Request], base_url: str) -> Path:
    with path.open("wb") as output:
        for request in requests:
            output.write(request.vegeta_target(base_url) + b"\n")
    return path


def attack(
    targets: Path,
    *,
    seconds: float,
    rate: int = 0,
    concurrency: int = MAX_RATE_CONCURRENCY,
    lazy: bool = False,
    workdir: Path,
    name: str,
    keep_ids: bool = False,
) -> AttackResult:
    """Send ``targets`` for ``seconds``: at ``rate`` per second, or as fast as ``concurrency``
    connections allow when ``rate`` is 0. Targets are sent round-robin, or each once when
    ``lazy`` (read as they are sent: for files too large to hold, of requests that must be distinct).
    ``keep_ids`` reads the ingest id of every 2xx answer, to be looked for in the raw topic."""
    results = workdir / f"{name}.bin"
    pace = ["-rate", str(rate)] if rate else ["-rate", "0", "-max-workers", str(concurrency)]
    command = [
        str(tool("vegeta")),
        "attack",
        "-format",
        "json",
        "-targets",
        str(targets),
        "-duration",
        f"{seconds:g}s",
        "-timeout",
        "30s",
        "-workers",
        str(concurrency if not rate else 16),
        "-output",
        str(results),
        *pace,
        *(["-lazy"] if lazy else []),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90, check=False)
    if finished.returncode != 0:
        raise BenchError(f"vegeta attack failed: {finished.stderr.strip()[-400:]}")
    table = workdir / f"{name}.csv"
    subprocess.run(
        [str(tool("vegeta")), "encode", "--to", "csv", "--output", str(table), str(results)],
        check=True,
        timeout=120,
    )
    results.unlink(missing_ok=True)
    return read_results(table, keep_ids=keep_ids)


def _ingest_id(encoded_body: str) -> str:
    """The ``id`` of a gateway's 2xx JSON body, base64 in vegeta's CSV; empty when there is none."""
    try:
        document = orjson.loads(base64.b64decode(encoded_body))
    except (binascii.Error, orjson.JSONDecodeError):
        return ""
    return str(document.get("id", "")) if isinstance(document, dict) else ""


def read_results(table: Path, *, keep_ids: bool = False) -> AttackResult:
    starts: list[int] = []
    ends: list[int] = []
    latencies: list[float] = []
    answered: list[float] = []
    accepted_ids: set[str] = set()
    statuses: dict[int, int] = {}
    with table.open(newline="") as rows:
        for row in csv.reader(rows):
            started, status, latency = int(row[0]), int(row[1]), int(row[2])
            statuses[status] = statuses.get(status, 0) + 1
            starts.append(started)
            ends.append(started + latency)
            answered.append(latency / 1e9)
            if 200 <= status < 300:
                latencies.append(latency / 1e9)
                if keep_ids:
                    # An unreadable body still counts: it is a 2xx whose record cannot be found.
                    accepted_ids.add(_ingest_id(row[6]) or f"unreadable-{len(accepted_ids)}")
    table.unlink(missing_ok=True)
    if not starts:
        raise BenchError("vegeta sent no request")
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return AttackResult(
        sent=len(starts),
        ok=ok,
        failed=len(starts) - ok,
        seconds=(max(ends) - min(starts)) / 1e9,
        latency=Latency.of(latencies),
        statuses=statuses,
        answered=Latency.of(answered),
        accepted_ids=frozenset(accepted_ids),
    )
