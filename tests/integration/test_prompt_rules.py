"""Prompt rules (services/moderation/rules.py): a prompt or negative prompt that matches
an enabled rule is refused at submit with a 422 naming the rule, on every submit route
(the JSON API the studio uses, A1111's txt2img and img2img, OpenAI's generations and
edits, each in its own error shape); nothing is charged and the attempt is counted for
the user. Staff keep the list through the moderation API, and a change applies to the
next submit in every web process, without a restart."""
from __future__ import annotations

import base64
import io
import re
import uuid

import pytest

from tests.helpers import ROOT, image_bytes, instance_env, make_app, unique
from tests.integration.helpers import ApiUser, make_staff, migrated_app, sign_in, starter_prompt_rules

RULES = "/api/v1/admin/moderation/rules"


@pytest.fixture(scope="module")
def rules_staff(stack) -> dict:
    return make_staff(stack, unique("ruler"))


def rules_add_rule(client, staff: dict, **fields) -> dict:
    response = client.post(RULES, json=fields, headers=staff)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def rules_word(app, rules_staff):
    """A word rule of the test's own (a made-up word no other test writes), deleted after."""
    client = app.test_client()
    word = f"zorblax{uuid.uuid4().hex[:6]}"
    rule = rules_add_rule(client, rules_staff, kind="word", pattern=word, note="made up for the tests")
    yield rule
    client.delete(f"{RULES}/{rule['id']}", headers=rules_staff)


def rules_blocked_total(client, staff: dict, user: ApiUser) -> int:
    answer = client.get(f"/api/v1/admin/moderation/blocked?user={user.data['id']}", headers=staff)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["total"]


def rules_png_b64() -> str:
    return base64.b64encode(image_bytes((64, 64), (10, 120, 200))).decode()


def test_rules_a_blocked_prompt_is_refused_on_every_submit_route_and_nothing_is_charged(
        app, client, make_user, rules_staff, rules_word):
    user = make_user("blocked")
    word = rules_word["pattern"]
    tokens = user.me()["tokens"]
    ledger = user.get("/api/v1/me/ledger").get_json()["total"]
    uploads = user.get("/api/v1/images").get_json()["total"]
    assert rules_blocked_total(client, rules_staff, user) == 0

    # The JSON API (what the studio sends), prompt and negative prompt.
    answer = user.submit(prompt=f"a {word.upper()} at dusk")
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "prompt_blocked" and error["field"] == "prompt"
    assert word in error["message"] and "made up for the tests" in error["message"]
    assert error["rule"] == {"id": rules_word["id"], "kind": "word", "pattern": word,
                             "note": "made up for the tests"}
    assert error["fields"] == {"prompt": error["message"]}  # the studio shows it under the field
    answer = user.submit(prompt="a quiet lake", negative_prompt=f"blurry, {word}")
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "negative_prompt"

    # AUTOMATIC1111's API, in its error shape.
    for path, extra in (("/sdapi/v1/txt2img", {}), ("/sdapi/v1/img2img", {"init_images": [rules_png_b64()]})):
        answer = user.post(path, json={"prompt": f"{word} in the rain", "steps": 2, "width": 64, "height": 64,
                                       **extra})
        assert answer.status_code == 422, (path, answer.get_json())
        body = answer.get_json()
        assert set(body) == {"error", "detail", "body", "errors"} and body["error"] == "PromptBlocked"
        assert word in body["detail"], body

    # OpenAI's Images API, in its error shape.
    answer = user.post("/v1/images/generations", json={"prompt": f"{word}!", "size": "64x64"})
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "prompt_blocked" and error["param"] == "prompt" and word in error["message"]
    answer = user.post("/v1/images/edits", data={"prompt": f"make it {word}", "size": "64x64",
                                                 "image": (io.BytesIO(image_bytes((64, 64), (1, 2, 3))), "in.png")},
                       content_type="multipart/form-data")
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["code"] == "prompt_blocked"

    # Nothing charged, no task, the init images of img2img and edits not kept; six attempts counted.
    assert user.me()["tokens"] == tokens
    assert user.get("/api/v1/me/ledger").get_json()["total"] == ledger
    assert user.get("/api/v1/tasks").get_json()["total"] == 0
    assert user.get("/api/v1/images").get_json()["total"] == uploads
    assert rules_blocked_total(client, rules_staff, user) == 6
    blocked = client.get("/api/v1/admin/moderation/blocked", headers=rules_staff).get_json()
    [mine] = [row for row in blocked["users"] if row["user"]["id"] == user.data["id"]]
    assert mine["count"] == 6
    assert any(row["rule"] == word and word.upper() in row["prompt"] for row in blocked["items"])


