"""Upscale in Chromium: from the gallery's lightbox, ×2 with a refining pass shows its
cost, then its progress, and the new image opens with "Upscaled from" linking its source;
the studio's timeline shows the upscale's card, and a card's image upscales from there too."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.helpers import generate_in_studio, register_and_sign_in

# Every text the progress line shows, kept by the page (the line changes faster than a poll).
RECORD_PROGRESS = """() => {
  window.upscaleTexts = [];
  const line = document.getElementById("upscale-progress-text");
  new MutationObserver(() => window.upscaleTexts.push(line.textContent))
    .observe(line, {childList: true, characterData: true, subtree: true});
}"""


def test_upscale_x2_from_the_lightbox_shows_progress_and_the_new_image_names_its_source(page):
    register_and_sign_in(page, "enlarger")
    # 256 px: its refined ×2 (512 px, the demo model's 64 px tiles: some 160 steps) runs for
    # seconds, long enough for the page's polls (every 0.4 s) to see it running.
    task_id = generate_in_studio(page, "a small red boat on a calm sea", 1, size=256)
    source = page.request.get(f"/api/v1/tasks/{task_id}").json()["images"][0]

    page.goto("/images")
    page.locator("#gallery-grid .tile").first.locator(".tile__link").click()
    expect(page.locator("#lightbox")).to_be_visible()
    form = page.locator("#upscale-form")
    expect(form).to_be_visible()
    expect(page.locator("#upscale-cost")).to_contain_text("Costs 1 token · 512 × 512")
    page.click("#upscale-form [data-scale='4']")
    expect(page.locator("#upscale-cost")).to_contain_text("1024 × 1024")
    page.click("#upscale-form [data-scale='2']")
    page.check("#upscale-refine")
    expect(page.locator("#upscale-cost")).to_contain_text("512 × 512")
    expect(page.locator("#upscale-go")).to_have_text("Upscale ×2")
    expect(page.locator("#upscale-go")).to_be_enabled()
    before = page.request.get("/api/v1/me").json()["tokens"]

    page.evaluate(RECORD_PROGRESS)
    page.click("#upscale-go")
    expect(page.locator("#upscale-progress")).to_be_visible()
    expect(page.locator("#upscale-progress-text")).to_contain_text("Done: 512 × 512", timeout=90_000)
    texts = page.evaluate("window.upscaleTexts")
    assert any(re.match(r"Upscaling… \d+ of \d+", text) for text in texts), texts

    # The lightbox shows the new image: its details link the source.
    link = page.locator("#detail-source")
    expect(link).to_be_visible()
    expect(page.locator(".detail-source dt")).to_have_text("Upscaled from")
    expect(link).to_have_attribute("href", f"/images/{source['id']}")
    expect(page.locator("#detail-params")).to_contain_text("512 × 512")
    expect(page.locator("#detail-params")).to_contain_text("×2, Lanczos, refined")
    after = page.request.get("/api/v1/me").json()["tokens"]
    assert after < before  # charged (the refined upscale's cost)
    link.click()
    expect(page).to_have_url(re.compile(rf"/images/{source['id']}$"))
    expect(page.locator("#lightbox")).to_be_visible()
    expect(page.locator("#detail-source")).to_have_count(0)

    # The studio's timeline: the upscale's card, and Upscale from a card's image.
    page.goto("/studio")
    cards = page.locator("#task-list article.task")
    expect(cards.first.locator(".task-init")).to_have_text("Upscale ×2 · Lanczos · refined 0.3")
    expect(cards.first).to_have_attribute("data-state", "done")
    expect(cards.first.locator(".task-source")).to_have_text("Upscaled from the original")
    expect(cards.first.locator(".task-source a")).to_have_attribute("href", f"/images/{source['id']}")
    count = cards.count()
    original = page.locator(f"#task-list article.task[data-task-id='{task_id}']")
    original.locator(".image-upscale").click()
    dialog = page.locator("#upscale-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#upscale-dialog-cost")).to_contain_text("Costs 1 token · 512 × 512")
    dialog.locator("#upscale-dialog-go").click()
    expect(dialog).to_have_count(0)
    expect(cards).to_have_count(count + 1)
    expect(cards.first.locator(".task-init")).to_have_text("Upscale ×2 · Lanczos")
    expect(cards.first).to_have_attribute("data-state", "done", timeout=60_000)
    assert page.js_errors == []
