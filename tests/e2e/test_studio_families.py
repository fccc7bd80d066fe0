"""The studio panel with model families in Chromium: choosing the SDXL demo model applies
its card (its defaults, its schedulers, SDXL's size presets fitted to the user's limits),
a LoRA of its family is added and weighted, the task is generated with it and ends done,
and "Reuse settings" brings the model, the scheduler and the LoRA back. Also on a phone:
the LoRA controls fit and have labels; a FLUX model hides guidance and the negative prompt.

The built-in demo models of every family are offered with DAYDREAM_DEMO_MODELS=all: this
module runs a live server and worker of its own with it."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in


SDXL_SIZES = [(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344)]


@pytest.fixture(scope="module")
def live(stack_factory):
    return stack_factory(web=1, DAYDREAM_PROGRESS_HZ=20, DAYDREAM_DEMO_MODELS="all").web(1)


def page_config(page) -> dict:
    return json.loads(page.locator("#studio-config").text_content())


def options(page, selector) -> list[str]:
    return page.locator(selector + " option").evaluate_all("els => els.map(e => e.value)")


def test_the_sdxl_card_a_lora_generate_and_reuse(page):
    register_and_sign_in(page, "familyfan")
    config = page_config(page)
    models = {m["id"]: m for m in config["models"]}
    assert "demo-sdxl" in models, "the SDXL demo model is not offered (DAYDREAM_DEMO_MODELS=all)"
    sdxl = models["demo-sdxl"]
    assert sdxl["family"] == "sdxl"
    assert [tuple(s) for s in sdxl["sizes"]] == SDXL_SIZES
    sdxl_loras = [lo for lo in config["loras"] if lo["family"] == "sdxl"]
    assert sdxl_loras, "no SDXL LoRA is enabled"
    lora = sdxl_loras[0]
    defaults = dict(sdxl["defaults"], **config["model_defaults"].get("demo-sdxl", {}))

    page.select_option("#model", "demo-sdxl")
    # Its defaults: the fields were at the demo model's, so they follow.
    expect(page.locator("#steps")).to_have_value(str(defaults["steps"]))
    expect(page.locator("#guidance")).to_have_value(re.compile("^" + re.escape(f"{defaults['guidance']:g}") + r"(\.0)?$"))
    expect(page.locator("#scheduler")).to_have_value(defaults["scheduler"])
    expect(page.locator("#width")).to_have_value(str(defaults["width"]))
    expect(page.locator("#height")).to_have_value(str(defaults["height"]))
    # Only its schedulers are offered.
    assert options(page, "#scheduler") == [s for s in sdxl["schedulers"] if s in config["schedulers"]]
    # SDXL's presets, fitted to this user's limits (the side raised to the card's, the pixels the user's).
    limits = config["limits"]
    side = max(min(config["rules"]["width"]["max"], limits.get("max_side") or 10**6), sdxl["max_side"])
    pixels = limits.get("max_pixels") or side * side
    chips = page.locator("#size-cards [data-card-size]")
    expect(page.locator("#size-cards")).to_be_visible()
    expect(chips).to_have_count(len(SDXL_SIZES))
    shown = [tuple(int(n) for n in v.split("x")) for v in chips.evaluate_all("els => els.map(e => e.dataset.cardSize)")]
    for (w, h), (want_w, want_h) in zip(shown, SDXL_SIZES):
        assert w <= side and h <= side and w * h <= pixels, (w, h)
        assert w % sdxl["size_step"] == 0 and h % sdxl["size_step"] == 0
        assert abs(w / h - want_w / want_h) / (want_w / want_h) < 0.04, (w, h, want_w, want_h)
        if want_w <= side and want_h <= side and want_w * want_h <= pixels:
            assert (w, h) == (want_w, want_h)
    # A preset sets the size; the smallest keeps the CPU demo quick.
    smallest = min(range(len(shown)), key=lambda i: shown[i][0] * shown[i][1])
    chips.nth(smallest).click()
    expect(page.locator("#width")).to_have_value(str(shown[smallest][0]))
    expect(chips.nth(smallest)).to_have_attribute("aria-pressed", "true")
    page.fill("#width", "256")
    page.fill("#height", "256")
    page.locator("#height").dispatch_event("change")

    # A scheduler other than the default, to see it come back.
    other = next(s for s in options(page, "#scheduler") if s != defaults["scheduler"])
    page.select_option("#scheduler", other)

    # The LoRA picker: this family's LoRAs only; add one, weight it.
    section = page.locator("#lora-section")
    expect(section).to_be_visible()
    assert set(options(page, "#lora-choice")) == {lo["id"] for lo in sdxl_loras}
    page.get_by_label("Add a LoRA").select_option(lora["id"])
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(f'#lora-list .lora-row[data-lora-id="{lora["id"]}"]')
    expect(row).to_have_count(1)
    weight = row.get_by_label("Weight of " + lora["name"], exact=True)
    expect(weight).to_have_value("0.8")
    expect(weight).to_be_focused()
    weight.fill("0.65")
    weight.dispatch_event("change")
    expect(weight).to_have_value("0.65")
    weight.fill("5")
    weight.dispatch_event("change")
    expect(weight).to_have_value("2")  # clamped to -2..2
    weight.fill("0.65")
    weight.dispatch_event("change")

    page.fill("#prompt", "a red fox in the snow, sdxl")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/tasks") and r.method == "POST") as sent:
        page.click("#generate")
    body = json.loads(sent.value.post_data)
    assert body["model"] == "demo-sdxl"
    assert body["scheduler"] == other
    assert body["loras"] == [{"id": lora["id"], "weight": 0.65}]
    card = page.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=240_000)
    expect(card.locator(".task-loras")).to_contain_text(lora["name"])
    task_id = card.get_attribute("data-task-id")
    task = page.request.get(f"/api/v1/tasks/{task_id}").json()
    assert task["model"] == "demo-sdxl"
    assert task["scheduler"] == other
    assert [(x["id"], x["weight"]) for x in task["loras"]] == [(lora["id"], 0.65)]

    # Another model: the SDXL LoRA is dropped with a note; the scheduler changes too.
    if page.locator("#panel-toggle").is_visible():
        page.click("#panel-toggle")
    page.select_option("#model", "demo")
    expect(row).to_have_count(0)
    expect(page.locator("#lora-note")).to_be_visible()
    expect(page.locator("#lora-note")).to_contain_text(lora["name"])
    page.select_option("#scheduler", next(s for s in options(page, "#scheduler") if s != other))

    # Reuse brings the model, the scheduler and the LoRA (with its weight) back.
    card.locator(".task-reuse").click()
    expect(page.locator("#model")).to_have_value("demo-sdxl")
    expect(page.locator("#scheduler")).to_have_value(other)
    expect(row).to_have_count(1)
    expect(row.get_by_label("Weight of " + lora["name"], exact=True)).to_have_value("0.65")
    expect(page.locator("#prompt")).to_have_value("a red fox in the snow, sdxl")

    # The panel keeps the LoRA across a reload; "Reset to defaults" clears it.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")
    expect(page.locator("#model")).to_have_value("demo-sdxl")
    expect(page.locator(f'#lora-list .lora-row[data-lora-id="{lora["id"]}"]')).to_have_count(1)
    page.get_by_role("button", name="Reset to defaults").click()
    expect(page.locator("#lora-list .lora-row")).to_have_count(0)
    assert page.js_errors == []


def test_flux_hides_guidance_and_the_negative_prompt_on_a_phone(phone):
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    register_and_sign_in(phone, "fluxphone")
    config = page_config(phone)
    flux = next((m for m in config["models"] if m["family"] == "flux"), None)
    assert flux is not None, "no FLUX demo model is offered"
    phone.click("#panel-toggle")
    phone.select_option("#model", flux["id"])
    if not flux["uses_guidance"]:
        expect(phone.locator("#guidance")).to_be_hidden()
    expect(phone.locator("#negative_prompt")).to_be_disabled()
    expect(phone.locator("#negative_prompt-note")).to_have_text("FLUX ignores negative prompts.")
    assert options(phone, "#scheduler") == [s for s in flux["schedulers"] if s in config["schedulers"]]
    # FLUX sizes: multiples of 16.
    for value in phone.locator("#size-cards [data-card-size]").evaluate_all("els => els.map(e => e.dataset.cardSize)"):
        w, h = (int(n) for n in value.split("x"))
        assert w % 16 == 0 and h % 16 == 0

    flux_loras = [lo for lo in config["loras"] if lo["family"] == "flux"]
    if flux_loras:
        phone.get_by_label("Add a LoRA").select_option(flux_loras[0]["id"])
        phone.get_by_role("button", name="Add", exact=True).click()
        row = phone.locator("#lora-list .lora-row").first
        expect(row.get_by_label("Weight of " + flux_loras[0]["name"], exact=True)).to_be_visible()
        expect(row.get_by_role("button", name="Remove " + flux_loras[0]["name"])).to_be_visible()
        # Nothing sticks out of the panel on a phone.
        panel = phone.locator("#studio-panel").bounding_box()
        box = row.bounding_box()
        assert box["x"] >= panel["x"] - 1 and box["x"] + box["width"] <= panel["x"] + panel["width"] + 1

    phone.fill("#prompt", "a film still of a lighthouse")
    with phone.expect_request(lambda r: r.url.endswith("/api/v1/estimate") and r.method == "POST") as sent:
        phone.fill("#steps", str(flux["defaults"]["steps"] + 1))
    body = json.loads(sent.value.post_data)
    assert "negative_prompt" not in body
    if not flux["uses_guidance"]:
        assert "guidance" not in body

    # Its task's card shows no "Guidance 0".
    phone.fill("#width", "64")
    phone.fill("#height", "64")
    phone.fill("#steps", "1")
    phone.click("#generate")
    card = phone.locator("#task-list article.task").first
    expect(card).to_have_attribute("data-state", "done", timeout=180_000)
    expect(card.locator(".task-steps")).to_have_text("1 step")
    if not flux["uses_guidance"]:
        expect(card.locator(".task-guidance")).to_be_hidden()
    assert errors == []
