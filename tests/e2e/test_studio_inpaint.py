"""The studio's Inpaint and Outpaint in Chromium, through the real server and worker (the
demo model): a mask painted with the mouse (undo, paint again, invert) and sent with the
task, the mask over the result on its card, Reuse painting the mask back; an outpaint 128
px to the right that comes back wider; and a stroke painted with a finger on a phone."""
from __future__ import annotations

import io
import json

from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in


def inpaint_start_picture() -> dict:
    picture = Image.new("RGB", (128, 128), (40, 90, 160))
    ImageDraw.Draw(picture).ellipse((32, 32, 96, 96), fill=(230, 200, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return {"name": "start.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def choose_start_picture_and_mode(page, mode: str) -> None:
    page.fill("#prompt", "a red apple")
    page.fill("#width", "128")
    page.fill("#height", "128")
    page.fill("#steps", "2")
    page.set_input_files("#init-file", files=[inpaint_start_picture()])
    expect(page.locator("#init-preview")).to_be_visible()
    expect(page.locator("#edit-modes")).to_be_visible()
    page.locator("#edit-modes label.edit-mode", has_text=mode).click()
    expect(page.locator("#mask-canvas")).to_have_attribute("data-state", "ready")


def painted(page) -> int:
    return int(page.locator("#mask-canvas").get_attribute("data-selected") or "0")


def show_the_canvas(page) -> None:
    """The canvas in the middle of the panel (its sticky top covers the panel's first lines)."""
    page.locator("#mask-canvas").evaluate("c => c.scrollIntoView({block: 'center'})")
    assert page.evaluate("""() => { const r = document.getElementById('mask-canvas').getBoundingClientRect();
        const e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); return e && e.id; }""") == "mask-canvas"


def mouse_stroke(page, y_fraction: float) -> None:
    """A horizontal stroke across the canvas at y_fraction of its height."""
    show_the_canvas(page)
    box = page.locator("#mask-canvas").bounding_box()
    y = box["y"] + box["height"] * y_fraction
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * i), y)
    page.mouse.up()


def submitted_task(page) -> dict:
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    return json.loads(sent.value.post_data)


def test_paint_a_mask_undo_invert_submit_see_it_on_the_card_and_reuse_brings_it_back(page):
    register_and_sign_in(page, "maskpainter")
    choose_start_picture_and_mode(page, "Inpaint")
    expect(page.locator("#mask-fit-line")).to_contain_text("The picture and its mask (128 × 128)")
    expect(page.locator("#inpaint-options")).to_be_visible()

    # Nothing painted: the panel says so before sending anything.
    page.click("#generate")
    expect(page.locator("#mask-error")).to_contain_text("Paint over the part")
    expect(page.locator("#task-list article.task")).to_have_count(0)

    mouse_stroke(page, 0.3)
    first = painted(page)
    assert first > 0
    expect(page.locator("#mask-error")).to_be_hidden()
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#mask-canvas")).to_have_attribute("data-selected", "0")
    page.get_by_role("button", name="Redo").click()
    expect(page.locator("#mask-canvas")).to_have_attribute("data-selected", str(first))
    page.get_by_role("button", name="Undo").click()
    mouse_stroke(page, 0.6)
    stroke = painted(page)
    assert stroke > 0
    page.get_by_role("button", name="Invert the painted area").click()
    total = 128 * 128
    inverted = painted(page)
    assert abs(inverted - (total - stroke)) <= total * 0.01, (inverted, stroke)

    body = submitted_task(page)
    assert body["mask"].startswith("data:image/png;base64,")
    assert body["init_image"] and body["mask_blur"] == 4 and body["masked_content"] == "original"
    assert body["inpaint_area"] == "whole" and body["mask_invert"] is False
    assert "outpaint" not in body
    card = page.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    expect(card.locator(".task-init")).to_contain_text("Inpaint")
    overlay = card.locator(".task-mask")
    expect(overlay).to_be_visible()
    task = page.evaluate("id => fetch('/api/v1/tasks/' + id).then(r => r.json())", card.get_attribute("data-task-id"))
    assert task["mask"] and overlay.get_attribute("data-mask-id") == task["mask"]
    shown = overlay.evaluate("""node => new Promise(done => {
        const url = getComputedStyle(node).maskImage.replace(/^url\\("?|"?\\)$/g, '');
        const img = new Image(); img.onload = () => done([url, img.naturalWidth, img.naturalHeight]);
        img.onerror = () => done([url, 0, 0]); img.src = url; })""")
    assert task["mask"] in shown[0] and shown[1:] == [128, 128], shown
    assert (task["width"], task["height"]) == (128, 128)
    card.get_by_role("button", name="Show what was painted over (the mask) on image 1").click()
    expect(overlay).to_be_hidden()

    # Reuse: a fresh panel gets the mode, the settings and the mask back.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#edit-modes")).to_be_hidden()
    page.locator("#task-list article.task").first.locator(".task-reuse").click()
    expect(page.locator('input[name="edit_mode"][value="inpaint"]')).to_be_checked()
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_have_attribute("data-state", "ready")
    page.wait_for_function("n => Number(document.getElementById('mask-canvas').dataset.selected) > n", arg=total // 2)
    assert abs(painted(page) - inverted) <= total * 0.01, (painted(page), inverted)

    # Variant: the result is the picture now, the same mask painted over it.
    page.locator("#mask-canvas").evaluate("c => { c.dataset.selected = '0'; }")
    page.locator("#task-list article.task").first.get_by_role("button", name="Variant").click()
    expect(page.locator("#init-preview")).to_have_attribute("data-image-id", task["images"][0]["id"])
    expect(page.locator('input[name="edit_mode"][value="inpaint"]')).to_be_checked()
    page.wait_for_function("n => Number(document.getElementById('mask-canvas').dataset.selected) > n", arg=total // 2)
    assert abs(painted(page) - inverted) <= total * 0.01, (painted(page), inverted)
    assert page.js_errors == []


def test_outpaint_128_px_to_the_right_gives_a_wider_picture_and_reuse_takes_the_outpaint_off(page):
    register_and_sign_in(page, "widener")
    choose_start_picture_and_mode(page, "Outpaint")
    expect(page.locator("#outpaint-section")).to_be_visible()
    page.fill("#outpaint-right", "128")
    expect(page.locator("#outpaint-line")).to_contain_text("the result is 256 × 128")
    body = submitted_task(page)
    assert body["outpaint"] == {"left": 0, "right": 128, "top": 0, "bottom": 0}
    assert (body["width"], body["height"]) == (128, 128) and "mask" not in body
    card = page.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    expect(card.locator(".task-size")).to_contain_text("256 × 128")
    image = card.locator("img.task-image")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    full = page.evaluate("""src => new Promise(done => { const i = new Image();
        i.onload = () => done([i.naturalWidth, i.naturalHeight]); i.src = src; })""",
                         card.locator("a.task-figure__link").get_attribute("href"))
    assert full == [256, 128]
    expect(card.locator(".task-outpaint")).to_have_count(1)

    card.locator(".task-reuse").click()
    expect(page.locator('input[name="edit_mode"][value="outpaint"]')).to_be_checked()
    expect(page.locator("#width")).to_have_value("128")
    expect(page.locator("#outpaint-right")).to_have_value("128")
    expect(page.locator("#outpaint-line")).to_contain_text("the result is 256 × 128")
    assert page.js_errors == []


def touch_stroke(page, y_fraction: float) -> None:
    """A finger drawn across the canvas (real touch events: Chromium makes pointer events of
    pointerType "touch" from them)."""
    show_the_canvas(page)
    box = page.locator("#mask-canvas").bounding_box()
    y = box["y"] + box["height"] * y_fraction
    xs = [box["x"] + box["width"] * (0.15 + 0.07 * i) for i in range(11)]
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs[0], "y": y, "id": 1}]})
    for x in xs[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y, "id": 1}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_on_a_phone_a_finger_paints_the_mask_and_nothing_scrolls_sideways(phone):
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    register_and_sign_in(phone, "fingerpaint")
    phone.click("#panel-toggle")
    expect(phone.locator("#prompt")).to_be_visible()
    phone.evaluate("""() => { window.__touches = [];
        document.getElementById('mask-canvas').addEventListener('pointerdown',
            e => window.__touches.push(e.pointerType)); }""")
    choose_start_picture_and_mode(phone, "Inpaint")
    canvas = phone.locator("#mask-canvas")
    assert canvas.evaluate("c => getComputedStyle(c).touchAction") == "none"
    touch_stroke(phone, 0.5)
    expect(canvas).not_to_have_attribute("data-selected", "0")
    assert phone.evaluate("window.__touches") == ["touch"]
    sideways = phone.evaluate("""() => {
        const panel = document.getElementById('studio-panel');
        const stage = document.getElementById('mask-stage').getBoundingClientRect();
        return {page: document.documentElement.scrollWidth, panel: panel.scrollWidth - panel.clientWidth,
                stageRight: stage.right, width: window.innerWidth}; }""")
    assert sideways["page"] <= 390 and sideways["panel"] <= 0 and sideways["stageRight"] <= 390, sideways

    body = submitted_task(phone)
    assert body["mask"].startswith("data:image/png;base64,")
    card = phone.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    expect(card.locator(".task-mask")).to_be_visible()
    assert errors == []
