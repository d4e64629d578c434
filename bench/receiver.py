"""The HTTP forward sink's destination: answers 200 to every POST and counts them.

``python -m bench.receiver --port P``; ``GET /count`` answers the count so far.
"""

from __future__ import annotations

from aiohttp import web

from bench.bare_server import RUNNER_OPTIONS
from bench.workers import arguments, serve

COUNT_KEY: web.AppKey[list[int]] = web.AppKey("count")


async def receive(request: web.Request) -> web.Response:
    await request.read()
    request.app[COUNT_KEY][0] += 1
    return web.Response(status=200)


async def count(request: web.Request) -> web.Response:
    return web.json_response({"count": request.app[COUNT_KEY][0]})


def build() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[COUNT_KEY] = [0]
    app.router.add_post("/events", receive)
    app.router.add_get("/count", count)
    return app


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    serve(build, port=args.port, workers=1, options=RUNNER_OPTIONS)


if __name__ == "__main__":
    main()
