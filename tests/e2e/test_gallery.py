"""The gallery in Chromium: multi-select with shift-click, move to a new board, download
the board as a ZIP, the lightbox and its keyboard, reuse and variant in the studio,
earlier sessions, and the page on a phone."""
from __future__ import annotations

import csv
import io
import re
import zipfile

from PIL import Image
from playwright.sync_api import expect

from tests.e2e.helpers import PASSWORD, generate_in_studio, register_and_sign_in, screenshot


def api_json(page, path: str) -> dict:
    response = page.request.get(path)
    assert response.ok, response.text()
    return response.json()


def test_select_three_with_shift_click_move_them_to_a_new_board_and_download_it(page):
    register_and_sign_in(page, "curator")
    task_id = generate_in_studio(page, "a row of tiny lanterns over a river at night", 4)

    page.goto("/images")
    tiles = page.locator("#gallery-grid .tile")
    expect(tiles).to_have_count(4)
    expect(page.locator("#gallery-status")).to_contain_text("4 images")
    expect(page.locator("#count-all")).to_have_text("4")

    # Click the first, shift-click the third: three are selected.
    tiles.nth(0).hover()
    tiles.nth(0).locator(".tile__select").click()
    tiles.nth(2).locator(".tile__select").click(modifiers=["Shift"])
    expect(page.locator("#selection-count")).to_have_text("3")
    expect(page.locator("#gallery-grid .tile.is-selected")).to_have_count(3)
    chosen = [tiles.nth(i).get_attribute("data-id") for i in range(3)]
    assert tiles.nth(3).get_attribute("class").find("is-selected") == -1

    # Move them to a new board, named in the dialog.
    page.select_option("#selection-move", "__new")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.fill("#confirm-input", "Lanterns")
    page.click("#confirm-ok")
    expect(page.locator("#selection-message")).to_contain_text("3 images moved to “Lanterns”")
    board_link = page.locator("#board-own .board-link", has_text="Lanterns")
    expect(board_link.locator(".board-link__count")).to_have_text("3")
    expect(page.locator("#count-none")).to_have_text("1")

    board_link.click()
    expect(page.locator("#gallery-title")).to_have_text("Lanterns")
    expect(page).to_have_url(re.compile(r"/images\?board="))
    expect(tiles).to_have_count(3)
    assert sorted(tiles.nth(i).get_attribute("data-id") for i in range(3)) == sorted(chosen)
    expect(page.locator("#selection-bar")).to_be_hidden()

    # The whole board as a ZIP, made in the background and then downloaded. Its progress
    # comes by the `archive` Socket.IO event (site/static/js/lib/archive.js); the archive
    # is asked for (GET /api/v1/archives/{id}) only as a fallback, at most once here.
    events, looks = [], []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: events.append(payload) if '["archive"' in str(payload) else None))
    page.on("request", lambda request: looks.append(request.url) if request.method == "GET" and re.search(
        r"/api/v1/archives/[^/?]+$", request.url) else None)
    with page.expect_download(timeout=60_000) as download_info:
        page.click("#view-zip")
    assert any('"state":"ready"' in str(e).replace(" ", "") for e in events), events
    assert len(looks) <= 1, looks
    data = open(download_info.value.path(), "rb").read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    # Entries are named by the server: {task_id}_{n}.png, n the image's place in its task.
    order = [image["id"] for image in api_json(page, f"/api/v1/tasks/{task_id}")["images"]]
    names = sorted(n for n in archive.namelist() if n.endswith(".png"))
    assert names == sorted(f"{task_id}_{order.index(i)}.png" for i in chosen)
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist() if info.filename.endswith(".png"))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert sorted(row["image_id"] for row in manifest) == sorted(chosen)

    # New results go into this board: the studio's panel picks it up.
    board_id = re.search(r"board=([^&]+)", page.url).group(1)
    page.click("#board-auto")
    expect(page.locator("#board-auto")).to_have_attribute("aria-pressed", "true")
    page.goto("/studio")
    expect(page.locator("#board_id")).to_have_value(board_id)
    later = generate_in_studio(page, "one more lantern", 1)
    assert api_json(page, f"/api/v1/tasks/{later}")["images"][0]["board_id"] == board_id
    page.goto(f"/images?board={board_id}")
    expect(tiles).to_have_count(4)

    page.goto("/images")
    expect(tiles).to_have_count(5)
    tiles.nth(1).hover()
    tiles.nth(1).locator(".tile__star").click()
    expect(tiles.nth(1)).to_have_class(re.compile(r"is-starred"))
    page.mouse.move(0, 0)
    screenshot(page, "gallery")
    assert page.js_errors == []


