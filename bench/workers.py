"""Serving an aiohttp application from N worker processes sharing one port (SO_REUSEPORT).

The bench's own servers use this, so they run with the same worker setup as the gateway
(uvloop when installed, one process per worker, the same runner options).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

AppFactory = Callable[[], web.Application]


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    return parser


async def _run(build: AppFactory, port: int, options: Mapping[str, Any], reuse_port: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build(), **options)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def _serve_one(build: AppFactory, port: int, options: Mapping[str, Any], reuse_port: bool) -> None:
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_run(build, port, options, reuse_port))


def serve(build: AppFactory, *, port: int, workers: int, options: Mapping[str, Any]) -> None:
    """Run ``workers`` processes serving ``build()`` on ``port`` until SIGTERM or SIGINT."""
    if workers <= 1:
        _serve_one(build, port, options, reuse_port=False)
        return
    children = [multiprocessing.Process(target=_serve_one, args=(build, port, options, True)) for _ in range(workers)]
    for process in children:
        process.start()

    def forward(signum: int, _: object) -> None:
        for process in children:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in children:
        process.join()
