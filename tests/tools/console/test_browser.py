"""The console as a person uses it, in a real headless Chromium, against a real ``hookbus dev`` stack.

The stack is the one ``hookbus dev`` runs (:func:`tools.devstack.pipeline`: the gateway, the
normalizer, the SQLite sink and the console, configured from ``dev.yaml`` with one example
source per installed provider and generated credentials), on topics of the test broker that
belong to this module. Before the tests, every provider's example webhook is sent signed as
the provider signs it, plus one with a bad signature (refused) and one correctly signed that
the normalizer cannot map (dead-lettered). Each test then signs in with the token and does
what a user does: search, open, read, replay; it asserts only on what the page shows.

Screenshots of the list, a request page, the dead letters and the charts are taken on the
way, 1280x800; with ``$HOOKBUS_SCREENSHOTS`` set (``scripts/screenshots`` sets it to
docs/screenshots) they are written there, else to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from hookbus.config import HookbusConfig
from hookbus.kafka import ensure_topics, hookbus_topics
from hookbus.provider import Credentials, providers
from tests.support import free_port
from tests.test_e2e import Pipeline
from tests.tools.console.webdriver import Browser, until
from tools.devstack import DevOptions, DevState, dev_config_document, load_dev_config, pipeline, supervise
from tools.send import example_body, sign, stored_credentials, webhook_url

pytestmark = [pytest.mark.kafka]

SCREENSHOTS_ENV = "HOOKBUS_SCREENSHOTS"
START_SECONDS = 90.0
INDEX_SECONDS = 60.0
UNMAPPED_SOURCE = "generic"
"""Its mapping takes the event's id and type from the body: a body without them cannot become an event."""
REFUSED_SOURCE = "october"
TOKEN_VARIABLE = "HOOKBUS_DEV_CONSOLE_SECRET"


@dataclasses.dataclass(frozen=True, slots=True)
class Sent:
    """One webhook the test posted and what the gateway answered."""

    source: str
    status: int
    ingest_id: str | None
    subject: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Stack:
    config: HookbusConfig
    state: DevState
    gateway_url: str
    console_url: str
    token: str
    accepted: dict[str, Sent]
    """By source: every provider's example, accepted."""
    refused: Sent
    unmapped: Sent
    screenshots: Path


async def _post(http: aiohttp.ClientSession, gateway: str, source: str, body: bytes, credentials: Credentials) -> Sent:
    signed = sign(source, body, credentials)
    async with http.post(
        webhook_url(gateway, source), data=body, headers=signed.headers, params=signed.query
    ) as answer:
        document = await answer.json(content_type=None)
    ingest_id = document.get("id") if isinstance(document, dict) else None
    return Sent(source, answer.status, ingest_id if isinstance(ingest_id, str) else None)


async def _send_every_provider(
    config: HookbusConfig, state: DevState, gateway: str
) -> tuple[dict[str, Sent], Sent, Sent]:
    accepted = {}
    async with aiohttp.ClientSession() as http:
        for source in sorted(providers()):
            credentials = stored_credentials(state, source)
            body = example_body(source)
            sent = await _post(http, gateway, source, body, credentials)
            assert sent.status == 202 or 200 <= sent.status < 300, sent
            # The subject the normalizer gives this request, as `hookbus normalize` would print it.
            event = Pipeline(config, gateway, time.time(), http).canonical(
                source, body, sign(source, body, credentials)
            )
            accepted[source] = dataclasses.replace(sent, subject=event.subject)
        refused = await _post(
            http,
            gateway,
            REFUSED_SOURCE,
            example_body(REFUSED_SOURCE),
            Credentials(secret=b"not-the-configured-secret"),
        )
        assert refused.status == 401, refused
        unmapped = await _post(
            http,
            gateway,
            UNMAPPED_SOURCE,
            b'{"customer_id": "cus-unmapped"}',
            stored_credentials(state, UNMAPPED_SOURCE),
        )
        assert 200 <= unmapped.status < 300, unmapped
    return accepted, refused, unmapped


