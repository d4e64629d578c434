"""Signed-request vector files, and ``hookbus verify``.

A vector file is a JSON list of entries, each a request and the source it was sent to::

    {"provider": "october", "name": "seed-example",
     "source": {"secrets": ["..."], "tolerance_seconds": 300},
     "request": {"method": "POST", "query": {}, "headers": {"X-O5R-HASH": "..."},
                 "body": "{...}", "remote_addr": "198.51.100.7"},
     "now": 1647937511.151, "expect": "accept", "reason": null}

``body`` is text; the bytes received (and signed) are its UTF-8 encoding. A header or query
value may be a list, for a name sent several times. ``remote_addr`` is the client address
after proxy resolution. ``now`` (the Unix time of arrival) defaults to the time of
reading, ``expect`` and ``reason`` may be left out (a delivery pasted to see its verdict),
and other fields (``note``) are ignored. ``source_name`` names the source (default: the
provider).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from hookbus.config import SourceConfig, parse_source
from hookbus.errors import ConfigError
from hookbus.request import Accept, RawRequest, Reason, Verdict
from ingest.decision import check_sources, decide
from ingest.errors import VectorFileError

EXPECTATIONS = ("accept", "reject")
EXIT_MISMATCH = 1
EXIT_UNREADABLE = 2
MISMATCH_MARKER = "MISMATCH"
_REASON_WIDTH = max(len(reason.value) for reason in Reason)


@dataclass(frozen=True, slots=True)
class VectorEntry:
    """One entry of a vector file: a request, its source, and the verdict it should get."""

    name: str
    provider: str
    source: SourceConfig
    request: RawRequest
    now: float
    expect: str | None
    reason: str | None


def load_vectors(path: str | Path) -> list[VectorEntry]:
    """Every entry of the vector file at ``path``; :class:`VectorFileError` says what is wrong where."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise VectorFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # JSON and UTF-8 errors alike
        raise VectorFileError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise VectorFileError(f"{path}: must be a JSON list of entries, not {type(raw).__name__}")
    entries = []
    for index, item in enumerate(raw):
        where = f"{path}: entry {index}"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            where = f"{where} ({item['name']})"
        try:
            entries.append(_entry(item))
        except ConfigError as exc:
            raise VectorFileError(f"{where}: bad source configuration: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise VectorFileError(f"{where}: {exc}") from exc
    return entries


def _entry(raw: Any) -> VectorEntry:
    if not isinstance(raw, Mapping):
        raise TypeError(f"must be a JSON object, not {type(raw).__name__}")
    provider = _text(raw, "provider")
    name = _text(raw, "name")
    source = parse_source(raw.get("source"), name=raw.get("source_name") or provider, provider=provider)
    check_sources([source])
    request = raw.get("request")
    if not isinstance(request, Mapping):
        raise TypeError("request must be a JSON object")
    expect = raw.get("expect")
    if expect is not None and expect not in EXPECTATIONS:
        raise ValueError(f"expect must be one of {', '.join(EXPECTATIONS)}, not {expect!r}")
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise TypeError("reason must be a string")
    now = raw.get("now")
    if now is not None and (isinstance(now, bool) or not isinstance(now, int | float)):
        raise TypeError("now must be a Unix time in seconds")
    return VectorEntry(
        name=name,
        provider=provider,
        source=source,
        request=RawRequest(
            method=_text(request, "method", "POST").upper(),
            body=_text(request, "body", "").encode("utf-8"),
            client_addr=_text(request, "remote_addr", ""),
            headers=CIMultiDictProxy(CIMultiDict(_pairs(request, "headers"))),
            query=MultiDictProxy(MultiDict(_pairs(request, "query"))),
        ),
        now=time.time() if now is None else float(now),
        expect=expect,
        reason=reason,
    )


def _text(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string" if key in raw else f"{key} is missing")
    return value


def _pairs(raw: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """A JSON object of names to a value or a list of values, as (name, value) pairs in order."""
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise TypeError(f"request.{key} must be a JSON object")
    pairs = []
    for name, item in value.items():
        for one in item if isinstance(item, list) else [item]:
            if not isinstance(one, str):
                raise TypeError(f"request.{key}.{name} must be a string or a list of strings")
            pairs.append((name, one))
    return pairs


# --- hookbus verify -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict :func:`~ingest.decision.decide` gives an entry, and whether the entry expects it."""

    label: str
    entry: VectorEntry
    verdict: Verdict

    @property
    def outcome(self) -> str:
        return "accept" if isinstance(self.verdict, Accept) else "reject"

    @property
    def reason(self) -> str | None:
        return None if isinstance(self.verdict, Accept) else self.verdict.reason.value

    @property
    def as_expected(self) -> bool:
        """The outcome is the expected one, and so is the reason when the entry names one."""
        entry = self.entry
        if entry.expect is None:
            return True
        return self.outcome == entry.expect and (entry.reason is None or self.reason == entry.reason)


def judge(entry: VectorEntry, label: str) -> Judgement:
    return Judgement(label=label, entry=entry, verdict=decide(entry.source, entry.request, entry.now))


def main(args: argparse.Namespace) -> int:
    """``hookbus verify FILE...``: one line per entry, a summary, and the exit code."""
    files: Sequence[str] = args.files
    judgements: list[Judgement] = []
    unreadable = 0
    for file in files:
        try:
            entries = load_vectors(file)
        except VectorFileError as exc:
            print(f"hookbus verify: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        stem = Path(file).stem
        judgements.extend(judge(entry, f"{stem}/{entry.name}") for entry in entries)
    width = max((len(judgement.label) for judgement in judgements), default=0)
    for judgement in judgements:
        line = f"{judgement.label:<{width}}  {judgement.outcome:<6}  {judgement.reason or '-':<{_REASON_WIDTH}}"
        if not judgement.as_expected:
            entry = judgement.entry
            line += f"  {MISMATCH_MARKER}: expected {entry.expect}" + (f" {entry.reason}" if entry.reason else "")
        print(line.rstrip())
    differ = sum(not judgement.as_expected for judgement in judgements)
    summary = f"{len(judgements)} entries, {len(judgements) - differ} as expected, {differ} differ"
    print(summary + (f"; {unreadable} file(s) unreadable" if unreadable else ""))
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_MISMATCH if differ else 0
