"""The studio's guides and Edit in Chromium, through the real server and worker (the demo
models of every family, with their demo ControlNet and FLUX.1 Kontext): a scribble drawn
with the mouse on a Control unit's canvas, its map shown by Detect, the task sent with the
unit and its card and the gallery's lightbox listing it, Reuse bringing the unit back; a
scribble drawn with a finger on a phone, sent and listed on its card, with the panel
inside the screen's width; and Edit on a result making an edit task of the picture with
the instruction typed."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import generate_in_studio, register_and_sign_in


@pytest.fixture(scope="module")
def live(stack_factory):
    # The settings of test_studio_families.py, which runs just before: one stack for both.
    return stack_factory(web=1, DAYDREAM_PROGRESS_HZ=20, DAYDREAM_DEMO_MODELS="all").web(1)


def small_sd1_task(page, prompt: str) -> None:
    page.select_option("#model", "demo")
    page.fill("#prompt", prompt)
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#steps", "2")
    page.fill("#samples", "1")


def scribble_canvas(page):
    canvas = page.locator("#control-list .guide-unit").first.locator("canvas.scribble-canvas")
    canvas.evaluate("c => c.scrollIntoView({block: 'center'})")
    return canvas


def mouse_scribble(page) -> None:
    """A diagonal line across the first unit's canvas, drawn with the mouse."""
    box = scribble_canvas(page).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.05 * i), box["y"] + box["height"] * (0.2 + 0.05 * i))
    page.mouse.up()


def finger_scribble(page) -> None:
    """A line across the first unit's canvas drawn with a finger (real touch events, which
    Chromium turns into pointer events of pointerType "touch")."""
    box = scribble_canvas(page).bounding_box()
    y = box["y"] + box["height"] * 0.5
    xs = [box["x"] + box["width"] * (0.15 + 0.07 * i) for i in range(11)]
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs[0], "y": y, "id": 1}]})
    for x in xs[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y, "id": 1}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def detect_and_see_the_map(page) -> None:
    unit = page.locator("#control-list .guide-unit").first
    with page.expect_response(lambda r: r.url.endswith("/api/v1/control/detect")) as answer:
        unit.get_by_role("button", name="Detect").click()
    assert answer.value.status == 200, answer.value.text()
    shown = unit.locator("img.guide-map")
    expect(shown).to_have_attribute("data-state", "shown")
    expect(shown).to_be_visible()
    expect(unit.locator(".guide-detect-status")).to_contain_text("map")
    # A scribble's map: white strokes on black, as drawn.
    light, dark = shown.evaluate("""img => new Promise(done => { const go = () => {
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const x = c.getContext('2d'); x.drawImage(img, 0, 0); const d = x.getImageData(0, 0, c.width, c.height).data;
        let light = 0, dark = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] > 200) light++; else if (d[i] < 50) dark++; }
        done([light, dark]); }; if (img.complete && img.naturalWidth) go(); else img.onload = go; })""")
    assert light > 0 and dark > light, (light, dark)


def the_task_sent(page) -> dict:
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    return json.loads(sent.value.post_data)


