"""Logs through structlog on stderr: JSON lines for machines, readable lines for a person.

``--log-format auto`` (the default) writes readable lines when stderr is a terminal and JSON
lines everywhere else (containers, files, pipes), so a collector never has to parse prose.
Context is bound once (the service, the source) and travels with the logger. Nothing in
hookbus logs a body, a signature, an API key or a secret: log the reason, not the input.
"""

from __future__ import annotations

import argparse
import enum
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO, cast

import orjson
import structlog

__all__ = [
    "LOG_FORMAT_ENV",
    "LOG_LEVELS",
    "LOG_LEVEL_ENV",
    "REPEAT_INTERVAL_SECONDS",
    "LogFormat",
    "LogOptions",
    "add_logging_arguments",
    "configure_logging",
    "get_logger",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ENV = "HOOKBUS_LOG_LEVEL"
LOG_FORMAT_ENV = "HOOKBUS_LOG_FORMAT"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    """``console`` on a terminal, ``json`` elsewhere."""
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True)
class LogOptions:
    """How a process logs: what the ``--log-level`` and ``--log-format`` options chose."""

    level: str = "info"
    log_format: LogFormat = LogFormat.AUTO

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LogOptions:
        return cls(level=args.log_level, log_format=LogFormat(args.log_format))


def add_logging_arguments(parser: argparse.ArgumentParser, *, keep_parent_default: bool = False) -> None:
    """``--log-level`` and ``--log-format``, defaulting to ``$HOOKBUS_LOG_LEVEL`` and
    ``$HOOKBUS_LOG_FORMAT``. On a subcommand's parser (``keep_parent_default``) an option not
    given leaves the value the main parser read, so both ``hookbus --log-level warning dev``
    and ``hookbus dev --log-level warning`` work."""

    def default(env: str, fallback: str, choices: tuple[str, ...]) -> str:
        if keep_parent_default:
            return argparse.SUPPRESS
        value = os.environ.get(env, fallback).lower()
        if value not in choices:
            parser.error(f"${env} is {value!r}; choose one of {', '.join(choices)}")
        return value

    formats = tuple(item.value for item in LogFormat)
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=default(LOG_LEVEL_ENV, "info", LOG_LEVELS),
        help=f"the least severe lines shown (default: ${LOG_LEVEL_ENV} or info)",
    )
    parser.add_argument(
        "--log-format",
        choices=formats,
        type=str.lower,
        default=default(LOG_FORMAT_ENV, LogFormat.AUTO.value, formats),
        help=f"json, console (readable lines) or auto: console on a terminal (default: ${LOG_FORMAT_ENV} or auto)",
    )


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


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of each write: logging is set up once per
    process, and whoever replaces stderr later (a test's capture, a daemonizing wrapper) is
    still written to, never a stream closed since."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _renderer(log_format: LogFormat, stream: TextIO) -> structlog.types.Processor:
    if log_format is LogFormat.AUTO:
        log_format = LogFormat.CONSOLE if _is_terminal(stream) else LogFormat.JSON
    if log_format is LogFormat.JSON:
        return structlog.processors.JSONRenderer(serializer=_dumps)
    # Colour only for a terminal that wants it (https://no-color.org); the lines read the
    # same without it.
    colors = _is_terminal(stream) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    return structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)


def _renders_json(renderer: structlog.types.Processor) -> bool:
    return isinstance(renderer, structlog.processors.JSONRenderer)


def configure_logging(
    level: str = "info",
    *,
    log_format: LogFormat = LogFormat.JSON,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Route structlog and the standard library's logging to ``stream`` (stderr by default),
    as JSON lines or, with :attr:`LogFormat.CONSOLE`, as readable lines.

    Repeated lines of the Kafka client are held back (the first of each kind is shown, then
    a count every :data:`REPEAT_INTERVAL_SECONDS` of ``clock``)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    output = stream if stream is not None else cast(TextIO, _CurrentStderr())
    renderer = _renderer(log_format, output)
    # The console renderer formats tracebacks itself; JSON wants them as a field.
    tracebacks = [structlog.processors.format_exc_info] if _renders_json(renderer) else []
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            *tracebacks,
            renderer,
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
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