def test_rules_match_whole_words_in_any_case_and_spacing(app, client, make_user, rules_staff):
    stem = f"ass{uuid.uuid4().hex[:5]}"
    rule = rules_add_rule(client, rules_staff, kind="word", pattern=f"{stem} cat")
    try:
        def verdict(prompt: str) -> bool:
            answer = client.post(f"{RULES}/test", json={"prompt": prompt}, headers=rules_staff)
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()["blocked"] and answer.get_json()["rule"]["id"] == rule["id"]

        assert verdict(f"a {stem.upper()}  Cat.") and verdict(f"({stem}-cat)")
        assert verdict(f"a {stem}\u200b cat")  # an invisible space does not split it
        assert not verdict(f"a cl{stem} cat")  # "class" does not match "ass"
        assert not verdict(f"a {stem} dog") and not verdict(f"a cat, {stem}")
        # A plural, and the words run together, match (tests/integration/test_prompt_bypass.py
        # has every other spelling).
        assert verdict(f"a {stem} cats") and verdict(f"{stem}cat")
        # A real submit by a user agrees with the tester.
        user = make_user("spacing")
        assert user.submit(prompt=f"cl{stem} catalogue").status_code == 202
    finally:
        client.delete(f"{RULES}/{rule['id']}", headers=rules_staff)


def test_rules_staff_edits_apply_to_the_next_submit_in_another_web_process(app, client, make_user, rules_staff):
    """Two app instances on the same database (two web processes): staff change the list
    in one, the other refuses or allows the very next submit."""
    other = make_app(app.env)
    user = ApiUser(other.test_client(), unique("elsewhere"))
    word = f"quendor{uuid.uuid4().hex[:6]}"
    prompt = f"a {word} castle"
    rule = rules_add_rule(client, rules_staff, kind="regex", pattern=rf"\b{word}\w*", note="")
    assert user.submit(prompt=prompt).status_code == 422
    assert client.patch(f"{RULES}/{rule['id']}", json={"enabled": False},
                        headers=rules_staff).get_json()["enabled"] is False
    allowed = user.submit(prompt=prompt)
    assert allowed.status_code == 202, allowed.get_json()
    assert client.patch(f"{RULES}/{rule['id']}", json={"enabled": True}, headers=rules_staff).status_code == 200
    assert user.submit(prompt=prompt + " again").status_code == 422
    assert client.delete(f"{RULES}/{rule['id']}", headers=rules_staff).status_code == 204
    assert user.submit(prompt=prompt + " once more").status_code == 202
    assert client.delete(f"{RULES}/{rule['id']}", headers=rules_staff).status_code == 404
    # Each change is one audit row, with the rule.
    audit = client.get(f"/api/v1/admin/audit?target={rule['id']}&action=moderation&limit=50",
                       headers=rules_staff).get_json()["items"]
    # (SQLite may give a new rule the id of a deleted one: the pattern tells them apart.)
    mine = [row for row in audit if row["target"]["type"] == "prompt_rule" and row["target"]["name"] == rule["pattern"]]
    assert [row["action"] for row in mine] == ["moderation.rule_delete", "moderation.rule_edit",
                                               "moderation.rule_edit", "moderation.rule_add"]
    assert mine[-1]["details"]["pattern"] == rule["pattern"]
    assert mine[1]["details"]["changes"] == {"enabled": [False, True]}


def test_rules_a_bad_rule_is_a_422_naming_the_field_and_nothing_is_added(client, rules_staff):
    before = client.get(RULES, headers=rules_staff).get_json()["total"]
    bad = [({"kind": "regex", "pattern": "(unclosed"}, "pattern"),
           ({"kind": "regex", "pattern": "[a-"}, "pattern"),
           ({"kind": "regex", "pattern": ".*"}, "pattern"),  # would refuse every prompt
           ({"kind": "regex", "pattern": "x" * 300}, "pattern"),
           ({"kind": "word", "pattern": "  "}, "pattern"),
           ({"kind": "word", "pattern": "--"}, "pattern"),
           ({"kind": "word"}, "pattern"),
           ({"kind": "slur", "pattern": "x"}, "kind"),
           ({"kind": "word", "pattern": 7}, "pattern"),
           ({"kind": "word", "pattern": "fine", "enabled": "yes"}, "enabled"),
           ({"kind": "word", "pattern": "fine", "note": "n" * 300}, "note")]
    for fields, field in bad:
        answer = client.post(RULES, json=fields, headers=rules_staff)
        assert answer.status_code == 422, (fields, answer.get_json())
        assert answer.get_json()["error"]["field"] == field, (fields, answer.get_json())
    word = f"dup{uuid.uuid4().hex[:6]}"
    rule = rules_add_rule(client, rules_staff, kind="word", pattern=word)
    try:
        again = client.post(RULES, json={"kind": "word", "pattern": word.upper()}, headers=rules_staff)
        assert again.status_code == 422 and again.get_json()["error"]["field"] == "pattern"
        edit = client.patch(f"{RULES}/{rule['id']}", json={"kind": "regex", "pattern": "(("}, headers=rules_staff)
        assert edit.status_code == 422 and edit.get_json()["error"]["field"] == "pattern"
        assert client.patch(f"{RULES}/nope", json={"enabled": False}, headers=rules_staff).status_code == 404
        for fields, field in (({}, "body"), ({"colour": "red"}, "colour")):
            answer = client.patch(f"{RULES}/{rule['id']}", json=fields, headers=rules_staff)
            assert answer.status_code == 422 and answer.get_json()["error"]["field"] == field
        assert client.get(RULES, headers=rules_staff).get_json()["total"] == before + 1
    finally:
        client.delete(f"{RULES}/{rule['id']}", headers=rules_staff)