async def _indexed(config: HookbusConfig, console_url: str, token: str, requests: int) -> None:
    """Wait until the console's API lists every request sent and the normalizer's dead letter."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:

        async def caught_up() -> bool:
            async with http.get(f"{console_url}api/v1/requests", params={"limit": "500"}) as listed:
                items = (await listed.json())["items"]
            async with http.get(f"{console_url}api/v1/dead-letters", params={"stage": "normalizer"}) as dead:
                letters = (await dead.json())["items"]
            return len(items) >= requests and len(letters) >= 1

        await until(caught_up, "every request in the console's index", INDEX_SECONDS)


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("dev")
    options = DevOptions(
        state_dir=directory,
        bootstrap=kafka_bootstrap,
        port=free_port(),
        console_port=free_port(),
        topic_prefix=f"browser-{uuid.uuid4().hex[:8]}",
    )
    state = DevState.prepare(directory, yaml.safe_dump(dev_config_document(), sort_keys=False))
    config = load_dev_config(state, options, kafka_bootstrap)
    await ensure_topics(config.kafka, hookbus_topics(config))
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(supervise(pipeline(config, options), stop, on_ready=ready.set))
    try:
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({running, waiting}, timeout=START_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert ready.is_set(), f"hookbus dev's services did not start: {running.result() if running.done() else ''}"
        accepted, refused, unmapped = await _send_every_provider(config, state, options.url)
        token = state.values[TOKEN_VARIABLE]
        await _indexed(config, options.console_url, token, len(accepted) + 2)
        screenshots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
        yield Stack(config, state, options.url, options.console_url, token, accepted, refused, unmapped, screenshots)
    finally:
        stop.set()
        failures = await asyncio.wait_for(running, 60)
        assert failures == {}, failures


# --- what a person does ------------------------------------------------------------------------


async def sign_in(browser: Browser, stack: Stack) -> None:
    await browser.get(stack.console_url)
    await (await browser.wait_for("login-token")).type(stack.token)
    await (await browser.wait_for("login-submit")).click()
    await browser.wait_for("request-row")


async def rows(browser: Browser) -> list[str]:
    return [str(await row.attribute("data-id")) for row in await browser.find_all("request-row")]


async def open_request(browser: Browser, row_id: str) -> None:
    (link,) = await browser.find_css(f'[data-testid="request-row"][data-id="{row_id}"] a')
    await link.click()
    await browser.wait_for("request-detail")


async def text_of(browser: Browser, testid: str) -> str:
    return await (await browser.wait_for(testid)).text()


async def search(browser: Browser, wanted: str) -> list[str]:
    """Type ``wanted`` into the search box; the rows the list then shows."""
    box = await browser.wait_for("search")
    await box.clear()
    await box.type(wanted)

    async def narrowed() -> list[str] | None:
        shown = await rows(browser)
        return shown if len(shown) == 1 else None

    return await until(narrowed, f"one request for {wanted!r}")


async def shot(browser: Browser, stack: Stack, name: str) -> None:
    picture = await browser.screenshot(stack.screenshots / f"{name}.png")
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")) == (1280, 800)


async def test_a_user_finds_a_webhook_by_subject_and_sees_its_event(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)

    shown = await until(
        lambda: _all_rows(browser, len(stack.accepted) + 2), "every request sent in the list", INDEX_SECONDS
    )
    await shot(browser, stack, "requests")
    times = [float(str(await row.attribute("data-time"))) for row in await browser.find_all("request-row")]
    assert times == sorted(times, reverse=True), "newest first"
    assert len(set(shown)) == len(shown), "each request once"

    wanted = next(sent for sent in stack.accepted.values() if sent.subject)
    (found,) = await search(browser, str(wanted.subject))
    await open_request(browser, found)

    detail = await text_of(browser, "request-detail")
    assert str(wanted.ingest_id) in detail
    event = orjson.loads(await text_of(browser, "cloudevent"))
    assert event["subject"] == wanted.subject
    assert event["ingestid"] == wanted.ingest_id
    assert (await text_of(browser, "verdict-explanation")).strip()
    headers = await text_of(browser, "request-headers")
    assert "content-type" in headers
    body = await (await browser.wait_for("request-body")).attribute("data-kind")
    assert body in {"json", "text", "binary"}
    await shot(browser, stack, "request")


async def _all_rows(browser: Browser, count: int) -> list[str] | None:
    shown = await rows(browser)
    return shown if len(shown) >= count else None


async def test_a_new_webhook_appears_in_the_open_list_without_a_reload(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)
    before = set(await rows(browser))
    async with aiohttp.ClientSession() as http:
        credentials = stored_credentials(stack.state, "officernd")
        sent = await _post(http, stack.gateway_url, "officernd", example_body("officernd"), credentials)
    assert sent.ingest_id is not None

    async def arrived() -> bool:
        return bool(set(await rows(browser)) - before)

    await until(arrived, "the new request", INDEX_SECONDS)
    first = (await browser.find_all("request-row"))[0]
    assert "officernd" in await first.text()


async def test_a_refused_webhook_is_explained(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)
    # Typing into a select chooses the option, as a keyboard user does.
    await (await browser.wait_for("filter-verdict")).type("reject")

    async def only_refused() -> list[str] | None:
        shown = await rows(browser)
        return shown if len(shown) == 1 else None

    (refused,) = await until(only_refused, "only the refused request")
    await open_request(browser, refused)

    explanation = await text_of(browser, "verdict-explanation")
    assert "signature" in explanation.lower()
    assert "not-the-configured-secret" not in await text_of(browser, "request-detail")
    assert "No CloudEvent" in await text_of(browser, "cloudevent")
    body = await browser.wait_for("request-body")
    assert "refused" in (await body.text()).lower()


async def test_a_dead_letter_is_replayed_with_a_corrected_body_and_delivered(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)
    await (await browser.wait_for("nav-dead-letters")).click()
    letter = await browser.wait_for("dead-letter-row")
    letter_text = await letter.text()
    assert "normalizer" in letter_text
    assert stack.unmapped.ingest_id is not None
    assert stack.unmapped.ingest_id in letter_text

    await (await browser.wait_for("replay-filtered")).click()
    count = await browser.wait_for_text("replay-dry-run-count", "would be replayed")
    # As it is, the body would be dead-lettered again, and the dry run says so before anything is replayed.
    assert await count.text() == (
        "1 dead letter would be replayed (dead-lettered for missing_field: 1); 1 would fail again."
    )
    await shot(browser, stack, "dead-letters")

    await (await letter.find_all("replay-edit"))[0].click()
    editor = await browser.wait_for("replay-body")
    assert "cus-unmapped" in str(await editor.property("value"))
    await editor.clear()
    await editor.type(example_body(UNMAPPED_SOURCE).decode())

    async def counted_as_mapping() -> bool:
        shown = await text_of(browser, "replay-dry-run-count")
        return shown == "1 dead letter would be replayed (dead-lettered for missing_field: 1)."

    await until(counted_as_mapping, "a dry run of the corrected body that would not fail again")
    await (await browser.wait_for("replay-confirm")).click()
    result = await browser.wait_for_text("replay-result", "Replayed 1 of 1")
    assert "still failing" not in await result.text()

    await browser.get(f"{stack.console_url}#/requests/{stack.unmapped.ingest_id}")

    async def event_shown() -> dict[str, Any] | None:
        shown = await browser.find_all("cloudevent")
        if not shown:
            return None
        text = await shown[0].text()
        return orjson.loads(text) if text.startswith("{") else None

    event = await until(event_shown, "the CloudEvent of the replayed body", INDEX_SECONDS)
    assert event["ingestid"] == stack.unmapped.ingest_id
    assert event["source"].endswith(UNMAPPED_SOURCE)


async def test_the_charts_show_requests_per_minute_and_lag(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)
    await (await browser.wait_for("nav-charts")).click()
    requests = await browser.wait_for("chart-requests")
    lag = await browser.wait_for("chart-lag")

    # One bar (with its tooltip) per minute and verdict that had requests.
    bars = await until(
        lambda: browser.find_css('[data-testid="chart-requests"] svg rect title'), "bars of requests per minute"
    )
    tooltips = [str(await bar.property("textContent")) for bar in bars]
    assert any(tip.endswith(" reject") for tip in tooltips), tooltips
    labels = await requests.text()
    assert "accept" in labels
    assert "reject" in labels
    for source in stack.accepted:
        assert source in labels
    stages = await lag.text()
    assert "normalizer" in stages
    await shot(browser, stack, "charts")


async def test_the_request_page_shows_that_the_sink_wrote_the_event(browser: Browser, stack: Stack) -> None:
    await sign_in(browser, stack)
    wanted = next(sent for sent in stack.accepted.values() if sent.subject)
    (found,) = await search(browser, str(wanted.subject))
    await open_request(browser, found)

    written = await browser.wait_for_text("delivery-entry", "written", seconds=30)

    assert await written.attribute("data-sink") == "sqlite"
    assert await written.attribute("data-outcome") == "written"
