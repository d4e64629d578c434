"""``hookbus normalize FILE...``: the CloudEvents that requests or raw events map to, offline.

Each file is either a signed-request vector file (a JSON list, see :mod:`tools.vectors`)
or a dump of raw-topic records, one per line (:func:`dump_record`). A vector entry is first
judged by the gateway's own decision code and captured as the gateway would publish it;
a dumped record was accepted already. Every event is printed to stdout as one line of JSON
(the structured CloudEvents format); what is rejected or cannot be mapped is one line of
JSON on stderr. An entry is mapped, validated and encoded by the normalizer's own code
(:func:`normalizer.service.map_record`), so one that the normalizer would dead-letter - an
unexpected exception included, such as an event nested too deep to encode - is reported
with the stage and reason of that dead letter, never a traceback. The exit code is 1 when
any entry could not be mapped, else 0.

Without ``--config``, a vector entry's own source is used, and a dumped record is mapped
as its provider's source with default options. With it, sources come from the
configuration, by name, or else the first source of the entry's provider.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from hookbus.cloudevent import Mode
from hookbus.config import HookbusConfig, SourceConfig, load_config
from hookbus.errors import HookbusError
from hookbus.rawevent import RawEvent
from hookbus.request import Reject
from hookbus.stage.deadletter import Failure
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from normalizer.errors import DumpRecordError, UnknownSourceError
from normalizer.normalizer import Normalizer
from normalizer.service import map_record
from tools.vectors import VectorEntry, load_vectors

KafkaHeaders = list[tuple[str, bytes]]
EXIT_UNMAPPED = 1


# --- the dump format --------------------------------------------------------------------


def dump_record(headers: Sequence[tuple[str, bytes | None]] | None, value: bytes | None) -> bytes:
    """One Kafka record as a line of JSON (without the newline):
    ``{"headers": [[name, value as UTF-8 text], ...], "value_b64": base64 of the value or null}``.

    Header values must be UTF-8 text, as every header hookbus writes is; a ``None`` header
    value is written as ``""``.
    """
    pairs = []
    for name, raw in headers or ():
        try:
            pairs.append([name, raw.decode("utf-8") if raw is not None else ""])
        except UnicodeDecodeError as exc:
            raise DumpRecordError(f"header {name} is not UTF-8 text") from exc
    encoded = base64.b64encode(value).decode("ascii") if value is not None else None
    return orjson.dumps({"headers": pairs, "value_b64": encoded})


def load_record(line: bytes | str) -> tuple[KafkaHeaders, bytes | None]:
    """``(headers, value)`` of a line written by :func:`dump_record`; :class:`DumpRecordError` otherwise."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DumpRecordError(f"not JSON ({exc.msg})") from exc
    if not isinstance(document, dict):
        raise DumpRecordError("a dumped record is a JSON object")
    headers = document.get("headers", [])
    if not isinstance(headers, list) or not all(_is_header_pair(pair) for pair in headers):
        raise DumpRecordError("headers must be a list of [name, text] pairs")
    encoded = document.get("value_b64")
    if encoded is not None and not isinstance(encoded, str):
        raise DumpRecordError("value_b64 must be base64 text or null")
    try:
        value = base64.b64decode(encoded, validate=True) if encoded is not None else None
    except (binascii.Error, ValueError) as exc:
        raise DumpRecordError("value_b64 is not base64") from exc
    return [(name, text.encode("utf-8")) for name, text in headers], value


def _is_header_pair(pair: Any) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)


# --- hookbus normalize ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One thing to normalize: a raw event, or why there is none (the ``problem`` line)."""

    label: str
    raw: RawEvent | None = None
    source: SourceConfig | None = None
    problem: dict[str, str] | None = None
    failed: bool = False


