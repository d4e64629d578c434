"""JSON logs through structlog, one object per line on stderr.

Context is bound once (the service, the source) and travels with the logger. Nothing in
hookbus logs a body, a signature, an API key or a secret: log the reason, not the input.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
import structlog

__all__ = [
    "REPEAT_INTERVAL_SECONDS",
    "configure_logging",
    "get_logger",
]

REPEAT_INTERVAL_SECONDS = 30.0
"""At most one line per kind of a library's repeated lines in this long (see configure_logging)."""
REPEAT_HELD_BACK_LOGGERS = ("aiokafka", "kafka")
_MOST_KINDS_REMEMBERED = 1024


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode("utf-8")


class _WithoutRequestContent(logging.Filter):
    """aiohttp logs a malformed request with a traceback whose message quotes the request's
    own bytes (a header line, which may hold an API key or a signature). Keep the kind of
    error, drop its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("aiohttp") and record.exc_info and record.exc_info[0] is not None:
            record.error_type = record.exc_info[0].__name__
            record.exc_info = None
            record.exc_text = None
        return True


@dataclass(slots=True)
class _Kind:
    shown_at: float
    held_back: int = 0


class _RepeatsHeldBack(logging.Filter):
    """When Kafka is away, aiokafka logs the same few lines every retry (some hundred a minute
    per client), which buries everything else. Of each kind of line (its logger, level and
    message template, whatever the arguments), the first is let through, then at most one per
    :data:`REPEAT_INTERVAL_SECONDS`, carrying ``repeated``: how many of its kind were held back
    since the previous one. A kind quiet for longer than the interval shows its next line at
    once, so the start of a new outage is never hidden."""

    def __init__(self, prefixes: tuple[str, ...], clock: Callable[[], float]) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._clock = clock
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        # aiokafka logs from the event loop, but any thread may log through the same handler.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                if len(self._kinds) >= _MOST_KINDS_REMEMBERED:
                    # Templates are few; a library formatting its own messages could make
                    # them many, and forgetting only means showing a first line again.
                    self._kinds.clear()
                self._kinds[key] = _Kind(shown_at=now)
                return True
            if now - kind.shown_at < REPEAT_INTERVAL_SECONDS:
                kind.held_back += 1
                return False
            if kind.held_back:
                record.repeated = kind.held_back
            kind.shown_at, kind.held_back = now, 0
        return True


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
) -> None:
    """Route structlog and the standard library's logging to JSON lines on ``stream``.

    Repeated lines of the Kafka client are held back (the first of each kind is shown, then
    a count every :data:`REPEAT_INTERVAL_SECONDS` of ``clock``)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    output = stream if stream is not None else sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (message and newline together), so lines of several worker
        # processes sharing stderr never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiokafka, aiohttp) log through the standard library: same format, same stream.
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(serializer=_dumps),
            ],
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder({"error_type", "repeated"}),
            ],
        )
    )
    handler.addFilter(_WithoutRequestContent())
    handler.addFilter(_RepeatsHeldBack(REPEAT_HELD_BACK_LOGGERS, clock))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(**context: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger().bind(**context)
    return logger
