"""PNG info in the studio, in Chromium: an A1111 picture dropped onto the panel shows its
settings in a dialog, and "Use these settings" puts them into the panel."""
from __future__ import annotations

import base64
import io

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from playwright.sync_api import expect

from tests.e2e.helpers import register_and_sign_in

A1111_SETTINGS = ("a lighthouse on a cliff at dusk\nNegative prompt: blurry, text\n"
                  "Steps: 6, Sampler: Euler a, CFG scale: 5.5, Seed: 4242, Size: 256x256, Model: demo, "
                  "Version: v1.10.1")


def a1111_png() -> str:
    info = PngInfo()
    info.add_text("parameters", A1111_SETTINGS)
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 90, 160)).save(out, format="PNG", pnginfo=info)
    return base64.b64encode(out.getvalue()).decode("ascii")


def test_an_a1111_png_dropped_on_the_panel_fills_it(page):
    register_and_sign_in(page, "pnginfo")
    expect(page.locator("#steps")).to_have_value("8")
    dropped = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "from-a1111.png", { type: "image/png" }));
        return transfer;
    }""", a1111_png())
    page.dispatch_event("#panel-title", "drop", {"dataTransfer": dropped})
    dialog = page.locator("#pnginfo-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#pnginfo-source")).to_contain_text("AUTOMATIC1111")
    expect(page.locator("#pnginfo-prompt")).to_have_text("a lighthouse on a cliff at dusk")
    expect(page.locator("#pnginfo-settings")).to_contain_text("Steps: 6")
    expect(page.locator("#pnginfo-settings")).to_contain_text("Seed: 4242")
    page.click("#pnginfo-use")
    expect(dialog).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("a lighthouse on a cliff at dusk")
    expect(page.locator("#negative_prompt")).to_have_value("blurry, text")
    expect(page.locator("#steps")).to_have_value("6")
    expect(page.locator("#seed")).to_have_value("4242")
    # Nothing became the init image: the drop was read, not uploaded
    expect(page.locator("#init-preview")).to_be_hidden()
