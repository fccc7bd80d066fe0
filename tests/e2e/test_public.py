"""A visitor, not signed in, sees the landing page, the documentation, the showcase and
the terms in Chromium, and no private image; the menu opens on a phone."""
from __future__ import annotations

import io
import math
import re

import requests
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import expect

from tests.helpers import make_app, wait_for
from tests.e2e.helpers import PASSWORD, register_and_sign_in, screenshot
PALETTES = [((255, 120, 80), (70, 30, 120)), ((60, 190, 220), (20, 30, 80)),
            ((250, 200, 90), (160, 40, 90)), ((140, 230, 160), (20, 70, 90))]


def artwork(n: int, side: int = 512) -> bytes:
    """A small landscape (sky, sun, hills) for the showcase folder, so the screenshots
    show pictures rather than the demo model's noise."""
    top, bottom = PALETTES[n % len(PALETTES)]
    picture = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(picture)
    for y in range(side):
        t = y / side
        draw.line([(0, y), (side, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    draw.ellipse([side * .58, side * .18, side * .82, side * .42], fill=(255, 240, 200))
    for layer, shade in enumerate((.55, .35, .18)):
        base = side * (.62 + layer * .12)
        points = [(0, side)] + [(x, base + math.sin(x / side * (4 + layer * 2) + n) * side * .06)
                                for x in range(0, side + 8, 8)] + [(side, side)]
        draw.polygon(points, fill=tuple(int(c * shade) for c in bottom))
    out = io.BytesIO()
    picture.filter(ImageFilter.SMOOTH).save(out, format="PNG")
    return out.getvalue()


def api_user(url: str, username: str) -> requests.Session:
    session = requests.Session()
    assert session.post(url + "/api/v1/auth/register", json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD}).status_code == 201
    token = session.post(url + "/api/v1/auth/tokens", json={
        "login": username, "password": PASSWORD, "name": "e2e"}).json()["token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def staff_session(live, username: str) -> requests.Session:
    from extensions import db
    from services.accounts.users import create_staff

    app = make_app(live.env)
    with app.app_context():
        create_staff(username, f"{username}@example.com", PASSWORD)
        db.session.remove()
    session = requests.Session()
    token = session.post(live.url + "/api/v1/auth/tokens", json={
        "login": username, "password": PASSWORD, "name": "e2e"}).json()["token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def test_a_visitor_sees_the_public_pages_and_no_private_image(page, live):
    # Someone makes three images: one stays private, one is public, one is public and featured.
    owner = api_user(live.url, "exhibitor")
    task = owner.post(live.url + "/api/v1/tasks", json={
        "prompt": "a glass lighthouse", "width": 64, "height": 64, "steps": 2, "samples": 3}).json()
    done = wait_for(lambda: (t := owner.get(f"{live.url}/api/v1/tasks/{task['id']}").json())["state"] == "done" and t,
                    60, interval=0.2, message="the task")
    private, public_only, featured = (image["id"] for image in done["images"])
    for image_id in (public_only, featured):
        assert owner.patch(f"{live.url}/api/v1/images/{image_id}", json={"public": True}).status_code == 200
    staff = staff_session(live, "e2ecurator")
    assert staff.post(live.url + "/api/v1/showcase", json={"image_id": featured}).status_code == 201
    # Staff also put pictures in the showcase folder.
    folder = live.instance / "showcase"
    folder.mkdir(exist_ok=True)
    for n, title in enumerate(("dusk over the red hills", "blue hour at the lake", "a golden evening",
                               "morning in the green valley")):
        (folder / f"{title.replace(' ', '-')}.png").write_bytes(artwork(n))

    page.goto("/")
    expect(page.locator("#hero-title")).to_be_visible()
    expect(page.locator("#hero-art img.art-card__img--real")).to_have_count(3)
    expect(page.locator(".showcase-strip__item")).to_have_count(5)
    pricing = page.locator("#pricing")
    expect(pricing.locator(".tier")).to_have_count(3)
    expect(pricing.locator("button.tier__subscribe").first).to_be_disabled()
    expect(page.locator("#payments-off")).to_contain_text("payment provider")
    nav = page.locator(".site-nav")
    for label in ("Showcase", "Docs", "Pricing", "Sign in", "Register"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(page.locator("#balance")).to_have_count(0)
    screenshot(page, "landing")
    pricing.scroll_into_view_if_needed()
    screenshot(page, "pricing")

    page.get_by_role("link", name="Docs", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/docs$"))
    expect(page.get_by_role("heading", name="What each setting does")).to_be_visible()
    expect(page.locator("pre.code").filter(has_text="import requests")).to_have_count(1)
    expect(page.locator("pre.code").filter(has_text="curl -s")).not_to_have_count(0)
    screenshot(page, "docs")

    page.get_by_role("link", name="Showcase", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/gallery$"))
    expect(page.locator(f"#item-{featured} img")).to_be_visible()
    expect(page.locator(".showcase-item")).to_have_count(5)
    html = page.content()
    assert private not in html and public_only not in html
    screenshot(page, "showcase")
    # The lightbox opens the full picture and steps with the keyboard.
    page.locator(".showcase-item__link").first.click()
    expect(page.locator("#lightbox")).to_be_visible()
    first_src = page.locator("#lightbox-img").get_attribute("src")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-img")).not_to_have_attribute("src", first_src)
    screenshot(page, "showcase-lightbox")
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()

    # The images behind the showcase are public only for what it shows.
    for image_id, status in ((featured, 200), (private, 404), (public_only, 404)):
        assert page.request.get(f"/api/v1/showcase/{image_id}/full").status == status
    assert page.request.get(f"/api/v1/images/{private}/full").status == 401

    page.goto("/terms")
    for heading in ("Acceptable use", "Your content and your responsibility", "What is kept, and for how long",
                    "Deletion"):
        expect(page.get_by_role("heading", name=re.compile(heading))).to_be_visible()
    screenshot(page, "terms")
    assert page.js_errors == []


def test_the_menu_opens_on_a_phone_for_visitors_and_users(phone):
    phone.goto("/")
    toggle = phone.locator("#nav-toggle")
    expect(toggle).to_be_visible()
    docs = phone.locator("#nav-menu").get_by_role("link", name="Docs")
    expect(docs).to_be_hidden()
    expect(phone.locator(".site-nav__register")).to_be_visible()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(docs).to_be_visible()
    phone.wait_for_function(
        "() => document.getElementById('nav-menu').getAnimations().every(a => a.playState !== 'running')")
    screenshot(phone, "menu-phone")
    docs.click()
    expect(phone).to_have_url(re.compile(r"/docs$"))
    expect(phone.locator("#nav-menu")).to_be_hidden()
    screenshot(phone, "docs-phone")

    register_and_sign_in(phone, "pocketmenu")
    expect(phone.locator("#balance")).to_be_visible()
    expect(phone.locator("form[action='/logout'] button")).to_be_visible()
    phone.locator("#nav-toggle").click()
    menu = phone.locator("#nav-menu")
    for label in ("Studio", "Gallery", "Account", "Docs"):
        expect(menu.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(menu.get_by_role("link", name="Admin")).to_have_count(0)
    phone.keyboard.press("Escape")
    expect(menu.get_by_role("link", name="Studio", exact=True)).to_be_hidden()


def test_reporting_a_showcase_picture_uses_the_pages_dialog(page, live):
    folder = live.instance / "showcase"
    folder.mkdir(exist_ok=True)
    (folder / "a-reported-sunset.png").write_bytes(artwork(5, side=128))
    native: list[str] = []
    page.on("dialog", lambda dialog: (native.append(dialog.type), dialog.dismiss()))
    register_and_sign_in(page, "reporter")
    page.goto("/gallery")
    item = page.locator(".showcase-item").filter(has=page.locator('img[alt="A reported sunset"]'))
    report = item.get_by_role("button", name="Report this picture to staff")

    # Canceling sends nothing.
    report.click()
    dialog = page.get_by_role("dialog", name="Report this picture to staff?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(report).to_have_text("Report")

    report.click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Why (optional)").fill("it looks   like a real photo of someone")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog).to_have_count(0)
    expect(report).to_have_text("Reported")
    expect(report).to_be_disabled()
    expect(page.locator("#showcase-status")).to_have_text("Thank you: your report was sent to staff.")
    assert native == [], "the browser's own prompt()/alert() was used"

    staff = staff_session(live, "e2ereportreader")
    reports = staff.get(live.url + "/api/v1/admin/moderation/reports").json()["items"]
    assert any(r.get("reason") == "it looks like a real photo of someone" for r in reports), reports
    assert page.js_errors == []
