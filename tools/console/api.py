"""The console's HTTP API and page (the contract in docs/console.md, the document in
:mod:`tools.console.openapi`).

Every path but ``/login``, ``/healthz`` and ``/readyz`` needs the token: ``Authorization:
Bearer <token>``, or the ``hookbus_console`` cookie ``POST /login`` sets. The cookie holds
an HMAC of a fixed label under the token, not the token itself, so a cookie read from a
browser's storage is worth nothing once the token is rotated. Both are compared with
:func:`hmac.compare_digest`. Failed sign-ins and bearer tokens are limited per client address
(:mod:`tools.console.attempts`): past the limit, 429 ``too_many_attempts`` with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web
from prometheus_client import Counter

from hookbus.cloudevent import CloudEvent, CloudEventError
from hookbus.config import HookbusConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.ops_server import Readiness, readiness_body
from hookbus.rawevent import RawEvent, RawEventError
from hookbus.requestlog import RequestLogEntry
from hookbus.sink import SinkUnavailableError
from hookbus.tracecontext import TRACEPARENT, TRACESTATE
from ingest.clientaddr import client_address
from normalizer.errors import ReplayError
from tools.console.attempts import FailedSignIns
from tools.console.bodies import MAX_SHOWN_CHARS, NO_BODY, BodyView, shown_json, view_body
from tools.console.explain import explain
from tools.console.fetch import RecordFetcher
from tools.console.index import MAX_PAGE, DeadLetterQuery, Index, IndexDatabase, IndexUnavailableError, RequestQuery
from tools.console.lag import LagProbe
from tools.console.openapi import openapi_document
from tools.console.replaying import Letter, replay_letters
from tools.console.settings import ConsoleSettings
from tools.errors import ConsoleError

__all__ = ["COOKIE", "STATIC_DIR", "Console", "console_app"]

COOKIE: Final = "hookbus_console"
STATIC_DIR: Final = Path(__file__).parent / "static"
OPEN_PATHS: Final = frozenset({"/login", "/healthz", "/readyz"})
VERDICTS: Final = ("accept", "reject", "failed")
MAX_STATS_MINUTES: Final = 7 * 24 * 60
MAX_FILTERED_REPLAY: Final = 10_000
"""The most dead letters one filtered replay takes; more is a job for ``hookbus replay``."""
_SESSION_LABEL: Final = b"hookbus console session v1"

API_REQUESTS: Final = Counter(
    "hookbus_console_api_requests_total", "Requests the console answered, by route and status.", ["route", "status"]
)


@dataclass(frozen=True, slots=True)
class Console:
    """What the handlers need."""

    config: HookbusConfig
    settings: ConsoleSettings
    index: Index
    fetcher: RecordFetcher
    lag: LagProbe
    readiness: Readiness
    sign_ins: FailedSignIns = field(default_factory=FailedSignIns)
    """The failed sign-ins of each client address, which past its limit may try no more for a while."""


CONSOLE: Final = web.AppKey("console", Console)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(ConsoleError):
    """A query parameter or body the API cannot take; answered 400."""

    reason = "bad_request"


@dataclass(frozen=True, slots=True)
class KeptBody:
    """The body the request page shows: the raw record's, or what the request log kept of a refused one."""

    data: bytes = field(repr=False)
    content_type: str | None
    source: str
    """``raw`` or ``refused_prefix``."""
    cut: bool
    """Only the first bytes of a longer body."""

    def view(self, entry: RequestLogEntry) -> BodyView:
        size = None if self.source == "raw" else entry.size
        return view_body(self.data, content_type=self.content_type, size=size, source=self.source, cut=self.cut)


def _error(status: HTTPStatus, reason: str, detail: str) -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status)


def _redirect(location: str, status: HTTPStatus) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _json(document: Any) -> web.Response:
    return web.Response(body=orjson.dumps(document), content_type="application/json")


def session_value(settings: ConsoleSettings) -> str:
    return hmac.new(settings.token.value, _SESSION_LABEL, hashlib.sha256).hexdigest()


def _is_token(given: str, settings: ConsoleSettings) -> bool:
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), settings.token.value)


