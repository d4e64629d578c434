"""An example hookbus sink: append each canonical event to a file as one JSON line.

Configured as ``sinks: {audit: {type: jsonl, path: ./var/audit.jsonl}}`` and run with
``hookbus sink audit``. Delivery is at least once, so after a crash an event may appear
twice; readers deduplicate on ``id``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hookbus.cloudevent import CloudEvent
from hookbus.sink import BatchResult, SinkContext, SinkType, SinkUnavailableError


@dataclass(frozen=True, slots=True)
class JsonlSettings:
    path: str
    """The file to append to; its directory is created if needed."""
    fsync: bool = True
    """Flush each batch to disk before its offsets are committed."""


class JsonlSink:
    def __init__(self, settings: JsonlSettings, context: SinkContext) -> None:
        self._settings = settings
        self._file: IO[bytes] | None = None

    async def open(self) -> None:
        path = Path(self._settings.path)
        try:
            self._file = await asyncio.to_thread(_open_for_append, path)
        except OSError as exc:
            raise SinkUnavailableError(f"cannot open {path}: {exc.strerror}") from exc

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        lines = b"".join(event.to_json() + b"\n" for event in batch)
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as exc:
            # A full disk may have room later: the runner retries the whole batch.
            raise SinkUnavailableError(f"cannot append to {self._settings.path}: {exc.strerror}") from exc
        return BatchResult.all_written(batch)

    def _append(self, lines: bytes) -> None:
        if self._file is None:
            raise SinkUnavailableError("the sink is not open")
        self._file.write(lines)
        self._file.flush()
        if self._settings.fsync:
            os.fsync(self._file.fileno())

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _open_for_append(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


SINK = SinkType(
    name="jsonl",
    settings=JsonlSettings,
    create=JsonlSink,
    description="Append each event to a file as one JSON line.",
)
