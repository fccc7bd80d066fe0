"""End-to-end: the real web server and worker, driven by headless Chromium (Playwright)."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT, ArchiveWorkerProcess, WebServer, WorkerProcess, instance_env, make_app

MEDIA = ROOT / "media"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed; `make test` installs it (apt-get install chromium)")


@pytest.fixture(scope="session")
def live(tmp_path_factory, redis_url, models_path):
    instance = tmp_path_factory.mktemp("e2e")
    env = instance_env(instance, redis_url, models_path, DAYDREAM_PROGRESS_HZ=20)
    make_app(env)  # migrates the database
    worker = WorkerProcess(env, instance / "worker.log").start()
    archiver = ArchiveWorkerProcess(env, instance / "archiver.log").start()
    web = WebServer(env, instance / "web.log").start()
    web.env, web.instance = env, instance
    yield web
    web.stop()
    archiver.stop()
    worker.stop()


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


def new_page(browser, live, viewport=None):
    """A page in a browser context of its own (its own cookies): a second person, or
    the same person on another device. Browser JS errors collect in page.js_errors."""
    context = browser.new_context(base_url=live.url, viewport=viewport or {"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return context, page


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


def screenshot(page, name: str) -> None:
    """Screenshots of the main pages for the README (media/)."""
    if os.environ.get("DAYDREAM_SCREENSHOTS", "1") == "1":
        MEDIA.mkdir(exist_ok=True)
        page.screenshot(path=str(MEDIA / f"{name}.png"))
