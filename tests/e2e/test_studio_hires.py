"""The studio's Hires fix in Chromium: switched on at ×2 on the demo model, its cost is in
the cost line before submitting, the task makes a picture twice the first pass's size, and
"Reuse settings" brings the hires fix back."""
from __future__ import annotations

import math

from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in


def test_hires_fix_doubles_the_picture_and_comes_back_with_reuse(page):
    register_and_sign_in(page, "hiresfan")
    expect(page.locator("#hires-options")).to_be_hidden()
    page.fill("#prompt", "a lighthouse, hires")
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#steps", "2")
    page.fill("#samples", "1")
    page.check("#hires_enabled")
    expect(page.locator("#hires-options")).to_be_visible()
    page.fill("#hires_scale", "2")
    page.fill("#hires_steps", "4")
    page.fill("#hires_denoising", "0.5")
    expect(page.locator("#hires-line")).to_contain_text("128 × 128")
    # The cost: the first pass, and the second (int(4 × 0.5) steps) at 128 × 128, as the server says.
    expected = math.ceil(2 * 64 * 64 / (50 * 512 * 512)) + math.ceil(2 * 128 * 128 / (50 * 512 * 512))
    expect(page.locator("#cost")).to_have_attribute("data-source", "server", timeout=10_000)
    expect(page.locator("#cost")).to_have_attribute("data-cost", str(expected))

    cards = page.locator("#task-list article.task")
    expect(page.locator("#timeline-loading")).to_be_hidden()
    before = cards.count()
    page.click("#generate")
    expect(cards).to_have_count(before + 1)
    card = cards.first
    expect(card).to_have_attribute("data-state", "done", timeout=90_000)
    task = page.request.get("/api/v1/tasks/" + card.get_attribute("data-task-id")).json()
    assert task["hires"]["width"] == 128 and task["cost"] == expected
    image = task["images"][0]
    assert (image["width"], image["height"]) == (128, 128)
    size = page.evaluate("""async (url) => {
        const picture = new Image(); picture.src = url; await picture.decode();
        return [picture.naturalWidth, picture.naturalHeight]; }""", image["url"])
    assert size == [128, 128]

    # Reuse: the hires fix comes back switched on with its settings.
    page.uncheck("#hires_enabled")
    expect(page.locator("#hires-options")).to_be_hidden()
    card.locator(".task-reuse").click()
    expect(page.locator("#hires_enabled")).to_be_checked()
    expect(page.locator("#hires_steps")).to_have_value("4")
    expect(page.locator("#hires-line")).to_contain_text("128 × 128")