class _Sources:
    """Which source configuration maps an entry, and one normalizer per configuration."""

    def __init__(self, config: HookbusConfig | None) -> None:
        self._config = config
        self._normalizers: dict[int, tuple[SourceConfig, Normalizer]] = {}

    def resolve(self, name: str, provider: str, fallback: SourceConfig | None) -> SourceConfig | None:
        if self._config is None:
            return fallback
        named = self._config.source(name)
        if named is not None and named.provider == provider:
            return named
        return next((source for source in self._config.sources if source.provider == provider), None)

    def normalizer(self, source: SourceConfig) -> Normalizer:
        # Vector entries each carry their own source: keyed by identity, built once each.
        cached = self._normalizers.get(id(source))
        if cached is None:
            cached = (source, Normalizer({source.name: source}))
            self._normalizers[id(source)] = cached
        return cached[1]


def _vector_items(path: str, entries: list[VectorEntry], sources: _Sources) -> Iterator[_Item]:
    stem = Path(path).stem
    for entry in entries:
        label = f"{stem}/{entry.name}"
        source = sources.resolve(entry.source.name, entry.provider, entry.source)
        if source is None:
            yield _Item(
                label, problem=_error(UnknownSourceError(f"no {entry.provider} source configured")), failed=True
            )
            continue
        verdict = decide(source, entry.request, entry.now)
        if isinstance(verdict, Reject):
            yield _Item(label, problem={"rejected": verdict.reason.value, "detail": verdict.detail})
            continue
        raw = capture(source, entry.request, verdict.auth, entry.now, f"offline-{entry.name}", kept_headers(source))
        yield _Item(label, raw=raw, source=source)


def _dump_items(path: str, lines: list[bytes], sources: _Sources) -> Iterator[_Item]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label = f"{path}:{number}"
        try:
            raw = RawEvent.from_kafka(*load_record(line))
        except HookbusError as exc:
            yield _Item(label, problem=_error(exc), failed=True)
            continue
        fallback = SourceConfig(name=raw.source, provider=raw.provider)
        source = sources.resolve(raw.source, raw.provider, fallback)
        if source is None:
            yield _Item(label, problem=_error(UnknownSourceError(f"no {raw.provider} source configured")), failed=True)
            continue
        yield _Item(label, raw=raw, source=source)


def _items(path: str, sources: _Sources) -> Iterator[_Item]:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        yield _Item(
            path, problem={"error": "unreadable_file", "stage": "read", "detail": str(exc.strerror)}, failed=True
        )
        return
    if content.lstrip().startswith(b"["):
        try:
            entries = load_vectors(path)
        except HookbusError as exc:
            yield _Item(path, problem=_error(exc, stage="read"), failed=True)
            return
        yield from _vector_items(path, entries, sources)
    else:
        yield from _dump_items(path, content.splitlines(), sources)


def _error(exc: HookbusError, *, stage: str | None = None) -> dict[str, str]:
    return {"error": exc.reason, "stage": stage or getattr(exc, "stage", "read"), "detail": exc.detail}


def _failure(failure: Failure) -> dict[str, str]:
    return {"error": failure.reason, "stage": failure.stage, "detail": failure.detail}


def run(files: Sequence[str], config: HookbusConfig | None, out: TextIO, err: TextIO) -> int:
    """Normalize every entry of ``files``; events to ``out``, problems to ``err``."""
    sources = _Sources(config)
    failed = False
    for path in files:
        for item in _items(path, sources):
            problem, item_failed = item.problem, item.failed
            if item.raw is not None and item.source is not None:
                # The record as the gateway publishes it, encoded as a structured event: that is
                # what is printed, and it nests the data one level deeper than binary mode, so
                # an event printed here encodes in either mode.
                raw = item.raw
                mapper = sources.normalizer(item.source)
                result = map_record(mapper, raw.kafka_headers(), raw.body, mode=Mode.STRUCTURED, tries=1)
                if not isinstance(result, Failure):
                    out.write(result.value.decode("utf-8") + "\n")
                    continue
                problem, item_failed = _failure(result), True
            failed |= item_failed
            err.write(orjson.dumps({**(problem or {}), "entry": item.label}).decode("utf-8") + "\n")
    return EXIT_UNMAPPED if failed else 0


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config) if getattr(args, "config", None) else None
    return run(args.files, config, sys.stdout, sys.stderr)
