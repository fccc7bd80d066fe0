"""Fast mode in Chromium (issue 28): staff let users choose it for the FLUX.1 demo model
on Admin → Models (a UNet model has no select); the studio shows the Fast mode box for
that model only, sends it, and Reuse ticks it again.

The same live stack as test_studio_families.py (every family's demo models)."""
from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import STAFF_PASSWORD, browser_sign_in, flask_create_staff, new_page, register_and_sign_in


@pytest.fixture(scope="module")
def live(stack_factory):
    return stack_factory(web=1, DAYDREAM_PROGRESS_HZ=20, DAYDREAM_DEMO_MODELS="all").web(1)


def set_fast_mode(staff, model_id: str, mode: str) -> None:
    staff.goto("/admin/models")
    select = staff.locator(f'tr[data-model-id="{model_id}"] select.model-fast-mode')
    expect(select).to_be_visible()
    with staff.expect_response(lambda r: f"/api/v1/admin/models/{model_id}" in r.url
                               and r.request.method == "PATCH") as answered:
        select.select_option(mode)
    assert answered.value.status == 200 and answered.value.json()["fast_mode"] == mode


def test_staff_allow_fast_mode_and_the_studio_offers_sends_and_reuses_it(browser, live, page):
    boss = f"fastboss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    context, staff = new_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        set_fast_mode(staff, "demo-flux", "optional")
        expect(staff.locator('tr[data-model-id="demo"] .model-fast')).to_have_text("—")  # (SD 1.x: none)

        register_and_sign_in(page, "fastfan")
        page.select_option("#model", "demo-flux")
        box = page.locator("#fast")
        expect(page.locator("#fast-field")).to_be_visible()
        expect(box).not_to_be_checked()
        expect(box).to_be_enabled()
        expect(page.locator("#fast-help")).to_contain_text("first-block cache")
        box.check()
        page.fill("#prompt", "a quick harbour")
        page.fill("#width", "64")
        page.fill("#height", "64")
        page.fill("#steps", "3")
        with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
            page.click("#generate")
        assert json.loads(sent.value.post_data)["fast"] is True
        card = page.locator("#task-list article.task").first
        expect(card).to_have_attribute("data-state", "done", timeout=120_000)
        task = page.request.get(f"/api/v1/tasks/{card.get_attribute('data-task-id')}").json()
        assert task["fast"] is True

        page.select_option("#model", "demo")  # (no fast mode: the box goes)
        expect(page.locator("#fast-field")).to_be_hidden()
        card.locator(".task-reuse").click()
        expect(page.locator("#model")).to_have_value("demo-flux")
        expect(box).to_be_checked()
        assert page.js_errors == [] and staff.js_errors == []
    finally:
        set_fast_mode(staff, "demo-flux", "off")
        context.close()
