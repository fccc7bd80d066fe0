"""A person registers, signs in, generates at 64×64 and watches it render, in Chromium."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in, screenshot

# Records every value the progress bars take, however the page updates them.
WATCH_PROGRESS = """
() => {
  window.__progress = [];
  const record = () => document.querySelectorAll('#timeline progress.task-progress').forEach(
      p => window.__progress.push([p.closest('.task').dataset.taskId, Number(p.value), Number(p.max)]));
  new MutationObserver(record).observe(document.getElementById('timeline'),
      {subtree: true, childList: true, attributes: true, attributeFilter: ['value', 'max']});
  window.__noReload = true;
}
"""


def test_register_sign_in_generate_and_watch_it_render(page):
    page.goto("/")
    screenshot(page, "landing")
    register_and_sign_in(page, "painter")
    expect(page.locator("#balance")).to_contain_text("20")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#timeline-empty")).to_be_visible()
    page.evaluate(WATCH_PROGRESS)

    page.fill("#prompt", "a lighthouse on a cliff at dusk, oil painting")
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#steps", "60")  # many quick steps, so the bar has time to move
    page.fill("#guidance", "7")
    page.fill("#samples", "2")
    expect(page.locator("#cost")).to_have_text("2")
    page.click("#generate")

    card = page.locator("#task-list article.task").first
    expect(card).to_be_visible()
    task_id = card.get_attribute("data-task-id")
    expect(card).to_have_attribute("data-state", "done", timeout=180_000)
    images = card.locator("img.task-image")
    expect(images).to_have_count(2)
    for i in range(2):
        expect(images.nth(i)).to_be_visible()
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") > 0
    expect(card.locator(".task-seed")).to_contain_text(re.compile(r"\d+"))
    expect(page.locator("#balance")).to_contain_text("18")

    seen = page.evaluate("window.__progress")
    values = sorted({value for tid, value, total in seen if tid == task_id and total == 120})
    # The bar (60 steps × 2 samples) moved step by step: several values in between were shown.
    assert len([v for v in values if 0 < v < 120]) >= 3, values
    assert page.evaluate("window.__noReload") is True  # the page never reloaded
    assert page.js_errors == []
    screenshot(page, "studio")


def test_a_bad_field_is_shown_next_to_it_and_nothing_is_charged(page):
    register_and_sign_in(page, "careful")
    page.fill("#prompt", "a fox")
    page.fill("#width", "100")  # not a multiple of 8
    page.click("#generate")
    expect(page.locator("#width-error")).to_be_visible()
    expect(page.locator("#width-error")).to_contain_text("multiple of 8")
    expect(page.locator("#balance")).to_contain_text("20")
    expect(page.locator("#task-list article.task")).to_have_count(0)


def test_the_studio_works_on_a_phone(phone):
    register_and_sign_in(phone, "pocket")
    expect(phone.locator("#panel-toggle")).to_be_visible()
    phone.click("#panel-toggle")
    expect(phone.locator("#prompt")).to_be_visible()
    phone.fill("#prompt", "a tiny robot")
    phone.fill("#width", "64")
    phone.fill("#height", "64")
    phone.fill("#steps", "4")
    phone.click("#generate")
    # The panel closes when a task is submitted, and the task shows in the timeline.
    expect(phone.locator("#prompt")).not_to_be_visible()
    card = phone.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=60_000)
    screenshot(phone, "studio-phone")


def test_pages_load_nothing_from_another_host(page, live):
    """No CDN: every request the pages make goes to this server."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    register_and_sign_in(page, "localonly")
    page.goto("/")
    page.goto("/studio")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    foreign = [url for url in requested if not url.startswith(live.url) and not url.startswith("data:")]
    assert foreign == []
    assert violations == []
