"""``hookbus send``: post a realistic example event to a gateway, signed as its provider signs.

The request is what the provider itself would send: its headers, a signature over the exact
bytes of the body, a fresh timestamp, and fresh ids in the body so that every send is a
distinct event. The credentials default to the ones ``hookbus dev`` generated into its
state directory, so on a development machine ``hookbus send october`` is all it takes.

The examples and their signing are each provider's own (:class:`hookbus.provider.Examples`),
written from the provider's documentation independently of its verifier, so a successful
send is also a check of the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

from hookbus.errors import ConfigError
from hookbus.provider import Credentials, SignedRequest, provider, providers
from tools.devstack import DEFAULT_STATE_DIR, DevState, RunningDev, user_state_home

DEFAULT_URL = "http://127.0.0.1:8080"
WEBHOOK_PATH = "/webhooks/"
REQUEST_TIMEOUT_SECONDS = 30.0


def example_body(provider_name: str, event_type: str | None = None, *, now: float | None = None) -> bytes:
    """A fresh example event of a provider as the exact bytes the provider would post."""
    examples = provider(provider_name).examples
    chosen = event_type or examples.event_types[0]
    if chosen not in examples.event_types:
        raise ValueError(f"{provider_name} has no event type {chosen!r}; known: {', '.join(examples.event_types)}")
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return orjson.dumps(examples.body(chosen, moment))


def sign(
    provider_name: str,
    body: bytes,
    credentials: Credentials,
    *,
    event_type: str | None = None,
    now: float | None = None,
) -> SignedRequest:
    """The headers and query a provider sends with ``body``, an event of ``event_type`` (default:
    its provider's first), signed at ``now`` (default: now).

    :class:`~hookbus.errors.ConfigError` when ``credentials`` lack what the provider needs.
    """
    examples = provider(provider_name).examples
    chosen = event_type or examples.event_types[0]
    return examples.sign(body, chosen, credentials, time.time() if now is None else now)


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway answered one request."""

    status: int
    ingest_id: str | None
    detail: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def webhook_url(base_url: str, source: str) -> str:
    return base_url.rstrip("/") + WEBHOOK_PATH + quote(source, safe="")


def _answer(status: int, text: str) -> Answer:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        ingest_id = document.get("id")
        detail = " ".join(str(document[key]) for key in ("error", "detail") if document.get(key))
        return Answer(status, ingest_id if isinstance(ingest_id, str) else None, detail)
    return Answer(status, None, text.strip()[:200])


async def send_events(
    *,
    url: str,
    source: str,
    provider_name: str,
    event_type: str | None,
    credentials: Credentials,
    count: int = 1,
    report: Callable[[str, Answer], None] | None = None,
) -> list[Answer]:
    """Send ``count`` fresh example events, one after the other; the gateway's answers in order."""
    answers = []
    chosen = event_type or provider(provider_name).examples.event_types[0]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            body = example_body(provider_name, chosen)
            signed = sign(provider_name, body, credentials, event_type=chosen)
            async with session.post(
                webhook_url(url, source), data=body, headers=signed.headers, params=signed.query
            ) as response:
                answer = _answer(response.status, await response.text())
            answers.append(answer)
            if report is not None:
                report(chosen, answer)
    return answers


# --- the command --------------------------------------------------------------------------


def _print_answer(event_type: str, answer: Answer) -> None:
    words = [event_type, str(answer.status)]
    if answer.ingest_id:
        words.append(f"id={answer.ingest_id}")
    if answer.detail:
        words.append(answer.detail)
    print(" ".join(words), flush=True)


def stored_credentials(state: DevState, source: str) -> Credentials:
    """The credentials ``hookbus dev`` generated for ``source`` (none when it has not)."""
    secret = state.secret(source)
    return Credentials(secret=secret.encode("utf-8") if secret is not None else None, api_key=state.api_key(source))


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send and with which ``hookbus dev`` state: the options given, else what the
    last ``hookbus dev`` recorded (:class:`~tools.devstack.RunningDev`), else ``./var/dev``."""

    url: str
    state: DevState
    looked_in: tuple[Path, ...]


def find_target(url: str | None, state_dir: str | None) -> Target:
    if state_dir is not None:
        directories = [Path(state_dir)]
    else:
        running = RunningDev.read()
        directories = [*([running.state_dir] if running else []), DEFAULT_STATE_DIR.absolute()]
        if url is None and running is not None:
            url = running.url
    states = [DevState.read(directory) for directory in directories]
    state = next((state for state in states if state.values), states[0])
    return Target(url or DEFAULT_URL, state, tuple(directories))


def _credentials(args: argparse.Namespace, state: DevState) -> Credentials:
    stored = stored_credentials(state, args.source or args.provider)
    secret = args.secret.encode("utf-8") if args.secret is not None else stored.secret
    api_key = args.api_key if args.api_key is not None else stored.api_key
    return Credentials(secret=secret, api_key=api_key)


def _no_state_message(target: Target) -> str:
    looked = ", ".join(str(directory / "secrets.env") for directory in target.looked_in)
    return (
        f"found no `hookbus dev` secrets (looked for {looked}; a running `hookbus dev` records itself in "
        f"{user_state_home()}). Start `hookbus dev` first, pass --state-dir DIR (the --state-dir it runs with), "
        "or give the source's --secret / --api-key"
    )


class SendCommand:
    name = "send"
    help = "Post a realistic example event of a provider to a running gateway, signed as the provider signs."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("provider", choices=list(providers()), help="the provider whose event to send")
        parser.add_argument(
            "event_type",
            nargs="?",
            help="the event type (default: the first of its provider's); "
            + "; ".join(f"{name}: {', '.join(item.examples.event_types)}" for name, item in providers().items()),
        )
        parser.add_argument("--url", help=f"the gateway (default: the last hookbus dev started's, else {DEFAULT_URL})")
        parser.add_argument("--source", help="the source name in the URL (default: the provider's name)")
        parser.add_argument("--secret", help="the signing secret (default: from the hookbus dev state)")
        parser.add_argument("--api-key", help="the API key (default: from the hookbus dev state)")
        parser.add_argument("--count", type=int, default=1, help="how many distinct events to send (default: 1)")
        parser.add_argument(
            "--state-dir",
            help="where hookbus dev keeps its secrets "
            f"(default: the last hookbus dev started's, else {DEFAULT_STATE_DIR})",
        )

    def run(self, args: argparse.Namespace) -> int:
        examples = provider(args.provider).examples
        if args.event_type is not None and args.event_type not in examples.event_types:
            print(
                f"hookbus send: {args.provider} has no event type {args.event_type!r}; "
                f"known: {', '.join(examples.event_types)}",
                file=sys.stderr,
            )
            return 2
        if args.count < 1:
            print("hookbus send: --count must be at least 1", file=sys.stderr)
            return 2
        target = find_target(args.url, args.state_dir)
        credentials = _credentials(args, target.state)
        try:
            # Signing an example checks the credentials before anything is sent.
            examples.sign(b"{}", examples.event_types[0], credentials, time.time())
        except ConfigError as exc:
            detail = exc.detail if target.state.values else _no_state_message(target)
            print(f"hookbus send: {detail}", file=sys.stderr)
            return 2
        try:
            answers = asyncio.run(
                send_events(
                    url=target.url,
                    source=args.source or args.provider,
                    provider_name=args.provider,
                    event_type=args.event_type,
                    credentials=credentials,
                    count=args.count,
                    report=_print_answer,
                )
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            print(f"hookbus send: cannot reach {target.url}: {exc}", file=sys.stderr)
            return 1
        return 0 if all(answer.accepted for answer in answers) else 1


SEND = SendCommand()
