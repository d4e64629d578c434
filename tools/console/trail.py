"""``hookbus requests --trail ID``: one request's trail, asked of the running console's API."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Final, TextIO

import aiohttp
import orjson

from hookbus.config import HookbusConfig
from hookbus.rawevent import format_time
from tools.console.settings import console_settings

__all__ = ["console_url", "print_trail"]

EXIT_OK: Final = 0
EXIT_UNAVAILABLE: Final = 1
EXIT_NOT_FOUND: Final = 3
TIMEOUT_SECONDS: Final = 10.0
_ANY_ADDRESS: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not listened on


def console_url(config: HookbusConfig) -> str:
    """Where the configuration's console listens, as a client on this machine reaches it."""
    settings = console_settings(config)
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    return f"http://{host}:{settings.port}"


async def _detail(config: HookbusConfig, request_id: str) -> tuple[int, Any]:
    token = console_settings(config).token.value.decode("utf-8")
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        ) as session,
        session.get(f"{console_url(config)}/api/v1/requests/{request_id}") as response,
    ):
        return response.status, orjson.loads(await response.read())


def _lines(document: dict[str, Any]) -> list[str]:
    request, explanation = document["request"], document["explanation"]
    reason = f" reason={request['reason']}" if request["reason"] else ""
    lines = [
        f"request   {format_time(request['time'])} {request['status']} {request['verdict']} {request['method']}"
        f" {request['source']}{reason} id={request['id']}",
        f"verdict   {explanation['title']}: {explanation['text']}",
        *(f"  hint    {hint}" for hint in explanation["hints"]),
    ]
    body = document["body"]
    if body["kind"] != "none":
        kind = body["kind"] + (f" with {body['file_type']}" if body["file_type"] and body["kind"] == "json" else "")
        if body["kind"] == "binary" and body["file_type"]:
            kind = body["file_type"]
        lines.append(f"body      {kind}, {body['size']} bytes ({body['source']})")
    event = document["event"]
    if event is not None:
        lines.append(f"event     {event['id']} {event['type']} subject={event.get('subject') or '-'}")
    for letter in document["dead_letters"]:
        lines.append(
            f"dead      {format_time(letter['time'])} {letter['stage']} {letter['reason']}: {letter['detail']}"
            f" ({letter['id']}{', edited' if letter['edited'] else ''})"
        )
    for report in document["deliveries"]:
        why = f" {report['reason']}" if report.get("reason") else ""
        lines.append(
            f"delivery  {format_time(report['time'])} {report['sink']} {report['outcome']}"
            f" attempt={report['attempt']}{why}"
        )
    if document["trace"] is not None:
        lines.append(f"trace     {document['trace']['traceparent']}")
    return lines


def print_trail(config: HookbusConfig, request_id: str, out: TextIO, *, as_json: bool = False) -> int:
    """Print the trail of ``request_id``: 0, 3 when the console does not know it, 1 when no console answers."""
    try:
        status, document = asyncio.run(_detail(config, request_id))
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        print(
            f"hookbus requests: no console answers at {console_url(config)} ({type(exc).__name__});"
            " the trail comes from a running `hookbus console` or `hookbus dev`",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    if status != 200:
        print(f"hookbus requests: {document.get('error')}: {document.get('detail')}", file=sys.stderr)
        return EXIT_NOT_FOUND if status == 404 else EXIT_UNAVAILABLE
    if as_json:
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.writelines(line + "\n" for line in _lines(document))
    return EXIT_OK