def test_rules_users_who_are_not_staff_get_403_on_the_moderation_api_and_page(app, make_user, rules_staff):
    user = make_user("nosy")
    for method, path in (("GET", RULES), ("POST", RULES), ("PATCH", f"{RULES}/1"), ("DELETE", f"{RULES}/1"),
                         ("POST", f"{RULES}/test"), ("GET", "/api/v1/admin/moderation/blocked"),
                         ("GET", "/api/v1/admin/moderation/reports"),
                         ("POST", "/api/v1/admin/moderation/reports/1")):
        answer = user.client.open(path, method=method, json={"kind": "word", "pattern": "x"}, headers=user.headers)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden", (method, path)
    browser = app.test_client()
    sign_in(browser, user.username, user.password)
    assert browser.get("/admin/moderation").status_code == 403
    staff_browser = app.test_client()
    staff_name = unique("modpage")
    make_staff(app, staff_name, "a staff password")
    sign_in(staff_browser, staff_name, "a staff password")
    page = staff_browser.get("/admin/moderation")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="rules-table"' in html and 'id="reports-table"' in html and 'id="blocked-table"' in html
    assert "js/pages/admin-moderation.js" in html


def test_rules_the_starter_list_is_valid_and_no_test_prompt_matches_it():
    """The migrations' starter list (seeded on upgrade) compiles as the rules do, catches
    what it is for, and leaves every prompt the test suite writes alone."""
    from services.moderation import rules

    starter = starter_prompt_rules()
    assert 5 <= len(starter) <= 30 and all(note for *_rest, note in starter)
    for _n, kind, pattern, _note in starter:
        rules.validate_pattern(kind, pattern)
        assert len(pattern) <= rules.MAX_PATTERN
    assert rules.find_match({"prompt": "lolicon style"}, starter)
    assert rules.find_match({"negative_prompt": "Naked toddlers"}, starter).field == "negative_prompt"
    for harmless in ("children playing in a park", "a school bus", "a minor chord", "a classy glass"):
        assert rules.find_match({"prompt": harmless}, starter) is None, harmless
    literal = re.compile(r"""prompt["']?\s*[:=]\s*f?(["'])(.*?)\1""")
    prompts = {m.group(2) for file in (ROOT / "tests").rglob("*.py")
               if file.name not in ("test_prompt_rules.py", "test_prompt_bypass.py", "test_prompt_normalize.py")
               for m in literal.finditer(file.read_text())}
    assert len(prompts) > 20
    matched = [p for p in prompts if rules.find_match({"prompt": p}, starter)]
    assert matched == []


def test_rules_a_migrated_database_starts_with_the_starter_list(tmp_path, redis_url, models_path):
    app = migrated_app(instance_env(tmp_path, redis_url, models_path))
    staff = make_staff(app, unique("seeded"))
    client = app.test_client()
    listed = client.get(f"{RULES}?preset=standard", headers=staff).get_json()["items"]  # (strict's: test_presets)
    assert len(listed) >= 5 and all(rule["enabled"] and rule["note"] for rule in listed)
    assert {"csam", "lolicon"} <= {rule["pattern"] for rule in listed}
    # The same list as the tests use: the proximity patterns became one pair rule.
    assert sorted((rule["kind"], rule["pattern"]) for rule in listed) == sorted(
        (kind, pattern) for _n, kind, pattern, _note in starter_prompt_rules())
    user = ApiUser(client, unique("fresh"))
    refused = user.submit(prompt="Lolicon, anime style")
    assert refused.status_code == 422 and refused.get_json()["error"]["rule"]["pattern"] == "lolicon"
    far = user.submit(prompt="a naked statue in a museum, " + "marble and light, " * 5 + "a child looking")
    assert far.status_code == 422 and far.get_json()["error"]["rule"]["kind"] == "pair"
    assert user.submit().status_code == 202  # the tests' usual prompt is fine
    # Starter rules are ordinary rules: staff may edit or delete them.
    first = listed[0]
    assert client.patch(f"{RULES}/{first['id']}", json={"note": "edited"}, headers=staff).get_json()["note"] == "edited"
    assert client.delete(f"{RULES}/{first['id']}", headers=staff).status_code == 204
