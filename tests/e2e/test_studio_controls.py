"""The studio's controls in Chromium: the server's estimate, live previews, canceling a
running task, variants of a result, init image uploads, help, the seed lock, size
limits, the settings popover and a full queue."""
from __future__ import annotations

import io
import json
import re

from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in, screenshot

# Generous: the tiny model runs on the CPU, which a busy test machine shares.
DONE_TIMEOUT = 180_000
ESTIMATE_TEXT = re.compile(r"≈ \d+ (s|min) to wait, \d+ (s|min) to run|[Nn]o estimate yet")

# Records every live preview, how the image slots of each card look and the progress bar,
# however the page updates them: [task id, slot of the preview, src],
# [task id, state, images, placeholders] and [task id, value, max].
WATCH_RENDERING = """
() => {
  window.__previews = [];
  window.__slots = [];
  window.__progress = [];
  const record = () => {
    document.querySelectorAll('#timeline progress.task-progress').forEach(p => window.__progress.push(
      [p.closest('.task').dataset.taskId, Number(p.value), Number(p.max)]));
    document.querySelectorAll('#timeline .task-placeholder img.task-preview').forEach(img => {
      const card = img.closest('.task');
      const src = img.getAttribute('src') || '';
      const slot = img.closest('.task-placeholder').dataset.slot || '';
      const last = window.__previews[window.__previews.length - 1];
      if (!last || last[2] !== src) window.__previews.push([card.dataset.taskId, slot, src]);
    });
    document.querySelectorAll('#timeline article.task').forEach(card => window.__slots.push([
      card.dataset.taskId, card.dataset.state,
      card.querySelectorAll('img.task-image').length,
      card.querySelectorAll('.task-placeholder').length]));
  };
  new MutationObserver(record).observe(document.getElementById('timeline'),
      {subtree: true, childList: true, attributes: true,
       attributeFilter: ['src', 'data-state', 'value', 'max']});
}
"""


