"""The studio panel in Chromium: the demo model's quick defaults and defaults that follow
the model, the panel kept per user across reloads (and "Reset to defaults"), fitting an
init image of another shape, the cost line and focus with invalid fields, the queue-full
line, the model's name and the demo-model notice on a desktop and on a phone."""
from __future__ import annotations

import io
import json
import re

from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests.e2e.helpers import PASSWORD, register_and_sign_in

BIG_MODEL = {"id": "big", "name": "Big Model XL with a rather long name", "default": False, "kind": "hub"}


def with_a_second_model(route):
    """/studio as if staff had enabled a second, real model (its defaults are the table's)."""
    response = route.fetch()
    html = response.text()
    match = re.search(r'(<script type="application/json" id="studio-config">)(.*?)(</script>)', html, re.S)
    config = json.loads(match.group(2))
    config["models"].append(BIG_MODEL)
    config["model_defaults"]["big"] = dict(config["model_defaults"]["demo"], width=512, height=512, steps=30)
    html = html.replace(match.group(0), match.group(1) + json.dumps(config) + match.group(3))
    html = html.replace("</select>", f'<option value="big" title="{BIG_MODEL["name"]}">{BIG_MODEL["name"]}</option></select>', 1)
    route.fulfill(response=response, body=html)


def wide_png() -> bytes:
    picture = Image.new("RGB", (600, 400), (240, 240, 240))
    ImageDraw.Draw(picture).rectangle((0, 0, 60, 399), fill=(200, 30, 30))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_demo_model_starts_quick_and_the_size_and_steps_follow_the_model(page):
    register_and_sign_in(page, "quickstart")
    expect(page.locator("#width")).to_have_value("256")
    expect(page.locator("#height")).to_have_value("256")
    expect(page.locator("#steps")).to_have_value("8")
    expect(page.locator("#cost")).to_have_text("1")

    page.route(re.compile(r"/studio$"), with_a_second_model)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    page.select_option("#model", "big")
    expect(page.locator("#width")).to_have_value("512")
    expect(page.locator("#steps")).to_have_value("30")
    expect(page.locator("#model")).to_have_attribute("title", BIG_MODEL["name"])
    page.select_option("#model", "demo")
    expect(page.locator("#steps")).to_have_value("8")
    expect(page.locator("#width")).to_have_value("256")
    # A field the user changed stays as it is; the others follow.
    page.fill("#steps", "12")
    page.select_option("#model", "big")
    expect(page.locator("#width")).to_have_value("512")
    expect(page.locator("#steps")).to_have_value("12")
    assert page.js_errors == []


def test_the_panel_is_kept_per_user_across_reloads_and_resets_to_defaults(page):
    register_and_sign_in(page, "keeper")
    page.fill("#prompt", "a lighthouse in the fog")
    page.fill("#steps", "14")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#prompt")).to_have_value("a lighthouse in the fog")
    expect(page.locator("#steps")).to_have_value("14")
    expect(page.locator("#steps-range")).to_have_value("14")

    reset = page.get_by_role("button", name="Reset to defaults")
    expect(reset).to_be_visible()
    reset.click()
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator("#steps")).to_have_value("8")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator("#steps")).to_have_value("8")

    # Someone else signing in in the same browser does not see this user's panel.
    page.fill("#prompt", "keeper's secret idea")
    page.fill("#steps", "20")
    page.reload()
    expect(page.locator("#prompt")).to_have_value("keeper's secret idea")
    page.click("form[action='/logout'] button")
    page.goto("/register")
    page.fill("input[name=username]", "otherkeeper")
    page.fill("input[name=email]", "otherkeeper@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/studio$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator("#steps")).to_have_value("8")
    assert page.js_errors == []


def test_an_init_image_of_another_shape_can_be_matched_and_says_how_it_is_fitted(page):
    register_and_sign_in(page, "fitter")
    page.set_input_files("#init-file", files=[{"name": "wide.png", "mimeType": "image/png", "buffer": wide_png()}])
    expect(page.locator("#init-preview")).to_be_visible()
    expect(page.locator("#init-size")).to_contain_text("600 × 400")  # kept at its size, fitted at task time
    line = page.locator("#init-fit-line")
    expect(page.locator("#init-fit")).to_be_visible()
    expect(line).to_contain_text("Cropped to fill 256 × 256")
    expect(line).to_contain_text("left and right edges are cut off")
    page.get_by_text("Fit with padding").click()
    expect(line).to_contain_text("Fitted inside 256 × 256")
    expect(line).to_contain_text("top and bottom are padded with black")

    page.get_by_role("button", name="Match its shape").click()
    expect(page.locator("#width")).to_have_value("312")
    expect(page.locator("#height")).to_have_value("208")
    expect(line).to_contain_text("has the shape of 312 × 208")

    page.fill("#prompt", "a wide field")
    page.fill("#steps", "2")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    body = json.loads(sent.value.post_data)
    assert body["init_fit"] == "contain" and (body["width"], body["height"]) == (312, 208)
    card = page.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=180_000)
    assert page.js_errors == []


