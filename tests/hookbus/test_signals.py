"""The stop every hookbus process waits for: SIGTERM or SIGINT, its handlers gone after the block."""

from __future__ import annotations

import asyncio
import os

import pytest

from hookbus.signals import STOP_SIGNALS, stop_on_signals


@pytest.mark.parametrize("signum", STOP_SIGNALS)
async def test_either_stop_signal_sets_the_event_and_the_handler_goes_with_the_block(signum: int) -> None:
    loop = asyncio.get_running_loop()
    with stop_on_signals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signum)
        await asyncio.wait_for(stop.wait(), 5)
    # Removed: a second removal finds no handler of the loop's.
    assert not loop.remove_signal_handler(signum)