def test_a_scribble_drawn_with_the_mouse_detected_sent_listed_on_its_card_and_reused(page):
    register_and_sign_in(page, "scribbler")
    small_sd1_task(page, "a house on a hill")
    expect(page.locator("#guides-section")).to_be_visible()
    expect(page.locator("#edit-part")).to_be_hidden()
    expect(page.locator("#cost")).to_have_text("1")

    page.click("#control-draw")
    unit = page.locator("#control-list .guide-unit")
    expect(unit).to_have_count(1)
    expect(unit.locator("select[data-name=preprocessor]")).to_have_value("scribble")
    expect(unit.locator("select[data-name=model]")).to_have_value("demo-controlnet-sd1")
    assert scribble_canvas(page).evaluate("c => getComputedStyle(c).touchAction") == "none"
    # A blank drawing is said before sending anything.
    page.click("#generate")
    expect(page.locator("#control-error")).to_contain_text("Control 1 is blank")
    expect(page.locator("#task-list article.task")).to_have_count(0)

    mouse_scribble(page)
    expect(scribble_canvas(page)).not_to_have_attribute("data-inked", "0")
    expect(page.locator("#control-error")).to_be_hidden()
    # One unit adds half the task's cost (ceil(1 / 2)), the server's answer too.
    expect(page.locator("#cost")).to_have_text("2")
    expect(page.locator("#cost")).to_have_attribute("data-source", "server")
    unit.locator("input[data-name=weight]").fill("0.8")
    unit.locator("input[data-name=end]").fill("0.75")
    unit.locator("input[data-name=end]").dispatch_event("change")
    detect_and_see_the_map(page)

    body = the_task_sent(page)
    [sent] = body["control"]
    assert sent["image"].startswith("data:image/png;base64,")
    assert (sent["preprocessor"], sent["model"], sent["weight"], sent["start"], sent["end"]) == \
        ("scribble", "demo-controlnet-sd1", 0.8, 0, 0.75)
    card = page.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    line = card.locator(".task-guide--control")
    expect(line).to_contain_text("ControlNet 1")
    expect(line).to_contain_text(re.compile(r"scribble", re.IGNORECASE))
    expect(line).to_contain_text("weight 0.8")
    expect(line).to_contain_text("steps 0–0.75")
    task = page.evaluate("id => fetch('/api/v1/tasks/' + id).then(r => r.json())", card.get_attribute("data-task-id"))
    [stored] = task["control"]
    assert stored["preprocessor"] == "scribble" and stored["model"] == "demo-controlnet-sd1" and stored["weight"] == 0.8
    assert not stored["image"].startswith("data:")  # stored as the user's control image
    expect(line.locator("img")).to_have_attribute("src", re.compile(stored["image"]))

    # The gallery's lightbox lists the unit as the card does.
    page.goto("/images/" + card.locator("figure.task-figure").first.get_attribute("data-image-id"))
    details = page.locator("#detail-params")
    expect(page.locator("#lightbox")).to_be_visible()
    expect(details).to_contain_text("ControlNet 1")
    expect(details).to_contain_text("weight 0.8 · steps 0–0.75")

    # Reuse: a fresh panel gets the unit back, its picture the stored drawing.
    page.goto("/studio")
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#control-list .guide-unit")).to_have_count(0)
    page.locator("#task-list article.task").first.locator(".task-reuse").click()
    back = page.locator("#control-list .guide-unit")
    expect(back).to_have_count(1)
    expect(back).to_have_attribute("data-source", "upload")
    expect(back.locator(".guide-unit__picture img")).to_have_attribute("src", re.compile(stored["image"]))
    expect(back.locator("select[data-name=preprocessor]")).to_have_value("scribble")
    expect(back.locator("select[data-name=model]")).to_have_value("demo-controlnet-sd1")
    expect(back.locator("input[data-name=weight]")).to_have_value("0.8")
    expect(back.locator("input[data-name=end]")).to_have_value("0.75")
    expect(page.locator("#cost")).to_have_text("2")
    # On SDXL, the first unit's ControlNet Union is the only one a second unit is offered
    # (the server refuses a Union beside another ControlNet).
    page.select_option("#model", "demo-sdxl")
    page.click("#control-add")
    expect(back).to_have_count(2)
    back.first.locator("select[data-name=model]").select_option("demo-controlnet-sdxl-union")
    expect(back.nth(1).locator("select[data-name=model] option")).to_have_text(
        ["Demo ControlNet Union SDXL (tiny, random)"])
    assert page.js_errors == []


