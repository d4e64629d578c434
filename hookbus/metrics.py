"""Prometheus metrics: what every hookbus process serves on ``/metrics``, and the rules its labels keep.

Each stage defines its own metrics (``ingest.metrics``, ``normalizer.metrics``,
:mod:`hookbus.stage.metrics`) in prometheus_client's default registry; this module turns that
registry into the text exposition format, whether the process runs alone or as one of the
gateway's ``--workers N``.

**Several processes, one answer.** The gateway's workers share one port (SO_REUSEPORT), so a
scrape reaches whichever worker the kernel picks: a worker that exposed only its own counts
would make every scrape a different, partial answer. The workers therefore run in
prometheus_client's multiprocess mode: the parent creates a directory for the run
(:func:`multiprocess_directory`) and names it in ``PROMETHEUS_MULTIPROC_DIR`` before it
starts them, each worker writes its values to memory-mapped files there, and the worker
that answers a scrape sums every worker's files (:func:`exposition`). The other choice,
each worker on a port of its own, would make the operator configure N scrape targets and
sum them in every query. A gauge that describes a live process (requests in flight, spool
depth) is summed over the live workers only: the parent marks a worker that exited as dead.

**Bounded labels.** A label value comes from a closed set: configured names (sources,
sinks, consumer groups), the reasons and statuses hookbus answers with, the event types a
provider documents. Never an id, a path or anything a sender chose: an unknown source is
:data:`UNKNOWN`, an event type no provider documents is :data:`OTHER`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

__all__ = [
    "BYTES_BUCKETS",
    "CONTENT_TYPE",
    "MULTIPROCESS_DIRECTORY_VARIABLE",
    "NONE",
    "OTHER",
    "SECONDS_BUCKETS",
    "UNKNOWN",
    "exposition",
    "mark_process_dead",
    "multiprocess_directory",
]

MULTIPROCESS_DIRECTORY_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Where the processes of one run keep their values; set, prometheus_client runs in multiprocess mode."""
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

UNKNOWN: Final = "_unknown"
"""The label value of a name hookbus does not know (a source or provider; no configured name starts with ``_``)."""
OTHER: Final = "other"
"""The label value of an event type the provider does not document."""
NONE: Final = "none"
"""The ``reason`` of what was not refused."""

SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0)
"""From a millisecond (a request answered at once) to the longest a publish or a batch should take;
2 s is the gateway's default answer deadline, so its histogram says what share met it."""
BYTES_BUCKETS: Final = tuple(float(4**power * 256) for power in range(9))
"""256 B to 16 MiB, by fours: webhook bodies range from a few hundred bytes to the largest a source accepts."""


def exposition() -> bytes:
    """Every metric of this process, or of every process of the run in multiprocess mode, as text."""
    directory = os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE)
    if directory is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """A fresh directory for the values of the processes started within the block, named in
    ``PROMETHEUS_MULTIPROC_DIR`` for them (they inherit the environment), removed afterwards.

    Fresh for every run: values left by an earlier run would be counted again."""
    directory = Path(tempfile.mkdtemp(prefix="hookbus-metrics-"))
    previous = os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE)
    os.environ[MULTIPROCESS_DIRECTORY_VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIRECTORY_VARIABLE, None)
        else:
            os.environ[MULTIPROCESS_DIRECTORY_VARIABLE] = previous
        shutil.rmtree(directory, ignore_errors=True)


def mark_process_dead(pid: int, directory: Path) -> None:
    """Leave out a process that exited from the gauges of live processes; its counters still count."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
