"""Installing a model from Admin → Models in Chromium: staff paste a hub repo id (served by
the run's HTTPS hub mirror, tests/helpers.py ModelFileServer), watch its progress bar move
until the job is done, enable the new model in the table, and generate with it in the
studio; a failed install is started again with its Retry button. On the stack of
tests/integration/test_model_install.py's settings."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import STAFF_PASSWORD, browser_sign_in, flask_create_staff, new_page
from tests.helpers import model_install_setup, wait_for

REPO = "tiny/sd1-browser"


@pytest.fixture(scope="module")
def install_live(stack_factory, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    server, settings, sources = model_install_setup(base)
    server.repos[REPO] = sources / "sd1"
    # The denoiser's weights arrive slowly enough (about 0.6 MB/s) to watch them.
    server.slow.add(f"/cdn/{REPO}/unet/")
    server.slow_chunk = 32 * 1024
    return stack_factory(web=1, archiver=True, **settings).web(1)


@pytest.fixture(scope="module")
def install_files(tmp_path_factory):
    """The run's model file server and the tiny model's sources (model_install_setup's)."""
    server, _settings, sources = model_install_setup(tmp_path_factory.getbasetemp())
    return server, sources


def test_staff_install_a_model_watch_it_enable_it_and_generate_with_it(browser, install_live):
    flask_create_staff(install_live, "modelkeeper")
    context, page = new_page(browser, install_live)
    try:
        browser_sign_in(page, "modelkeeper", STAFF_PASSWORD)
        page.goto("/admin/models")
        page.fill("#install-source", REPO)
        page.click("#install-start")
        job = page.locator("#model-jobs li.model-job").first
        expect(job).to_have_attribute("data-state", "running", timeout=60_000)
        bar = job.locator("progress.model-job__bar")
        expect(bar).to_be_visible()
        first = wait_value(bar, lambda v: v > 0)
        wait_value(bar, lambda v: v > first)  # it moves
        expect(job.locator(".model-job__progress")).to_contain_text(" of ")
        expect(job).to_have_attribute("data-state", "done", timeout=120_000)
        model_id = job.get_attribute("data-model-id")
        assert model_id
        row = page.locator(f"tr.model-row[data-model-id='{model_id}']")
        expect(row).to_have_attribute("data-enabled", "false", timeout=20_000)
        row.locator("input.model-enabled").check()
        expect(row).to_have_attribute("data-enabled", "true")
        # On a phone the form and the jobs list fit the screen's width.
        page.set_viewport_size({"width": 390, "height": 844})
        for part in ("#install-form", "#model-jobs"):
            assert page.locator(part).evaluate("e => e.getBoundingClientRect().right") <= 390, part
        page.set_viewport_size({"width": 1280, "height": 860})

        page.goto("/studio")
        page.select_option("#model", model_id)
        page.fill("#prompt", "a lighthouse from the installed model")
        page.fill("#width", "64")
        page.fill("#height", "64")
        page.fill("#steps", "2")
        expect(page.locator("#timeline-loading")).to_be_hidden()
        cards = page.locator("#task-list article.task")
        before = cards.count()
        page.click("#generate")
        expect(cards).to_have_count(before + 1)
        expect(cards.first).to_have_attribute("data-state", "done", timeout=180_000)
        expect(cards.first.locator("img.task-image")).to_have_count(1)
        assert page.js_errors == []
    finally:
        context.close()


def test_a_failed_install_is_started_again_with_its_retry_button(browser, install_live, install_files):
    (server, sources), path = install_files, "/files/retried-in-browser.safetensors"
    flask_create_staff(install_live, "retrykeeper")
    context, page = new_page(browser, install_live)
    try:
        browser_sign_in(page, "retrykeeper", STAFF_PASSWORD)
        page.goto("/admin/models")
        page.fill("#install-source", server.url(path))
        page.click("#install-start")
        failed = page.locator("#model-jobs li.model-job").first
        expect(failed).to_have_attribute("data-state", "failed", timeout=60_000)
        expect(failed.locator(".model-job__error")).to_contain_text("404")
        server.files[path] = (sources / "tiny-sd1.safetensors").read_bytes()  # the file is up now
        failed_id = failed.get_attribute("data-job-id")
        failed.locator("button.model-job__retry").click()
        retried = page.locator("#model-jobs li.model-job").first
        expect(retried).not_to_have_attribute("data-job-id", failed_id)
        expect(retried).to_have_attribute("data-state", "done", timeout=60_000)
        expect(page.locator("#install-status")).to_contain_text("again")
        expect(page.locator(f"#model-job-{failed_id}")).to_have_attribute("data-state", "failed")
        assert page.js_errors == []
    finally:
        context.close()


def wait_value(bar, test, timeout: float = 60):
    """The progress bar's value once test(value) holds (values above 0 only)."""
    def value():
        current = bar.evaluate("b => b.hasAttribute('value') ? b.value : -1")
        return current if current is not None and current > 0 and test(current) else None

    return wait_for(value, timeout, message="the progress bar to move")
