"""The gateway's aiohttp runner: JSON refusals for requests aiohttp turns away before any handler
runs, and the moment each request's headers arrived.

aiohttp answers a request it cannot parse (a broken request line, a bad or oversized
header) itself, with a text/plain page that quotes the offending bytes back, an API key
included. There is no public hook for that page (aio-libs/aiohttp#3287, #9882), so the
gateway's runner swaps in a request handler whose error page is the gateway's own JSON
refusal, without the request's bytes. The tests of the gateway's limits and the fuzz suite
pin this behaviour, so an aiohttp upgrade that changes the internals used here fails loudly.

The answer deadline (:mod:`ingest.admission`) runs from when a request's headers were parsed,
not from when its handler got to run: the time a request waits for a busy event loop counts.
The connection stamps that moment as it parses; a connection holds one request at a time
(webhook senders do not pipeline), so the latest stamp is its request's. A pipelined request
queued behind another may read the stamp of one parsed after it: that only makes its deadline later.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hookbus.request import Reason
from ingest.gateway import BAD_REQUEST, UNEXPECTED_ERROR, json_error, retry_later


class _JsonRefusingRequestHandler(RequestHandler):
    __slots__ = ("headers_arrived_at",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers_arrived_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self.headers_arrived_at = time.monotonic()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own handling logs the error (hookbus.logging strips its quoted bytes) and
        # refuses to answer twice on a connection whose answer had begun; its page is dropped.
        super().handle_error(request, status, exc, message)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            response = retry_later(UNEXPECTED_ERROR, "the gateway could not handle the request; send it again later")
        elif status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            response = json_error(HTTPStatus(status), Reason.TOO_LARGE, "the request is larger than allowed")
        else:
            response = json_error(HTTPStatus(status), BAD_REQUEST, "the request is not valid HTTP/1.1")
        response.force_close()
        return response


class _JsonRefusingServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonRefusingRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections refuse unparseable requests in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application builds a plain Server; giving it our subclass (which adds no state)
        # changes only how it makes the per-connection handler.
        server.__class__ = _JsonRefusingServer
        return server
