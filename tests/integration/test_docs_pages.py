"""What the pages say, checked against the README, the settings and what the service
does: /docs (defaults from the models' cards, the other APIs, LoRAs and families,
scaling out, sessions), the terms (deleting an account, what is kept), Account → API
(API keys, links to the APIs) and the studio's demo notice (operator advice for staff)."""
from __future__ import annotations

import html
import re

import pytest

from tests.helpers import ROOT
from tests.integration.helpers import ApiUser, make_staff, sign_in, studio_config

README = (ROOT / "README.md").read_text()


def text_of(page: str) -> str:
    """A page's words: tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def cell(page: str, row_id: str) -> str:
    match = re.search(rf'<tr id="{row_id}">.*?<td>(.*?)</td>', page, re.S)
    assert match, f"no row {row_id}"
    return text_of(match.group(1))


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory, redis_url, models_path):
    from tests.helpers import instance_env, make_app

    return make_app(instance_env(tmp_path_factory.mktemp("docs"), redis_url, models_path))


def test_the_docs_defaults_are_the_default_models_as_the_studio_uses_them(docs_app):
    client = docs_app.test_client()
    user = ApiUser(client, "docreader")
    sign_in(client, user.username, user.password)
    config, _ = studio_config(client)
    defaults = config["defaults"]
    docs = client.get("/docs").get_data(as_text=True)
    assert cell(docs, "default-size") == f"{defaults['width']}×{defaults['height']}"
    assert cell(docs, "default-steps") == str(defaults["steps"])
    assert cell(docs, "default-guidance") == f"{defaults['guidance']:g}"
    # The demo model starts small and quick, not at SD 1.5's 512² and 30 steps.
    assert (defaults["width"], defaults["steps"]) != (512, 30)
    # Every offered model is listed with the values a task with it starts from.
    for model in config["models"]:
        row = re.search(rf'<tr data-model-id="{re.escape(model["id"])}">(.*?)</tr>', docs, re.S)
        assert row, f"{model['id']} is not listed"
        start = config["model_defaults"].get(model["id"], model["defaults"])
        assert f"{start['width']}×{start['height']}" in text_of(row.group(1))


def test_the_docs_cover_the_other_apis_loras_and_model_families(docs_app):
    from services.generation.families import FAMILIES

    words = text_of(docs_app.test_client().get("/docs").get_data(as_text=True))
    for phrase in ("/sdapi/v1", "/v1/images/generations", "OpenAI Images API", "AUTOMATIC1111",
                   "LoRA", "<lora:name:0.8>", "API key"):
        assert phrase in words, phrase
    for family in FAMILIES.values():
        assert family.label in words, family.label
    assert 'id="other-tools"' in docs_app.test_client().get("/docs").get_data(as_text=True)


def test_scaling_out_says_what_the_readme_says(docs_app):
    words = text_of(docs_app.test_client().get("/docs").get_data(as_text=True))
    # One gunicorn process per core, WebSocket-only Socket.IO over Redis, no sticky sessions.
    assert "gunicorn -w $(nproc)" in README and "gunicorn -w $(nproc)" in words
    assert "gunicorn -w 1 " not in words
    readme = " ".join(README.split())
    assert "needs no sticky sessions" in readme and "needs no sticky sessions" in words
    assert "with sticky sessions" not in words
    assert "WebSocket connections only" in readme and "WebSocket connections only" in words
    assert "DAYDREAM_WEB_PROCESSES" in words


def test_the_terms_say_how_to_delete_an_account_and_what_staff_see(docs_app):
    client = docs_app.test_client()
    terms = client.get("/terms").get_data(as_text=True)
    words = text_of(terms)
    assert "ask the staff" not in words
    assert "Delete my account" in words and 'href="/account"' in terms
    assert "Prompts refused" in words and "Reports you make" in words
    assert words.count("shown to staff") >= 2
    user = ApiUser(client, "leaver")
    sign_in(client, user.username, user.password)
    assert "Delete my account" in text_of(client.get("/account").get_data(as_text=True))  # it exists


def test_account_api_speaks_of_api_keys_and_links_to_the_apis(docs_app):
    client = docs_app.test_client()
    user = ApiUser(client, "scripter")
    sign_in(client, user.username, user.password)
    page = client.get("/account").get_data(as_text=True)
    api_tab = page[page.index('id="panel-api"'):]
    assert 'href="/docs#api"' in api_tab and 'href="/docs#other-tools"' in api_tab
    assert "/sdapi/v1" in api_tab and "/v1" in api_tab
    words = text_of(api_tab)
    assert "API keys" in words and "Create key" in words
    assert "API token" not in text_of(page)  # tokens are the credits; the keys are keys
    # The docs say the same, and the README names it the same way.
    assert "API key (Account → API" in README


def test_each_sign_in_starts_a_session_as_the_docs_say(docs_app):
    docs = text_of(docs_app.test_client().get("/docs").get_data(as_text=True))
    assert "Each sign-in starts a new session" in docs
    assert "lists the ones you made tasks in" in docs
    owner = ApiUser(docs_app.test_client(), "sessioner")
    sessions = []
    for n in range(3):  # three browsers, one after another, a task in each
        browser = docs_app.test_client()
        csrf = sign_in(browser, owner.username, owner.password)
        sent = browser.post("/api/v1/tasks", json={"prompt": f"sign-in {n}", "width": 64, "height": 64,
                                                   "steps": 2}, headers={"X-CSRFToken": csrf})
        assert sent.status_code == 202, sent.get_json()
        sessions.append(browser.get("/api/v1/me").get_json()["sessionid"])
    assert len(set(sessions)) == 3
    listed = owner.get("/api/v1/sessions").get_json()
    assert listed["total"] == 3
    assert [s["latest_prompt"] for s in listed["items"]] == ["sign-in 2", "sign-in 1", "sign-in 0"]
    # Sign-ins without a task are not listed, but for the current one.
    for _ in range(2):
        sign_in(docs_app.test_client(), owner.username, owner.password)
    listed = owner.get("/api/v1/sessions").get_json()
    assert listed["total"] == 4 and listed["items"][0]["current"] and listed["items"][0]["task_count"] == 0


def test_the_demo_notice_gives_operator_advice_to_staff_only(docs_app):
    client = docs_app.test_client()
    user = ApiUser(client, "plainuser")
    sign_in(client, user.username, user.password)
    page = client.get("/studio").get_data(as_text=True)
    assert 'id="demo-notice"' in page
    assert "DAYDREAM_MODEL" not in text_of(page[page.index('id="demo-notice"'):page.index('id="session-banner"')])
    make_staff(docs_app, "docstaff")
    staff = docs_app.test_client()
    sign_in(staff, "docstaff", "a staff password")
    page = staff.get("/studio").get_data(as_text=True)
    assert 'id="demo-notice-staff"' in page and "DAYDREAM_MODEL" in page
