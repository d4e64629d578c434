"""The gateway with publishing switched off: the real application (routing, verification,
capture, logging) built with a publisher that acknowledges at once.

``python -m bench.nopublish_server --config F --port P --workers N``. The difference to the
real gateway is the cost of publishing with ``acks=all``.
"""

from __future__ import annotations

import functools
import time

from aiohttp import web

from bench.workers import arguments, serve
from hookbus.config import HookbusConfig, load_config
from hookbus.logging import configure_logging
from hookbus.rawevent import RawEvent
from ingest.gateway import build_app
from ingest.publisher import Receipt
from ingest.server import runner_options


class InstantPublisher:
    """Acknowledges every event at once without keeping it."""

    def __init__(self) -> None:
        self._offset = 0

    async def publish(self, event: RawEvent, *, kafka_until: float | None = None) -> Receipt:
        self._offset += 1
        return Receipt(topic="bench.nowhere", partition=0, offset=self._offset)

    async def ready(self) -> bool:
        return True


def build(config: HookbusConfig) -> web.Application:
    configure_logging("info")
    return build_app(config, publisher=InstantPublisher(), clock=time.time)


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    serve(functools.partial(build, config), port=args.port, workers=args.workers, options=runner_options(config))


if __name__ == "__main__":
    main()
