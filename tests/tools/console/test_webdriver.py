"""The browser harness itself, against a throwaway page: it drives a real headless Chromium,
reads what the page shows, and leaves no browser process behind."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import free_port
from tests.tools.console.webdriver import Browser, WebDriverError, chromium

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>harness</title></head><body>
<label for="name">Name</label><input id="name" data-testid="name">
<button data-testid="greet" onclick="setTimeout(() => {
  document.querySelector('[data-testid=greeting]').textContent = 'Hello, ' +
  document.querySelector('[data-testid=name]').value; }, 300)">Greet</button>
<p data-testid="greeting" data-state="idle"></p></body></html>"""


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_the_browser_types_clicks_and_reads_what_the_page_shows_later(browser: Browser, page_url: str) -> None:
    await browser.get(page_url)
    await (await browser.wait_for("name")).type("Ada")
    await (await browser.wait_for("greet")).click()

    greeting = await browser.wait_for_text("greeting", "Hello, Ada")

    assert await greeting.attribute("data-state") == "idle"
    assert await browser.execute("return document.title") == "harness"


async def test_a_missing_element_is_named_when_waiting_gives_up(browser: Browser, page_url: str) -> None:
    await browser.get(page_url)

    with pytest.raises(AssertionError, match="'absent'"):
        await browser.wait_for("absent", seconds=0.5)
    with pytest.raises(WebDriverError) as refused:
        await browser.command("POST", "/element/not-an-element/click", {})
    assert refused.value.reason in {"no such element", "stale element reference"}


async def test_screenshots_are_1280_by_800_pngs(browser: Browser, page_url: str, tmp_path: Path) -> None:
    await browser.get(page_url)

    picture = await browser.screenshot(tmp_path / "page.png")

    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
    assert (width, height) == (1280, 800)


def _processes_of_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
    return found


async def test_leaving_the_browser_ends_chromedriver_and_chromium(browser_installed: None, page_url: str) -> None:
    async with chromium() as started:
        await started.get(page_url)
        driver_pid = started.driver_pid
        assert len(_processes_of_group(driver_pid)) >= 2, "chromedriver and Chromium run in the driver's group"

    assert _processes_of_group(driver_pid) == []
