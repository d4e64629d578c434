"""The browser fixture of the console's browser tests.

A missing Chromium skips them on a developer's machine with what to run, and fails them in
CI: the browser tests are how the console is known to work, never silently absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import in_ci
from tests.tools.console.webdriver import Browser, BrowserMissingError, browser_paths, chromium


@pytest.fixture
def browser_installed() -> None:
    """Chromium and chromedriver are there, or the test is skipped (failed in CI)."""
    try:
        browser_paths()
    except BrowserMissingError as exc:
        if in_ci():
            pytest.fail(f"the browser tests need Chromium, which CI must provide: {exc.detail}", pytrace=False)
        pytest.skip(f"Chromium is not installed: {exc.detail}")


@pytest.fixture
async def browser(browser_installed: None) -> AsyncIterator[Browser]:
    """A headless Chromium, quit with its driver after the test."""
    async with chromium() as started:
        yield started