def _bearer(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` without one."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given if scheme.lower() == "bearer" and given else None


def _has_session_cookie(request: web.Request, settings: ConsoleSettings) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    return hmac.compare_digest(cookie.encode("utf-8", "surrogatepass"), session_value(settings).encode("ascii"))


def _client(request: web.Request) -> str:
    """The client's address, behind the configuration's ``trusted_proxies`` as the gateway reads it."""
    forwarded_for = request.headers.getall("X-Forwarded-For", None)
    return client_address(
        request.remote, ",".join(forwarded_for) if forwarded_for else None, request.app[CONSOLE].config.trusted_proxies
    )


def _too_many_attempts(retry_after: int) -> web.Response:
    response = _error(
        HTTPStatus.TOO_MANY_REQUESTS,
        "too_many_attempts",
        f"too many failed sign-ins from this address: try again in {retry_after} s",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, then the handler; bad input is a 400, Kafka down a 503, each counted by route."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    response = await _answer(request, handler)
    API_REQUESTS.labels(route, str(response.status)).inc()
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in OPEN_PATHS:
        refused = _refusal(request)
        if refused is not None:
            return refused
    try:
        return await handler(request)
    except (BadRequest, ReplayError) as exc:
        return _error(HTTPStatus.BAD_REQUEST, exc.reason, exc.detail)
    except (KafkaUnavailableError, SinkUnavailableError, IndexUnavailableError) as exc:
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, exc.reason, exc.detail)


def _refusal(request: web.Request) -> web.Response | None:
    """Why a request without a valid token or cookie is not answered; ``None`` for one with either."""
    console = request.app[CONSOLE]
    given = _bearer(request)
    if given is not None:
        client = _client(request)
        retry_after = console.sign_ins.retry_after(client)
        if retry_after is not None:
            return _too_many_attempts(retry_after)
        if _is_token(given, console.settings):
            return None
        console.sign_ins.failed(client)
    elif _has_session_cookie(request, console.settings):
        return None
    if request.path.startswith("/api/"):
        response = _error(
            HTTPStatus.UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <token>, or sign in at /login"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="hookbus console"'
        return response
    return _redirect("/login", HTTPStatus.FOUND)


# --- query parameters -----------------------------------------------------------------------


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if value else None


def _number(query: Mapping[str, str], name: str) -> float | None:
    value = _text(query, name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be Unix seconds, not {value!r}") from exc


def _integer(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = _text(query, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer, not {value!r}") from exc


def _limit(query: Mapping[str, str]) -> int:
    limit = _integer(query, "limit", 50)
    assert limit is not None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be 1 to {MAX_PAGE}")
    return limit


def _cursor(query: Mapping[str, str]) -> str | None:
    cursor = _text(query, "before")
    if cursor is not None:
        moment, colon, _ = cursor.partition(":")
        try:
            float(moment)
        except ValueError:
            colon = ""
        if not colon:
            raise BadRequest("before must be the next of a previous page")
    return cursor


# --- the page and signing in ----------------------------------------------------------------

_LOGIN_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hookbus console: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}.error{{color:#b00020}}</style></head>
<body><h1>hookbus console</h1>{message}
<form method="post" action="/login">
<label for="token">Token (printed by <code>hookbus dev</code>, or <code>console.token</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required data-testid="login-token">
<button type="submit" data-testid="login-submit">Sign in</button>
</form></body></html>
"""


def _login_page(message: str | None = None, status: int = 200) -> web.Response:
    shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return web.Response(text=_LOGIN_PAGE.format(message=shown), content_type="text/html", status=status)


async def login_form(request: web.Request) -> web.Response:
    return _login_page()


async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    settings = console.settings
    client = _client(request)
    retry_after = console.sign_ins.retry_after(client)
    if retry_after is not None:
        return _too_many_attempts(retry_after)
    form = await request.post()
    given = form.get("token")
    if not isinstance(given, str) or not _is_token(given, settings):
        console.sign_ins.failed(client)
        return _login_page("That is not the console's token.", status=HTTPStatus.UNAUTHORIZED)
    response = _redirect("/", HTTPStatus.SEE_OTHER)
    response.set_cookie(
        COOKIE, session_value(settings), httponly=True, samesite="Strict", secure=request.secure, path="/"
    )
    return response


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    status, body = readiness_body(await request.app[CONSOLE].readiness.not_ready_reasons())
    return web.json_response(body, status=status)


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


# --- requests -------------------------------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    query = request.query
    verdict = _text(query, "verdict")
    if verdict is not None and verdict not in VERDICTS:
        raise BadRequest(f"verdict must be one of {', '.join(VERDICTS)}")
    selected = RequestQuery(
        source=_text(query, "source"),
        provider=_text(query, "provider"),
        verdict=verdict,
        reason=_text(query, "reason"),
        type=_text(query, "type"),
        status=_integer(query, "status"),
        since=_number(query, "since"),
        until=_number(query, "until"),
        q=_text(query, "q"),
        after=_number(query, "after"),
        before=_cursor(query),
        limit=_limit(query),
    )
    found = await request.app[CONSOLE].index.run(lambda database: database.requests(selected))
    return _json({"items": found.items, "next": found.next})


async def _kept_body(console: Console, entry: RequestLogEntry) -> KeptBody | None:
    """The body the page shows, or ``None`` when there is none to show (or Kafka no longer has it)."""
    content_type = entry.headers.get("content-type")
    raw = entry.raw
    if raw is not None and not raw.spooled and raw.partition is not None and raw.offset is not None:
        record = await console.fetcher.record(raw.topic, raw.partition, raw.offset)
        if record is None:
            return None
        try:
            event = RawEvent.from_kafka(record.headers, record.value)
        except RawEventError:
            return None
        return KeptBody(event.body, event.content_type or content_type, "raw", cut=False)
    if entry.body_prefix is not None:
        cut = entry.size is None or entry.size > len(entry.body_prefix)
        return KeptBody(entry.body_prefix, content_type, "refused_prefix", cut)
    return None


async def _event(console: Console, event_id: str | None) -> CloudEvent | None:
    if event_id is None:
        return None
    at = await console.index.run(lambda database: database.event_at(event_id))
    if at is None:
        return None
    record = await console.fetcher.record(*at)
    if record is None:
        return None
    try:
        return CloudEvent.from_kafka(record.headers, record.value)
    except CloudEventError:
        return None


def _trace(entry: RequestLogEntry, event: CloudEvent | None) -> dict[str, str | None] | None:
    carried = event.extensions if event is not None else {}
    parent = carried.get(TRACEPARENT) or entry.headers.get(TRACEPARENT)
    if not parent:
        return None
    state = carried.get(TRACESTATE) or entry.headers.get(TRACESTATE)
    return {"traceparent": str(parent), "tracestate": None if state is None else str(state)}


async def _found(request: web.Request) -> tuple[RequestLogEntry, dict[str, Any]] | web.Response:
    request_id = request.match_info["id"]
    found = await request.app[CONSOLE].index.run(lambda database: database.request(request_id))
    if found is None:
        return _error(HTTPStatus.NOT_FOUND, "not_found", "the index has no request with this id")
    return found


async def request_detail(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    found = await _found(request)
    if isinstance(found, web.Response):
        return found
    entry, summary = found
    event_id = summary["event_id"]
    kept = await _kept_body(console, entry)
    body = NO_BODY if kept is None else kept.view(entry)
    event = await _event(console, event_id)
    letters = await console.index.run(lambda database: database.dead_letters_of(entry.ingest_id, event_id))
    reports = await console.index.run(lambda database: database.deliveries(event_id) if event_id else [])
    logged = orjson.loads(entry.to_json())
    logged.pop("body_prefix", None)
    document = {
        "request": logged,
        "body": body.to_dict(),
        "explanation": explain(entry, console.config.source(entry.source)).to_dict(),
        # The event as encoded by hookbus: exact numbers included, which a float would round.
        "event": None if event is None else orjson.Fragment(event.to_json()),
        # What the page shows of it: a JavaScript reader of "event" would round such numbers.
        "event_text": None if event is None else _event_text(event.to_json()),
        "dead_letters": letters,
        "deliveries": reports,
        "trace": _trace(entry, event),
    }
    return _json(document)


def _event_text(event_json: bytes) -> str:
    shown, _ = shown_json(event_json)
    return shown[:MAX_SHOWN_CHARS]


async def request_body(request: web.Request) -> web.Response:
    found = await _found(request)
    if isinstance(found, web.Response):
        return found
    entry, _ = found
    kept = await _kept_body(request.app[CONSOLE], entry)
    if kept is None:
        return _error(HTTPStatus.NOT_FOUND, "no_body", "no body is kept for this request (or Kafka no longer has it)")
    name = f"{entry.id}.body" if kept.source == "raw" else f"{entry.id}.prefix"
    # Downloaded, never rendered: a body is whatever a sender chose, and must not run as a page of the console.
    return web.Response(
        body=kept.data,
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{_safe_file_name(name)}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _safe_file_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)


# --- dead letters and replays ---------------------------------------------------------------


async def list_dead_letters(request: web.Request) -> web.Response:
    query = request.query
    selected = DeadLetterQuery(
        stage=_text(query, "stage"),
        reason=_text(query, "reason"),
        source=_text(query, "source"),
        since=_number(query, "since"),
        until=_number(query, "until"),
        before=_cursor(query),
        limit=_limit(query),
    )
    found = await request.app[CONSOLE].index.run(lambda database: database.dead_letters(selected))
    return _json({"items": found.items, "next": found.next})


async def replays(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        document = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body must be JSON") from exc
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dry_run must be true or false")
    ids, chosen, body = document.get("dead_letters"), document.get("filter"), document.get("body")
    if (ids is None) == (chosen is None):
        raise BadRequest("give either dead_letters (ids) or filter")
    if body is not None and not isinstance(body, str):
        raise BadRequest("body must be a string")
    if ids is not None:
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(item, str) for item in ids)
            or len(ids) > MAX_PAGE
        ):
            raise BadRequest(f"dead_letters must be a list of 1 to {MAX_PAGE} dead-letter ids")
        letters = await _letters(console, tuple(ids))
    else:
        if body is not None:
            raise BadRequest("a corrected body replays one dead letter named in dead_letters")
        selected = _replay_filter(chosen)
        found = await console.index.run(lambda database: database.dead_letters(selected))
        if found.next is not None:
            raise BadRequest(
                f"the filter selects more than {MAX_FILTERED_REPLAY} dead letters: narrow it, or use hookbus replay"
            )
        letters = [_letter(item) for item in found.items]
    encoded = None if body is None else body.encode("utf-8")
    outcome = await replay_letters(console.config, letters, dry_run=dry_run, body=encoded)
    return _json(outcome.to_dict())


async def _letters(console: Console, ids: tuple[str, ...]) -> list[Letter]:
    known = await console.index.run(lambda database: database.dead_letters(DeadLetterQuery(ids=ids, limit=MAX_PAGE)))
    by_id = {item["id"]: item for item in known.items}
    missing = [item for item in ids if item not in by_id]
    if missing:
        raise BadRequest(f"the index has no dead letter {missing[0]}")
    return [_letter(by_id[item]) for item in dict.fromkeys(ids)]


def _letter(item: Mapping[str, Any]) -> Letter:
    return Letter(item["partition"], item["offset"], item["sink"])


def _replay_filter(chosen: Any) -> DeadLetterQuery:
    """The dead letters a replay's ``filter`` selects, as the dead-letter list selects them."""
    if not isinstance(chosen, dict):
        raise BadRequest("filter must be an object")
    unknown = sorted(set(chosen) - {"stage", "reason", "source", "since", "until"})
    if unknown:
        raise BadRequest(f"filter has no key {unknown[0]!r}")
    for name in ("stage", "reason", "source"):
        if chosen.get(name) is not None and not isinstance(chosen[name], str):
            raise BadRequest(f"filter.{name} must be a string")
    for name in ("since", "until"):
        if chosen.get(name) is not None and not isinstance(chosen[name], int | float):
            raise BadRequest(f"filter.{name} must be Unix seconds")
    return DeadLetterQuery(
        stage=chosen.get("stage") or None,
        reason=chosen.get("reason") or None,
        source=chosen.get("source") or None,
        since=chosen.get("since"),
        until=chosen.get("until"),
        limit=MAX_FILTERED_REPLAY,
    )


# --- stats and filters ----------------------------------------------------------------------


async def stats(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    minutes = _integer(request.query, "minutes", 60)
    assert minutes is not None
    if not 1 <= minutes <= MAX_STATS_MINUTES:
        raise BadRequest(f"minutes must be 1 to {MAX_STATS_MINUTES}")
    since = time.time() - minutes * 60
    per_minute = await console.index.run(lambda database: database.requests_per_minute(since))
    return _json({"requests_per_minute": per_minute, "lag": await console.lag.lag()})


async def filters(request: web.Request) -> web.Response:
    return _json(await request.app[CONSOLE].index.run(IndexDatabase.filter_values))


ROUTES: Final[tuple[tuple[str, str, Handler], ...]] = (
    ("GET", "/", page),
    ("GET", "/login", login_form),
    ("POST", "/login", login),
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/api/openapi.json", openapi),
    ("GET", "/api/v1/requests", list_requests),
    ("GET", "/api/v1/requests/{id}", request_detail),
    ("GET", "/api/v1/requests/{id}/body", request_body),
    ("GET", "/api/v1/dead-letters", list_dead_letters),
    ("POST", "/api/v1/replays", replays),
    ("GET", "/api/v1/stats", stats),
    ("GET", "/api/v1/filters", filters),
)


def console_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=16 * 1024 * 1024)
    app[CONSOLE] = console
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_static("/static", STATIC_DIR, append_version=False)
    return app