def test_the_lightbox_keyboard_details_reuse_and_variant(page):
    register_and_sign_in(page, "viewer")
    generate_in_studio(page, "three paper boats on a pond, watercolor", 3)
    page.goto("/images")
    tiles = page.locator("#gallery-grid .tile")
    expect(tiles).to_have_count(3)
    first_id = tiles.nth(0).get_attribute("data-id")
    second_id = tiles.nth(1).get_attribute("data-id")

    tiles.nth(0).locator(".tile__link").click()
    lightbox = page.locator("#lightbox")
    expect(lightbox).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/images/{first_id}$"))
    expect(page.locator("#lightbox-position")).to_have_text("Image 1 of 3")
    # The full PNG replaces the thumbnail once loaded; the parameters come from the PNG.
    expect(page.locator("#lightbox-image")).to_have_attribute("src", f"/api/v1/images/{first_id}/full")
    expect(page.locator("#detail-prompt")).to_have_text("three paper boats on a pond, watercolor")
    expect(page.locator("#detail-params")).to_contain_text("64 × 64")
    expect(page.locator("#detail-params")).to_contain_text("Steps")
    seed = page.locator("#detail-seed").inner_text()
    assert seed.isdigit()
    screenshot(page, "gallery-lightbox")

    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-position")).to_have_text("Image 2 of 3")
    expect(page).to_have_url(re.compile(rf"/images/{second_id}$"))
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#lightbox-position")).to_have_text("Image 1 of 3")

    # Star and make public from the panel; the tile follows.
    page.click("#detail-star")
    expect(page.locator("#detail-star")).to_have_attribute("aria-pressed", "true")
    page.check("#detail-public")
    expect(page.locator("#detail-message")).to_have_text("Public now.")
    image = api_json(page, f"/api/v1/images/{first_id}")
    assert image["starred"] is True and image["public"] is True

    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/images$"))
    expect(tiles.nth(0)).to_have_class(re.compile(r"is-starred"))

    # Starred only: one image.
    page.click("#filter-starred")
    expect(tiles).to_have_count(1)
    expect(page).to_have_url(re.compile(r"starred=true"))
    page.click("#filter-starred")
    expect(tiles).to_have_count(3)

    # Reuse settings: the studio's panel takes them, seed included.
    page.goto(f"/images/{first_id}")
    expect(lightbox).to_be_visible()
    page.click("#detail-reuse")
    expect(page).to_have_url(re.compile(r"/studio$"))
    expect(page.locator("#prompt")).to_have_value("three paper boats on a pond, watercolor")
    expect(page.locator("#seed")).to_have_value(seed)
    expect(page.locator("#width")).to_have_value("64")
    expect(page.locator("#init-preview")).to_be_hidden()

    # Variant: the same, starting from the image.
    page.goto(f"/studio?variant={first_id}")
    expect(page.locator("#init-preview")).to_be_visible()
    expect(page.locator("#seed")).to_have_value(seed)
    expect(page.locator("#strength-field")).to_be_visible()

    # Earlier sessions: this one is listed and current.
    page.click("#sessions-toggle")
    current = page.locator("#session-list .session-item.is-current")
    expect(current).to_contain_text("This session")
    expect(current).to_contain_text("1 task · 3 images")

    # Delete from the lightbox: a confirmation, then the count drops.
    page.goto(f"/images/{second_id}")
    page.click("#detail-delete")
    expect(page.locator("#confirm-title")).to_have_text("Delete this image?")
    page.click("#confirm-ok")
    expect(page.locator("#lightbox-position")).to_have_text("Image 2 of 2")
    page.keyboard.press("Escape")
    expect(tiles).to_have_count(2)
    expect(page.locator("#gallery-status")).to_contain_text("2 images")
    assert page.request.get(f"/api/v1/images/{second_id}").status == 404

    # A new image arrives (an upload from elsewhere): offered, not pushed into the grid.
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 90)).save(buffer, "PNG")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    uploaded = page.request.post("/api/v1/uploads", headers={"X-CSRFToken": token}, multipart={
        "file": {"name": "new.png", "mimeType": "image/png", "buffer": buffer.getvalue()}})
    assert uploaded.status == 201
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#new-images")).to_have_text("1 new image · show")
    expect(tiles).to_have_count(2)
    page.click("#new-images")
    expect(tiles).to_have_count(3)
    expect(tiles.nth(0)).to_have_attribute("data-id", uploaded.json()["id"])
    expect(tiles.nth(0).locator(".tile__badge")).to_be_visible()
    assert page.js_errors == []


def test_earlier_sessions_open_their_timeline(page):
    register_and_sign_in(page, "returner")
    task_id = generate_in_studio(page, "an old session's lighthouse", 1)
    # Sign in again: a new session, with an empty timeline.
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("input[name=login]", "returner")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/studio$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")  # its modules have run
    expect(page.locator("#timeline-empty")).to_be_visible()

    page.click("#sessions-toggle")
    items = page.locator("#session-list .session-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("This session")
    expect(items.nth(1)).to_contain_text("1 task · 1 image")
    expect(items.nth(1)).to_contain_text("an old session's lighthouse")
    items.nth(1).locator("a").click()
    expect(page).to_have_url(re.compile(r"/studio\?session="))
    expect(page.locator("#session-banner")).to_be_visible()
    expect(page.locator("#timeline-title")).to_contain_text("Session of")
    card = page.locator("#task-list article.task")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-task-id", task_id)
    expect(card.locator(".task-duration")).to_contain_text("Took")
    expect(card.locator(".task-archive")).to_be_visible()
    assert page.js_errors == []


def test_bulk_delete_asks_with_a_count_and_the_gallery_works_on_a_phone(phone):
    register_and_sign_in(phone, "pocketcurator")
    generate_in_studio(phone, "a small lighthouse", 2)
    phone.goto("/images")
    tiles = phone.locator("#gallery-grid .tile")
    expect(tiles).to_have_count(2)
    # Nothing runs off the side of a phone's screen.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert phone.evaluate("""() => document.getElementById('filter-to').getBoundingClientRect().right <=
                                   document.getElementById('gallery-filters').getBoundingClientRect().right""")
    phone.click("#select-all")
    expect(phone.locator("#selection-count")).to_have_text("2")
    screenshot(phone, "gallery-phone")
    phone.click("#selection-delete")
    expect(phone.locator("#confirm-title")).to_have_text("Delete 2 images?")
    phone.click("#confirm-cancel")
    expect(tiles).to_have_count(2)
    phone.click("#selection-delete")
    phone.click("#confirm-ok")
    expect(tiles).to_have_count(0)
    expect(phone.locator("#gallery-empty")).to_be_visible()
    expect(phone.locator("#count-all")).to_have_text("0")
