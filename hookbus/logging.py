"""JSON logs through structlog, one object per line on stderr.

Context is bound once (the service, the source) and travels with the logger. Nothing in
hookbus logs a body, a signature, an API key or a secret: log the reason, not the input.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

__all__ = [
    "configure_logging",
    "get_logger",
]


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


def configure_logging(level: str = "info", *, stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's logging to JSON lines on ``stream``."""
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
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder({"error_type"})],
        )
    )
    handler.addFilter(_WithoutRequestContent())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(**context: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger().bind(**context)
    return logger
