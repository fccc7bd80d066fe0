"""End-to-end: the real web server and worker, driven by headless Chromium (Playwright)."""
from __future__ import annotations

import pytest

from tests.e2e.helpers import chromium_path, new_page


@pytest.fixture(scope="session")
def live(stack_factory):
    """The web server of the e2e stack (a worker, an archive worker, progress at 20 Hz);
    its env and instance folder are live.env and live.instance."""
    return stack_factory(archiver=True, web=1, keep=True, DAYDREAM_PROGRESS_HZ=20).web(1)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live):
    context, page = new_page(browser, live)
    yield page
    context.close()


@pytest.fixture
def phone(browser, live):
    context = browser.new_context(base_url=live.url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