def test_invalid_fields_read_clearly_and_the_first_one_is_focused(page):
    register_and_sign_in(page, "fixer")
    page.fill("#steps", "")
    expect(page.locator("#cost-line")).to_contain_text("Cost unknown: fix the fields above")
    expect(page.locator("#cost-line")).not_to_contain_text("–")
    page.fill("#steps", "4")
    expect(page.locator("#cost-line")).to_contain_text("1 token")
    # An empty prompt and a guidance out of range: the prompt (first in the form) gets the focus.
    page.fill("#prompt", "")
    page.fill("#guidance", "99")
    page.click("#generate")
    expect(page.locator("#guidance-error")).to_be_visible()
    expect(page.locator("#prompt-error")).to_be_visible()
    expect(page.locator("#prompt")).to_be_focused()
    assert page.js_errors == []


def test_the_queue_full_line_says_once_that_nothing_was_charged(page):
    register_and_sign_in(page, "crowded")

    def full(route):
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=429, headers={"Retry-After": "15"}, content_type="application/json",
                      body=json.dumps({"error": {"code": "queue_full",
                                                 "message": "The queue is full; try again shortly. Nothing was charged."}}))

    page.route("**/api/v1/tasks", full)
    page.fill("#prompt", "a crowded harbour")
    page.click("#generate")
    error = page.locator("#form-error")
    expect(error).to_contain_text(re.compile(r"^The queue is full\. Nothing was charged; try again in 1[345] s\.$"))
    assert error.inner_text().count("Nothing was charged") == 1


FITS = """
() => {
  const select = document.getElementById('model');
  const style = getComputedStyle(select);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = style.font;
  const text = select.options[select.selectedIndex].textContent.trim();
  const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return {text, needed: ctx.measureText(text).width, room, title: select.title};
}
"""


def test_the_model_name_fits_and_the_demo_notice_can_be_dismissed(page):
    register_and_sign_in(page, "deskdemo")
    fit = page.evaluate(FITS)
    assert fit["needed"] <= fit["room"], fit
    assert fit["title"].startswith("Demo (tiny")
    notice = page.locator("#demo-notice")
    expect(notice).to_be_visible()
    page.get_by_role("button", name="Dismiss the demo model notice").click()
    expect(notice).to_be_hidden()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(notice).to_be_hidden()
    assert page.js_errors == []


def test_on_a_phone_the_demo_notice_is_compact_and_can_be_dismissed(phone):
    register_and_sign_in(phone, "phonedemo")
    notice = phone.locator("#demo-notice")
    expect(notice).to_be_visible()
    box = notice.bounding_box()
    assert box["height"] <= 844 / 8, box  # not a third of the screen
    phone.get_by_role("button", name="Dismiss the demo model notice").click()
    expect(notice).to_be_hidden()
    phone.reload()
    expect(phone.locator("body")).to_have_attribute("data-ready", "studio")
    expect(notice).to_be_hidden()
    phone.click("#panel-toggle")
    fit = phone.evaluate(FITS)
    assert fit["needed"] <= fit["room"], fit