def test_on_a_phone_a_finger_draws_the_scribble_and_the_panel_fits(phone):
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    register_and_sign_in(phone, "fingerscribble")
    phone.click("#panel-toggle")
    expect(phone.locator("#prompt")).to_be_visible()
    small_sd1_task(phone, "a boat")
    phone.click("#control-draw")
    canvas = scribble_canvas(phone)
    canvas.evaluate("c => { window.__kinds = []; c.addEventListener('pointerdown', e => window.__kinds.push(e.pointerType)); }")
    finger_scribble(phone)
    expect(canvas).not_to_have_attribute("data-inked", "0")
    assert phone.evaluate("window.__kinds") == ["touch"]
    detect_and_see_the_map(phone)
    # Sent, the finger's drawing is the unit's picture, and the card lists the unit.
    [sent] = the_task_sent(phone)["control"]
    assert sent["image"].startswith("data:image/png;base64,") and sent["preprocessor"] == "scribble"
    card = phone.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    expect(card.locator(".task-guide--control")).to_contain_text("ControlNet 1")
    # (a task sent on a phone closes the drawer: open it again)
    expect(phone.locator("body")).not_to_have_class(re.compile(r"\bdrawer-open\b"))
    phone.click("#panel-toggle")
    expect(phone.locator("body")).to_have_class(re.compile(r"\bdrawer-open\b"))
    phone.click("#reference-add")
    phone.locator("#control-list .guide-more summary").click()
    sideways = phone.evaluate("""() => {
        const panel = document.getElementById('studio-panel');
        const right = Math.max(...[...document.querySelectorAll('#guides-section, #guides-section *')]
            .filter(n => n.getClientRects().length).map(n => n.getBoundingClientRect().right));
        return {page: document.documentElement.scrollWidth, panel: panel.scrollWidth - panel.clientWidth, right}; }""")
    assert sideways["page"] <= 390 and sideways["panel"] <= 0 and sideways["right"] <= 390, sideways
    assert errors == []


def test_edit_on_a_result_makes_an_edit_task_of_that_picture(page):
    register_and_sign_in(page, "winteredit")
    generate_in_studio(page, "a village in summer", 1)
    source = page.locator("#task-list article.task").first.locator("figure.task-figure")
    source_id = source.get_attribute("data-image-id")
    source.get_by_role("button", name="Edit image 1").click()
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_visible()
    # (FLUX.2 klein edits too, and its name sorts first: the test picks Kontext)
    expect(dialog.locator("select option")).to_contain_text(["Demo FLUX.2 klein", "Demo Kontext"])
    dialog.locator("select").select_option("demo-kontext")
    expect(dialog.locator(".edit-form__cost")).to_contain_text(re.compile(r"Costs \d+ tokens?"))
    dialog.get_by_label("Instruction").fill("make it winter")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        dialog.get_by_role("button", name="Edit", exact=True).click()
    assert json.loads(sent.value.post_data) == {"prompt": "make it winter", "model": "demo-kontext",
                                                "edit": {"images": [source_id]}}
    expect(dialog).to_have_count(0)
    cards = page.locator("#task-list article.task")
    expect(cards).to_have_count(2)
    card = cards.first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    expect(card.locator(".task-init")).to_have_text("Edit")
    expect(card.locator(".task-guide--edit a")).to_have_attribute("href", "/images/" + source_id)
    task = page.evaluate("id => fetch('/api/v1/tasks/' + id).then(r => r.json())", card.get_attribute("data-task-id"))
    assert task["edit"] == {"images": [source_id]} and task["prompt"] == "make it winter"
    assert task["model"] == "demo-kontext" and len(task["images"]) == 1

    # Reuse: the editing model, its picture to edit, no start picture.
    card.locator(".task-reuse").click()
    expect(page.locator("#model")).to_have_value("demo-kontext")
    expect(page.locator("#edit-part")).to_be_visible()
    expect(page.locator("#init-section")).to_be_hidden()
    expect(page.locator("#edit-list li")).to_have_attribute("data-image-id", source_id)
    assert page.js_errors == []