def drawn_png(width: int, height: int) -> bytes:
    """A small picture with some structure, made in memory."""
    picture = Image.new("RGB", (width, height), (32, 64, 160))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(240, 180, 40))
    draw.rectangle((0, height * 2 // 3, width, height), fill=(30, 120, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def fill_parameters(page, prompt: str, *, width: int, height: int, steps: int, samples: int = 1) -> None:
    page.fill("#prompt", prompt)
    page.fill("#width", str(width))
    page.fill("#height", str(height))
    page.fill("#steps", str(steps))
    page.fill("#samples", str(samples))


def newest_card(page):
    return page.locator("#task-list article.task").first


def get_task(page, task_id: str) -> dict:
    response = page.request.get(f"/api/v1/tasks/{task_id}")
    assert response.ok, response.text()
    return response.json()


def is_estimate_for(steps: int, width: int, height: int):
    def check(response) -> bool:
        if not (response.url.endswith("/api/v1/estimate") and response.request.method == "POST"):
            return False
        body = response.request.post_data_json or {}
        return body.get("steps") == steps and body.get("width") == width and body.get("height") == height
    return check


def test_the_estimate_follows_the_parameters_and_previews_show_while_it_renders(page):
    register_and_sign_in(page, "previewer")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    # On load the estimate is asked for the defaults.
    expect(page.locator("#estimate")).to_have_text(ESTIMATE_TEXT)
    page.evaluate(WATCH_RENDERING)

    with page.expect_response(is_estimate_for(40, 256, 256)) as answer:
        fill_parameters(page, "a stained glass window of a fox", width=256, height=256, steps=40, samples=2)
    estimate = answer.value
    assert estimate.ok, estimate.text()
    assert estimate.request.headers.get("x-csrftoken")
    data = estimate.json()
    assert data["cost"] == 2  # 2 × ceil(40 × 256 × 256 / (50 × 512 × 512))
    expect(page.locator("#cost")).to_have_text("2")
    expect(page.locator("#estimate")).to_have_text(ESTIMATE_TEXT)
    if data.get("eta_s") is None:
        expect(page.locator("#estimate")).to_contain_text("o estimate yet")

    page.click("#generate")
    card = newest_card(page)
    expect(card).to_be_visible()
    task_id = card.get_attribute("data-task-id")
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    expect(card.locator("img.task-image")).to_have_count(2)
    expect(card.locator(".task-placeholder")).to_have_count(0)

    previews = [p for p in page.evaluate("window.__previews") if p[0] == task_id]
    sources = {src for _, _, src in previews}
    assert all(src.startswith("data:image/jpeg") for src in sources), sorted(sources)[:1]
    # The preview changed while it rendered: several different steps were shown.
    assert len(sources) >= 2, len(sources)
    # Each preview sat in the placeholder of the sample being made.
    assert {slot for _, slot, _ in previews} <= {"ph:0", "ph:1"}

    # Images replaced the placeholders one by one: at some point the first image was
    # there while the second was still being made.
    slots = [s for s in page.evaluate("window.__slots") if s[0] == task_id]
    assert any(state == "running" and images == 1 and placeholders == 1
               for _, state, images, placeholders in slots), slots[-5:]

    # One bar for the whole task: total = steps × samples, and it moved through both samples.
    progress = [(value, total) for tid, value, total in page.evaluate("window.__progress") if tid == task_id]
    values = sorted({value for value, total in progress if total == 80})
    assert len([v for v in values if 0 < v < 80]) >= 3, values
    assert any(40 < v < 80 for v in values), values

    # Every finished image offers a variant and its settings.
    expect(card.locator(".image-variant")).to_have_count(2)
    expect(card.locator(".image-reuse")).to_have_count(2)
    expect(card.locator(".task-reuse")).to_be_visible()
    expect(page.locator("#balance")).to_contain_text("18")
    assert page.js_errors == []
    screenshot(page, "studio-previews")


def test_a_bad_field_shows_from_the_estimate_before_any_submit(page):
    register_and_sign_in(page, "estimator")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/estimate") and r.status == 422):
        page.fill("#width", "100")  # not a multiple of 8
    expect(page.locator("#width-error")).to_be_visible()
    expect(page.locator("#width-error")).to_contain_text("multiple of 8")
    page.fill("#width", "128")
    expect(page.locator("#width-error")).to_be_hidden()
    expect(page.locator("#estimate")).to_have_text(ESTIMATE_TEXT)
    expect(page.locator("#task-list article.task")).to_have_count(0)


def test_cancel_a_running_task_and_get_the_tokens_back(page):
    register_and_sign_in(page, "quitter")
    expect(page.locator("#balance")).to_contain_text("20")
    fill_parameters(page, "a very slow cathedral", width=512, height=512, steps=150)
    expect(page.locator("#cost")).to_have_text("3")
    page.click("#generate")

    card = newest_card(page)
    expect(card).to_be_visible()
    task_id = card.get_attribute("data-task-id")
    expect(page.locator("#balance")).to_contain_text("17")
    expect(card).to_have_attribute("data-state", "running", timeout=DONE_TIMEOUT)
    # Its name is what people call it; what it does is the hint.
    cancel = card.get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_be_visible()
    expect(cancel).to_have_attribute("title", "Stop this task and get its tokens back")
    cancel.click()

    expect(card).to_have_attribute("data-state", "canceled")
    expect(card.locator(".task-refund")).to_contain_text("refunded")
    expect(card.locator(".task-cancel")).to_be_hidden()
    expect(page.locator("#balance")).to_contain_text("20")
    # Late progress events from the worker never bring it back.
    page.wait_for_timeout(1500)
    expect(card).to_have_attribute("data-state", "canceled")
    task = get_task(page, task_id)
    assert task["state"] == "canceled"
    assert task["refunded"] is True
    assert page.js_errors == []


def test_make_a_variant_of_a_result(page):
    register_and_sign_in(page, "varier")
    fill_parameters(page, "a lighthouse made of coral", width=64, height=64, steps=4)
    page.click("#generate")
    card = newest_card(page)
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    task_id = card.get_attribute("data-task-id")
    image = get_task(page, task_id)["images"][0]

    # Unlocked seed: cleared to random after the submit.
    expect(page.locator("#seed")).to_have_value("")
    expect(page.locator("#init-preview")).to_be_hidden()

    card.locator(".image-variant").first.click()
    expect(page.locator("#init-preview")).to_be_visible()
    expect(page.locator("#seed")).to_have_value(str(image["seed"]))
    expect(page.locator("#prompt")).to_have_value("a lighthouse made of coral")
    expect(page.locator("#strength")).to_be_visible()
    expect(page.locator("#strength")).to_have_value("0.75")
    thumb = page.locator("#init-preview img")
    expect(thumb).to_have_attribute("src", image["thumbnail_url"])
    page.wait_for_function("() => document.querySelector('#init-preview img').naturalWidth > 0")

    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    body = sent.value.post_data_json
    assert body["init_image"] == image["id"]
    assert body["strength"] == 0.75
    assert body["seed"] == image["seed"]

    variant = newest_card(page)
    expect(variant).not_to_have_attribute("data-task-id", task_id)
    expect(variant).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    expect(variant.locator("img.task-image")).to_have_count(1)
    task = get_task(page, variant.get_attribute("data-task-id"))
    assert task["init_image"] == image["id"]
    assert task["seed"] == image["seed"]

    # "Reuse settings" on an image fills the panel and drops the init image.
    variant.locator(".image-reuse").first.click()
    expect(page.locator("#init-preview")).to_be_hidden()
    expect(page.locator("#strength")).to_be_hidden()
    expect(page.locator("#seed")).to_have_value(str(task["images"][0]["seed"]))
    assert page.js_errors == []


def test_upload_an_init_image(page):
    register_and_sign_in(page, "uploader")
    page.fill("#width", "256")
    page.fill("#height", "256")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/uploads")) as answer:
        page.set_input_files("#init-file", files=[
            {"name": "photo.png", "mimeType": "image/png", "buffer": drawn_png(640, 480)}])
    response = answer.value
    assert response.status == 201, response.text()
    assert response.request.headers.get("x-csrftoken")
    assert "multipart/form-data" in response.request.headers.get("content-type", "")
    image = response.json()
    assert image["kind"] == "upload"
    # Within the user's pixel limit: kept as it is, whatever the panel's size was (256²).
    assert (image["width"], image["height"]) == (640, 480)
    stored = page.request.get(image["url"])
    assert stored.ok
    assert Image.open(io.BytesIO(stored.body())).size == (640, 480)

    expect(page.locator("#init-preview")).to_be_visible()
    expect(page.locator("#init-size")).to_have_text("640 × 480 · uploaded")
    expect(page.locator("#init-preview img")).to_have_attribute("src", image["thumbnail_url"])
    page.wait_for_function("() => document.querySelector('#init-preview img').naturalWidth > 0")
    expect(page.locator("#strength")).to_be_visible()
    expect(page.locator("#init-error")).to_be_hidden()
    expect(page.locator("#init-fit-line")).to_contain_text("Cropped to fill 256 × 256")
    screenshot(page, "studio-init-image")

    # A larger size afterwards: the full picture is fitted to it, nothing is enlarged.
    fill_parameters(page, "the same scene at night", width=640, height=448, steps=2)
    page.fill("#strength", "0.5")
    expect(page.locator("#init-fit-line")).to_contain_text("Cropped to fill 640 × 448")
    expect(page.locator("#init-fit-line")).not_to_contain_text("enlarged")
    page.click("#generate")
    card = newest_card(page)
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    task = get_task(page, card.get_attribute("data-task-id"))
    assert task["init_image"] == image["id"]
    assert task["strength"] == 0.5
    assert task["init_fit"] == "cover"
    assert (task["width"], task["height"]) == (640, 448)
    result = page.request.get(task["images"][0]["url"])
    assert Image.open(io.BytesIO(result.body())).size == (640, 448)
    # The upload itself is unchanged.
    again = page.request.get(f"/api/v1/images/{image['id']}")
    assert (again.json()["width"], again.json()["height"]) == (640, 480)

    # Remove it: nothing is sent any more.
    page.click("#init-clear")
    expect(page.locator("#init-preview")).to_be_hidden()
    expect(page.locator("#strength")).to_be_hidden()

    # A damaged file: the server's message shows under the drop zone.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/uploads")) as answer:
        page.set_input_files("#init-file", files=[
            {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\nnot a picture"}])
    assert answer.value.status == 415
    expect(page.locator("#init-error")).to_be_visible()
    expect(page.locator("#init-error")).not_to_be_empty()
    expect(page.locator("#init-preview")).to_be_hidden()
    assert page.js_errors == []


def test_help_seed_lock_size_limits_and_settings(page):
    register_and_sign_in(page, "tinkerer")

    # Help: hidden until asked for.
    expect(page.locator("#prompt-help")).to_be_hidden()
    page.click("#help-toggle")
    expect(page.locator("#help-toggle")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#studio-panel")).to_have_class(re.compile(r"\bshow-help\b"))
    for help_id in ("#prompt-help", "#steps-help", "#guidance-help", "#seed-help", "#size-help"):
        expect(page.locator(help_id)).to_be_visible()
    page.click("#help-toggle")
    expect(page.locator("#help-toggle")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#prompt-help")).to_be_hidden()

    # The scheduler says which one is the default.
    expect(page.locator("#scheduler option:checked")).to_contain_text("(default)")

    # Sizes stay within the limits (768 px a side for a user).
    page.fill("#width", "1000")
    page.locator("#width").blur()
    expect(page.locator("#width")).to_have_value("768")
    expect(page.locator("#size-hint")).to_contain_text("768")
    expect(page.locator('.size-presets [data-scale="1024"]')).to_be_disabled()
    expect(page.locator('.size-presets [data-scale="512"]')).to_be_enabled()

    # Seed unlocked: the seed is used once, then the field goes back to random.
    fill_parameters(page, "a paper boat", width=64, height=64, steps=2)
    page.fill("#seed", "1234")
    expect(page.locator("#seed-lock")).to_have_attribute("aria-pressed", "false")
    page.click("#generate")
    expect(page.locator("#task-list article.task")).to_have_count(1)
    expect(page.locator("#seed")).to_have_value("")
    expect(newest_card(page).locator(".task-seed")).to_contain_text("1234")

    # Locked: the same seed stays for the next tasks.
    page.click("#seed-lock")
    expect(page.locator("#seed-lock")).to_have_attribute("aria-pressed", "true")
    page.fill("#seed", "4321")
    page.click("#generate")
    expect(page.locator("#task-list article.task")).to_have_count(2)
    expect(page.locator("#seed")).to_have_value("4321")

    # Settings are kept on the server.
    page.click("#settings-toggle")
    expect(page.locator("#settings-panel")).to_be_visible()
    expect(page.locator("#setting-previews")).to_be_checked()
    expect(page.locator("#setting-cancel-on-leave")).not_to_be_checked()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me") and r.request.method == "PATCH") as answer:
        page.click("#setting-previews")
    assert answer.value.ok
    assert answer.value.request.post_data_json == {"settings": {"previews": False}}
    assert answer.value.json()["settings"]["previews"] is False
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me") and r.request.method == "PATCH") as answer:
        page.click("#setting-cancel-on-leave")
    assert answer.value.json()["settings"]["cancel_on_leave"] is True

    page.reload()
    page.click("#settings-toggle")
    expect(page.locator("#setting-previews")).not_to_be_checked()
    expect(page.locator("#setting-cancel-on-leave")).to_be_checked()
    page.keyboard.press("Escape")
    expect(page.locator("#settings-panel")).to_be_hidden()
    assert page.js_errors == []


def test_a_full_queue_says_when_to_try_again(page):
    register_and_sign_in(page, "latecomer")

    def full(route):
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=429, headers={"Retry-After": "30"}, content_type="application/json",
                      body=json.dumps({"error": {"code": "queue_full",
                                                 "message": "The queue is full right now."}}))

    page.route("**/api/v1/tasks", full)
    fill_parameters(page, "a crowded harbour", width=64, height=64, steps=2)
    page.click("#generate")
    error = page.locator("#form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The queue is full right now.")
    expect(error).to_contain_text(re.compile(r"try again in (30|29|28) s"))
    expect(page.locator("#balance")).to_contain_text("20")
    expect(page.locator("#task-list article.task")).to_have_count(0)


def covered_buttons(card) -> list[str]:
    """The card's visible buttons that the "New image" button overlaps, with the page
    scrolled to the top and to the bottom."""
    found = []
    for scroll in ("top", "bottom"):
        found += card.evaluate("""(card, scroll) => {
          window.scrollTo(0, scroll === 'top' ? 0 : document.documentElement.scrollHeight);
          const fab = document.getElementById('panel-toggle').getBoundingClientRect();
          return Array.from(card.querySelectorAll('button, a.btn')).filter(b => {
            const r = b.getBoundingClientRect();
            if (!r.width || !r.height) return false;
            return r.left < fab.right && fab.left < r.right && r.top < fab.bottom && fab.top < r.bottom;
          }).map(b => b.textContent.trim() + ' (' + scroll + ')');
        }""", scroll)
    return found


def test_variants_on_a_phone(phone):
    register_and_sign_in(phone, "pocketvariant")
    phone.click("#panel-toggle")
    fill_parameters(phone, "a tiny greenhouse", width=64, height=64, steps=3)
    expect(phone.locator("#help-toggle")).to_be_visible()
    expect(phone.locator("#init-drop")).to_be_visible()
    phone.click("#generate")
    card = newest_card(phone)
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    expect(phone.locator("#studio-panel")).to_be_hidden()
    # The "New image" button covers none of the newest card's buttons.
    assert covered_buttons(card) == []
    card.locator(".image-variant").first.click()
    # The drawer opens with the image to start from.
    expect(phone.locator("#init-preview")).to_be_visible()
    expect(phone.locator("#prompt")).to_be_visible()
    screenshot(phone, "studio-phone-variant")


def test_a_lora_tag_typed_in_the_prompt_shows_its_chip_and_the_task_applies_it(page):
    register_and_sign_in(page, "tagger")
    chips = page.locator("#lora-list li[data-from='prompt']")
    page.fill("#prompt", "a paper boat <lora:nothing-like-it:1>")
    expect(page.locator("#loras-error")).to_have_text("<lora:nothing-like-it> is not a LoRA for this model.")
    expect(chips).to_have_count(0)
    fill_parameters(page, "a paper boat <lora:demo-sd1-lora:0.6>", width=64, height=64, steps=2)
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text("demo-sd1-lora")
    expect(chips.first.locator(".lora-row__tag")).to_have_text("<lora:demo-sd1-lora:0.6>")
    expect(page.locator("#loras-error")).to_be_hidden()
    expect(page.locator("#lora-choice")).to_be_disabled()  # the one LoRA there is, taken by the tag
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    assert sent.value.post_data_json["prompt"] == "a paper boat <lora:demo-sd1-lora:0.6>"  # the server reads it
    card = newest_card(page)
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT)
    expect(card.locator(".task-loras")).to_have_text("LoRA demo-sd1-lora (0.6)")
    task = get_task(page, card.get_attribute("data-task-id"))
    assert task["loras"] == [{"id": "demo-lora-sd1", "name": "demo-sd1-lora", "weight": 0.6}]
    assert task["prompt"] == "a paper boat"
    expect(page.locator("#prompt")).to_have_value("a paper boat <lora:demo-sd1-lora:0.6>")  # the tag stays visible
    assert page.js_errors == []
