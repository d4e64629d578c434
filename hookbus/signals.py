"""How every hookbus process is told to stop: SIGTERM (an orchestrator) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Final

__all__ = ["STOP_SIGNALS", "stop_on_signals"]

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that either of :data:`STOP_SIGNALS` sets while the block runs, on the running
    loop; the handlers are removed after it (``hookbus dev`` runs inside tests' loops too)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
