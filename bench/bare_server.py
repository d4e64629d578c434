"""The gateway's ceiling: a bare aiohttp handler that reads the body and answers 200.

``python -m bench.bare_server --port P --workers N``. It runs with the gateway's runner
options and worker setup, so the difference to the gateway is verification, capture,
logging and publishing.
"""

from __future__ import annotations

from aiohttp import web

from bench.workers import arguments, serve

RUNNER_OPTIONS = {"access_log": None, "auto_decompress": False, "handle_signals": False}


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"id": "bare"})


def build() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/webhooks/{source}", accept)
    return app


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    serve(build, port=args.port, workers=args.workers, options=RUNNER_OPTIONS)


if __name__ == "__main__":
    main()
