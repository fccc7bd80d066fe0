"""The gallery's lightbox on a phone (390×844, issue 13): the picture across the whole
width inside the screen, whatever its size, its details below it, a swipe to move between
pictures, and the names the studio shows for the model and scheduler. And on a desktop:
long board names readable in the sidebar, a ZIP's count said once."""
from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in


def csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def generate_by_api(page, prompt: str, size: int, samples: int = 1) -> list[str]:
    """Make `samples` size×size images with the tiny demo model; returns their ids."""
    answer = page.request.post("/api/v1/tasks", headers={"X-CSRFToken": csrf(page)}, data={
        "prompt": prompt, "width": size, "height": size, "steps": 2, "samples": samples})
    assert answer.status in (201, 202), answer.text()
    task_id = answer.json()["id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        task = page.request.get(f"/api/v1/tasks/{task_id}").json()
        if task["state"] in ("done", "failed", "canceled"):
            assert task["state"] == "done", task
            return [image["id"] for image in task["images"]]
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def picture_box(page) -> dict:
    expect(page.locator("#lightbox-image")).to_be_visible()
    page.wait_for_function("() => { const i = document.getElementById('lightbox-image');"
                           " return i.complete && i.naturalWidth > 0; }")
    return page.evaluate("""() => {
      const r = document.getElementById('lightbox-image').getBoundingClientRect();
      const p = document.querySelector('#lightbox .lightbox__panel').getBoundingClientRect();
      const t = document.getElementById('lightbox-title').getBoundingClientRect();
      return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
              panelTop: p.top, titleTop: t.top, vw: window.innerWidth, vh: window.innerHeight};
    }""")


def assert_fills_the_width(box: dict, what: str) -> None:
    assert box["top"] >= -0.5 and box["bottom"] <= box["vh"] + 0.5, f"{what} runs off the screen: {box}"
    assert box["left"] >= -0.5 and box["right"] <= box["vw"] + 0.5, f"{what} runs off the side: {box}"
    assert abs(box["width"] - box["vw"]) <= 2, f"{what} is not as wide as the screen: {box}"
    assert box["panelTop"] >= box["bottom"] - 0.5 and box["titleTop"] >= box["bottom"], \
        f"the details are not below {what}: {box}"


def swipe(page, from_x: float, to_x: float, y: float = 200) -> None:
    page.evaluate("""([fromX, toX, y]) => {
      const target = document.getElementById('lightbox-image');
      const fire = (type, x) => target.dispatchEvent(new PointerEvent(type, {
        pointerId: 7, pointerType: 'touch', isPrimary: true, clientX: x, clientY: y, bubbles: true}));
      fire('pointerdown', fromX);
      fire('pointermove', (fromX + toX) / 2);
      fire('pointerup', toX);
    }""", [from_x, to_x, y])


def test_the_phone_lightbox_fills_the_width_shows_details_below_and_swipes(phone):
    register_and_sign_in(phone, f"thumbs{uuid.uuid4().hex[:6]}")
    small = generate_by_api(phone, "a tiny square of noise", 64)[0]
    big = generate_by_api(phone, "a bigger square of noise", 256)[0]

    phone.goto(f"/images/{big}")  # the newest first: the 256×256 one, then the 64×64 one
    expect(phone.locator("#lightbox")).to_be_visible()
    expect(phone.locator("#lightbox-position")).to_have_text("Image 1 of 2")
    assert_fills_the_width(picture_box(phone), "the 256×256 picture")

    swipe(phone, 320, 60)  # to the left: the next one
    expect(phone.locator("#lightbox-position")).to_have_text("Image 2 of 2")
    expect(phone).to_have_url(re.compile(rf"/images/{small}$"))
    assert_fills_the_width(picture_box(phone), "the 64×64 picture")

    swipe(phone, 200, 190)  # a tap: nothing moves, nothing closes
    expect(phone.locator("#lightbox")).to_be_visible()
    expect(phone.locator("#lightbox-position")).to_have_text("Image 2 of 2")
    swipe(phone, 60, 320)  # to the right: back
    expect(phone.locator("#lightbox-position")).to_have_text("Image 1 of 2")

    # The details are below the picture and can be scrolled to.
    phone.locator("#detail-delete").scroll_into_view_if_needed()
    expect(phone.locator("#detail-delete")).to_be_in_viewport()

    # The model and scheduler by the names the studio shows, not their ids.
    meta = phone.request.get(f"/api/v1/images/{big}/metadata").json()
    models = {m["id"]: m["name"] for m in phone.request.get("/api/v1/models").json()["items"]}
    schedulers = {s["id"]: s["name"] for s in phone.request.get("/api/v1/schedulers").json()["items"]}
    row = lambda label: phone.locator("#detail-params .detail-params__row", has=phone.locator(  # noqa: E731
        "dt", has_text=re.compile(rf"^{label}$"))).locator("dd")
    assert models[meta["model"]] != meta["model"] and schedulers[meta["scheduler"]] != meta["scheduler"]
    expect(row("Model")).to_have_text(models[meta["model"]])
    expect(row("Scheduler")).to_have_text(schedulers[meta["scheduler"]])


def test_long_board_names_are_readable_and_a_zip_says_its_count_once(page):
    register_and_sign_in(page, f"namer{uuid.uuid4().hex[:6]}")
    ids = generate_by_api(page, "two squares of noise", 64, samples=2)
    name = "A board with a really long name that goes on and on past the sidebar's edge " + uuid.uuid4().hex[:4]
    made = page.request.post("/api/v1/boards", headers={"X-CSRFToken": csrf(page)}, data={"name": name})
    assert made.status == 201, made.text()

    page.goto("/images")
    link = page.locator("#board-own .board-link").filter(has_text=name[:20])
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("title", name)
    label = link.locator(".board-link__name")
    expect(label).to_have_text(name)
    cut = label.evaluate("n => n.scrollWidth > n.clientWidth + 1 || n.scrollHeight > n.clientHeight + 1")
    assert not cut, "the board's name is cut in the sidebar"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    # The ZIP of two selected images: what the progress says, all along, names the count once.
    tiles = page.locator("#gallery-grid .tile")
    expect(tiles).to_have_count(2)
    page.evaluate("""() => {
      window.zipTexts = [];
      const node = document.getElementById('zip-progress-text');
      new MutationObserver(() => window.zipTexts.push(node.textContent))
        .observe(node, {childList: true, characterData: true, subtree: true});
    }""")
    page.click("#select-all")
    expect(page.locator("#selection-count")).to_have_text("2")
    with page.expect_download(timeout=60_000):
        page.click("#selection-zip")
    texts = page.evaluate("window.zipTexts")
    assert texts, "the ZIP's progress said nothing"
    for text in texts:
        assert len(re.findall(r"\b2 images\b", text)) <= 1, texts
    assert any("2 images" in text for text in texts), texts
    assert len(ids) == 2
    assert page.js_errors == []
