"""A small W3C WebDriver client for the console's browser tests: Debian's headless Chromium,
driven through its chromedriver over HTTP.

Why not Selenium: its client is synchronous, and the tests run the whole stack (gateway,
normalizer, sink, console) in the test's own event loop, so a blocking call would stop the
very servers the browser is talking to. The protocol the tests need is a dozen JSON calls
over aiohttp, which hookbus already depends on, and nothing here ever downloads a browser.

:func:`chromium` starts chromedriver on a free loopback port in a process group of its own
and, on leaving, ends the session (which quits Chromium) and then that process group by its
id, so no browser outlives a test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp

from tests.support import free_port

__all__ = [
    "CHROMEDRIVER_ENV",
    "CHROMIUM_ENV",
    "Browser",
    "BrowserMissingError",
    "Element",
    "WebDriverError",
    "browser_paths",
    "chromium",
]

CHROMIUM_ENV: Final = "HOOKBUS_CHROMIUM"
CHROMEDRIVER_ENV: Final = "HOOKBUS_CHROMEDRIVER"
WINDOW: Final = (1280, 800)
WAIT_SECONDS: Final = 20.0
POLL_SECONDS: Final = 0.1
START_SECONDS: Final = 20.0
STOP_SECONDS: Final = 10.0
# Flags that keep Chromium off the network it would otherwise try at every start.
CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
# The W3C key under which an element reference travels.
ELEMENT_KEY: Final = "element-6066-11e4-a52e-4f735466cecf"
T = TypeVar("T")


class WebDriverError(Exception):
    """chromedriver refused a command; ``reason`` is the W3C error code (``no such element``...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BrowserMissingError(WebDriverError):
    """Chromium or chromedriver is not installed (``scripts/bootstrap test`` installs both)."""


@dataclass(frozen=True, slots=True)
class BrowserPaths:
    chromium: str
    chromedriver: str


def browser_paths() -> BrowserPaths:
    """Where Chromium and chromedriver are: ``$HOOKBUS_CHROMIUM`` / ``$HOOKBUS_CHROMEDRIVER``, else the PATH."""
    found = {}
    for env, name in ((CHROMIUM_ENV, "chromium"), (CHROMEDRIVER_ENV, "chromedriver")):
        path = os.environ.get(env) or shutil.which(name)
        if not path:
            raise BrowserMissingError(
                "not installed", f"no {name} on the PATH (set ${env}, or run scripts/bootstrap test)"
            )
        found[name] = path
    return BrowserPaths(found["chromium"], found["chromedriver"])


async def until(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = WAIT_SECONDS) -> T:
    """``check()``'s first truthy answer, asked again until ``seconds`` pass; then AssertionError naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = await check()
        except WebDriverError as exc:
            if exc.reason not in {"stale element reference", "no such element"}:
                raise
            answer = None
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not show {what} within {seconds:.0f} s")
        await asyncio.sleep(POLL_SECONDS)


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the page, as chromedriver names it."""

    browser: Browser
    id: str

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.browser.command(method, f"/element/{self.id}{path}", payload)

    async def click(self) -> None:
        await self._call("POST", "/click", {})

    async def text(self) -> str:
        text: str = await self._call("GET", "/text")
        return text

    async def attribute(self, name: str) -> str | None:
        value: str | None = await self._call("GET", f"/attribute/{name}")
        return value

    async def property(self, name: str) -> Any:
        return await self._call("GET", f"/property/{name}")

    async def clear(self) -> None:
        await self._call("POST", "/clear", {})

    async def type(self, text: str) -> None:
        await self._call("POST", "/value", {"text": text})

    async def enabled(self) -> bool:
        enabled: bool = await self._call("GET", "/enabled")
        return enabled

    async def find_all(self, testid: str) -> list[Element]:
        found = await self._call("POST", "/elements", _by_testid(testid))
        return [Element(self.browser, item[ELEMENT_KEY]) for item in found]


def _by_testid(testid: str) -> dict[str, str]:
    return {"using": "css selector", "value": f'[data-testid="{testid}"]'}


@dataclass(frozen=True, slots=True)
class Browser:
    """A WebDriver session of one headless Chromium."""

    http: aiohttp.ClientSession
    base: str
    """``http://127.0.0.1:<port>/session/<id>``"""
    driver_pid: int
    """chromedriver's process id, also its process group's (Chromium's processes are in it)."""

    async def command(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        return await _command(self.http, method, self.base + path, payload)

    async def get(self, url: str) -> None:
        await self.command("POST", "/url", {"url": url})

    async def url(self) -> str:
        url: str = await self.command("GET", "/url")
        return url

    async def execute(self, script: str, *args: Any) -> Any:
        return await self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    async def find_all(self, testid: str) -> list[Element]:
        found = await self.command("POST", "/elements", _by_testid(testid))
        return [Element(self, item[ELEMENT_KEY]) for item in found]

    async def find_css(self, selector: str) -> list[Element]:
        found = await self.command("POST", "/elements", {"using": "css selector", "value": selector})
        return [Element(self, item[ELEMENT_KEY]) for item in found]

    async def wait_for(self, testid: str, seconds: float = WAIT_SECONDS) -> Element:
        """The first element with this ``data-testid`` once the page shows one."""

        async def first() -> Element | None:
            found = await self.find_all(testid)
            return found[0] if found else None

        return await until(first, f"a {testid!r}", seconds)

    async def wait_for_text(self, testid: str, wanted: str, seconds: float = WAIT_SECONDS) -> Element:
        """The first ``data-testid`` element whose text contains ``wanted``."""

        async def showing() -> Element | None:
            for element in await self.find_all(testid):
                if wanted in await element.text():
                    return element
            return None

        return await until(showing, f"{testid!r} with the text {wanted!r}", seconds)

    async def screenshot(self, path: Path) -> bytes:
        """A PNG of the viewport, written to ``path``."""
        encoded: str = await self.command("GET", "/screenshot")
        picture = base64.b64decode(encoded)
        await asyncio.to_thread(_write, path, picture)
        return picture


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _command(http: aiohttp.ClientSession, method: str, url: str, payload: dict[str, Any] | None) -> Any:
    async with http.request(method, url, json=payload) as response:
        document = await response.json(content_type=None)
    value = document.get("value") if isinstance(document, dict) else None
    if response.status != 200:
        error = value if isinstance(value, dict) else {}
        raise WebDriverError(str(error.get("error", response.status)), str(error.get("message", document))[:2000])
    return value


async def _wait_until_ready(http: aiohttp.ClientSession, base: str, driver: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if driver.returncode is not None:
            raise WebDriverError("driver exited", f"chromedriver exited with {driver.returncode} at start")
        with contextlib.suppress(aiohttp.ClientError):
            status = await _command(http, "GET", f"{base}/status", None)
            if status.get("ready"):
                return
        await asyncio.sleep(POLL_SECONDS)
    raise WebDriverError("driver not ready", f"chromedriver did not answer within {START_SECONDS:.0f} s")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium at 1280x800 with a fresh profile; :class:`BrowserMissingError` when not installed."""
    paths = browser_paths()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="hookbus-chromium-") as profile:
        driver = await asyncio.create_subprocess_exec(
            paths.chromedriver,
            f"--port={port}",
            "--allowed-ips=127.0.0.1",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
                await _wait_until_ready(http, base, driver)
                capabilities = {
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "chrome",
                            "goog:chromeOptions": {
                                "binary": paths.chromium,
                                "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"],
                            },
                        }
                    }
                }
                session = await _command(http, "POST", f"{base}/session", capabilities)
                browser = Browser(http, f"{base}/session/{session['sessionId']}", driver.pid)
                # --window-size sizes the window, toolbars included: the page itself gets exactly WINDOW.
                await browser.command(
                    "POST",
                    "/goog/cdp/execute",
                    {
                        "cmd": "Emulation.setDeviceMetricsOverride",
                        "params": {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
                    },
                )
                try:
                    yield browser
                finally:
                    with contextlib.suppress(WebDriverError, aiohttp.ClientError):
                        await _command(http, "DELETE", browser.base, None)
        finally:
            await _end_group(driver)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


async def _end_group(driver: asyncio.subprocess.Process) -> None:
    """End chromedriver's process group (its own, by ``start_new_session``: the driver and the
    Chromium it started), politely first."""
    group = driver.pid
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signum)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline and (driver.returncode is None or _group_alive(group)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(driver.wait(), POLL_SECONDS)
        if not _group_alive(group):
            return
