"""Moderation presets (services/moderation/presets.py): under the strict preset, words of
its list (sexual content, gore, slurs) are refused in plain, upper-case, full-width,
accented, zero-width-split, spaced and leet spellings on the JSON API, A1111's txt2img
and OpenAI's generations, at submit, while standard lets them through; its pair rules
and patterns refuse what they are for; ordinary prompts holding a blocked word's letters
("Essex", "therapist", "Penistone") pass. A pupil of a strict class is held to strict on
a standard server. The first-run setup's "Is Daydream for a school?" and Admin →
Moderation choose the server's preset; DAYDREAM_MODERATION_PRESET seeds a new install's.

The shared stack (the A1111 and OpenAI routes answer 503 without a live worker, before
any prompt check; refusals happen at submit, before anything is queued), with the
starter list of a migrated database installed as the standard rules; the server's preset
goes back to standard after."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.helpers import make_app, unique
from tests.integration.helpers import (ApiUser, csrf_from, make_staff, sign_in, starter_prompt_rules,
                                       user_row)

RULES = "/api/v1/admin/moderation/rules"
PRESET = "/api/v1/admin/moderation/preset"
ROUTES = ["native", "a1111", "openai"]

# Word rules of the strict list, one or more of each kind of content; the long ones
# ("masturbating", "decapitated") are matched with anything after and separators inside.
STRICT_WORDS = ["nude", "porn", "hentai", "sexy", "masturbating", "decapitated", "gory", "mutilated",
                "faggot", "retard"]
LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"})
ACCENTS = str.maketrans({"a": "\u00e1", "e": "\u00e9", "i": "\u00ef", "o": "\u00f6", "u": "\u00fc"})
SPELLINGS = {
    "plain": lambda word: word,
    "upper": str.upper,
    "full-width": lambda word: "".join(chr(ord(ch) + 0xFEE0) for ch in word),
    "accented": lambda word: word.translate(ACCENTS),
    "zero-width": "\u200b".join,
    "spaced": " ".join,
    "leet": lambda word: word.translate(LEET),
}
# The strict list's pair rules and patterns: what each is for.
STRICT_PHRASES = ["a bloody corpse in an alley", "a severed head on a plate", "a woman without any clothes",
                  "slit his throat", "a pool of blood on the floor", "topless on the beach", "b4re br3asts",
                  "gore everywhere", "wearing nothing at all", "a horny couple"]

# Ordinary prompts that hold a blocked word's letters, or a word of a pair, or a slur's
# ordinary namesake: strict lets every one through.
ORDINARY = [
    "Essex coastline at dawn", "Sussex countryside", "Middlesex county map", "an old brass sextant",
    "a string sextet", "a unisex haircut", "the sexton of the church", "Penistone railway station",
    "Clitheroe castle", "a pink grapefruit", "velvet drapes", "a rapeseed field in May", "a trapeze artist",
    "a therapist's office", "data analysis chart", "a canal boat in Amsterdam", "an analog synthesizer",
    "a denuded hillside", "a nudibranch underwater", "a gorge at sunset", "a gorilla", "a Gore-Tex jacket",
    "Al Gore giving a speech", "an Edward Gorey style drawing", "pasta e fagioli", "a spice rack",
    "a Pakistani flag", "a raccoon in a cocoon", "a tycoon's yacht", "a Maine Coon cat", "a coonhound",
    "a chink of light", "a Homo sapiens skull", "a homogeneous mixture", "Offa's Dyke path", "Nigeria map",
    "a niggling doubt", "flame retardant foam", "Porgy and Bess poster", "a thorny rose", "a horny toad",
    "a booby trap", "James Bond, age 40, in a tuxedo", "a crop top, less formal than a blazer",
    "a dog with a wet back", "a towel, head tilted", "a mop with a rag head", "only fans of the band",
    "a blood orange on a table", "a bleeding heart flower", "a severed rope", "a wounded knight statue",
    "a cocktail at sunset", "hentaigana calligraphy", "cumulus clouds", "a pedometer", "a scrapbook page",
    "1girl, solo, 4k, masterpiece", "a cat with a hat, 8k uhd, 35mm, f/1.8", "5 a.m. sunrise", "a b c d e f",
    "c3po and r2d2", "a lighthouse at dusk", "Scunthorpe United fans",
]


@pytest.fixture(scope="module")
def presets_setup(stack):
    """Staff, the starter list installed as the standard rules, a user; afterwards the
    rules are taken away and the server's preset is standard again."""
    client = stack.test_client()
    staff_name = unique("presetboss")
    staff = make_staff(stack, staff_name)
    added = []
    for _n, kind, pattern, note in starter_prompt_rules():
        answer = client.post(RULES, json={"kind": kind, "pattern": pattern, "note": note}, headers=staff)
        assert answer.status_code == 201, answer.get_json()
        added.append(answer.get_json()["id"])
    yield {"app": stack, "env": stack.env, "client": client, "staff": staff, "staff_name": staff_name,
           "user": ApiUser(client, unique("strictuser"))}
    client.put(PRESET, json={"preset": "standard"}, headers=staff)
    for rule_id in added:
        client.delete(f"{RULES}/{rule_id}", headers=staff)


def presets_choose(setup: dict, preset: str) -> dict:
    answer = setup["client"].put(PRESET, json={"preset": preset}, headers=setup["staff"])
    assert answer.status_code == 200 and answer.get_json()["preset"] == preset, answer.get_json()
    return answer.get_json()


def presets_submit(user: ApiUser, route: str, prompt: str) -> tuple[int, str | None]:
    """(status, the error code in the route's shape) of one submit."""
    if route == "native":
        answer = user.submit(prompt=prompt, steps=2)
        return answer.status_code, (answer.get_json().get("error") or {}).get("code")
    if route == "a1111":
        answer = user.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2, "width": 64, "height": 64})
        return answer.status_code, answer.get_json().get("error")
    answer = user.post("/v1/images/generations", json={"prompt": prompt, "size": "64x64"})
    return answer.status_code, (answer.get_json().get("error") or {}).get("code")


REFUSED = {"native": "prompt_blocked", "a1111": "PromptBlocked", "openai": "prompt_blocked"}


def presets_verdict(setup: dict, prompt: str, preset: str) -> dict:
    answer = setup["client"].post(f"{RULES}/test", json={"prompt": prompt, "preset": preset}, headers=setup["staff"])
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def presets_rule_ids(setup: dict, preset: str) -> dict[str, int]:
    answer = setup["client"].get(f"{RULES}?preset={preset}", headers=setup["staff"])
    assert answer.status_code == 200
    return {rule["pattern"]: rule["id"] for rule in answer.get_json()["items"]}


def test_presets_the_strict_list_is_seeded_once_and_valid(presets_setup):
    from services.moderation import presets, rules

    for seed in presets.STRICT_RULES:
        rules.validate_pattern(seed.kind, seed.pattern)
        assert len(seed.pattern) <= rules.MAX_PATTERN and seed.note
    strict = presets_rule_ids(presets_setup, "strict")
    assert set(strict) == {seed.pattern for seed in presets.STRICT_RULES}
    standard = presets_rule_ids(presets_setup, "standard")
    assert {"csam", "lolicon"} <= set(standard) and not set(standard) & set(strict)
    summary = presets_setup["client"].get(PRESET, headers=presets_setup["staff"]).get_json()
    assert summary["preset"] == "standard" and summary["configured"] == "standard"
    assert [(p["id"], p["applies"], p["rules"]) for p in summary["presets"]] == [
        ("standard", ["standard"], len(standard)), ("strict", ["standard", "strict"], len(strict))]
    # Staff delete a strict rule: a later start (another app on the same database) seeds nothing again.
    client, staff = presets_setup["client"], presets_setup["staff"]
    assert client.delete(f"{RULES}/{strict['ecchi']}", headers=staff).status_code == 204
    with make_app(presets_setup["env"]).app_context():
        presets.ensure_presets()
    assert "ecchi" not in presets_rule_ids(presets_setup, "strict")
    restored = client.post(RULES, json={"kind": "word", "pattern": "ecchi", "preset": "strict"}, headers=staff)
    assert restored.status_code == 201 and restored.get_json()["preset"] == "strict"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_presets_strict_refuses_its_words_in_every_spelling_on_every_route(presets_setup, route, spelling):
    presets_choose(presets_setup, "strict")
    user = presets_setup["user"]
    prompts = [f"a {SPELLINGS[spelling](word)} picture" for word in STRICT_WORDS]
    if spelling in ("plain", "upper"):
        prompts += [SPELLINGS[spelling](phrase) for phrase in STRICT_PHRASES]
    let_through = [(prompt, status) for prompt in prompts
                   if (status := presets_submit(user, route, prompt)) != (422, REFUSED[route])]
    assert let_through == []


def test_presets_standard_lets_the_strict_words_through(presets_setup, make_user):
    presets_choose(presets_setup, "standard")
    prompts = [f"a {spelling(word)} picture" for word in STRICT_WORDS for spelling in SPELLINGS.values()]
    blocked = [(prompt, verdict["rule"]) for prompt in prompts + STRICT_PHRASES
               if (verdict := presets_verdict(presets_setup, prompt, "standard"))["blocked"]]
    assert blocked == []
    # Submitted for real on a standard server: queued (no worker runs it), not refused.
    user = make_user("standard")
    for prompt in ("a nude figure study", "a gory zombie movie poster", "hentai style, a sexy pose"):
        answer = user.submit(prompt=prompt, steps=2)
        assert answer.status_code == 202, (prompt, answer.get_json())


def test_presets_ordinary_prompts_pass_under_strict(presets_setup):
    presets_choose(presets_setup, "strict")
    refused = [(prompt, verdict["matched"]) for prompt in ORDINARY
               if (verdict := presets_verdict(presets_setup, prompt, "strict"))["blocked"]]
    assert refused == []
    user = presets_setup["user"]  # refused until now: nothing of theirs is queued
    for prompt in ("Essex coastline at dawn", "a therapist's office", "a Maine Coon cat"):
        answer = user.submit(prompt=prompt, steps=2)
        assert answer.status_code == 202, (prompt, answer.get_json())


def test_presets_a_pupil_of_a_strict_class_is_held_to_strict_on_a_standard_server(presets_setup, make_user):
    from extensions import db
    from models import ClassMember, SchoolClass
    from services.moderation import presets

    app = presets_setup["app"]
    presets_choose(presets_setup, "standard")
    # A pupil of a strict class (and of one that follows the server), and a teacher of
    # the strict class who is a pupil of a standard one.
    pupil, teacher = make_user("pupil"), make_user("teacher")
    with app.app_context():
        strict_class = SchoolClass(name=unique("Year 7"), moderation_preset="strict")
        inherit_class = SchoolClass(name=unique("Year 8"))  # None: the server's
        standard_class = SchoolClass(name=unique("Art club"), moderation_preset="standard")
        db.session.add_all([strict_class, inherit_class, standard_class])
        db.session.flush()
        for school_class, user, role in ((strict_class, pupil, "pupil"), (inherit_class, pupil, "pupil"),
                                         (strict_class, teacher, "teacher"), (standard_class, teacher, "pupil")):
            db.session.add(ClassMember(class_id=school_class.id, user_id=user_row(app, user.username).id,
                                       role=role))
        db.session.commit()
        ids = [school_class.id for school_class in (strict_class, inherit_class, standard_class)]
    try:
        for route in ROUTES:
            assert presets_submit(pupil, route, "a nude figure study") == (422, REFUSED[route]), route
        refused = pupil.submit(prompt="a g0ry scene").get_json()["error"]
        assert refused["rule"]["pattern"] == "gory" and "strict preset" in refused["message"]
        # A teacher of it (and a pupil of a standard class) is held to the server's standard.
        assert teacher.submit(prompt="a nude figure study", steps=2).status_code == 202
        # On a strict server a class's "standard" does not loosen it: the strictest applies.
        presets_choose(presets_setup, "strict")
        assert presets_submit(teacher, "native", "a nude figure study") == (422, "prompt_blocked")
        with app.app_context():
            assert presets.effective_preset(user_row(app, teacher.username)) == "strict"
            assert presets.effective_preset(None) == "strict"
    finally:
        presets_choose(presets_setup, "standard")
        with app.app_context():
            db.session.execute(sa.delete(SchoolClass).where(SchoolClass.id.in_(ids)))
            db.session.commit()


def test_presets_staff_switch_the_server_and_edit_either_preset(presets_setup, make_user):
    client, staff, app = presets_setup["client"], presets_setup["staff"], presets_setup["app"]
    user = make_user("switch")
    presets_choose(presets_setup, "standard")
    # The page shows the choice; a user who is not staff may not change it.
    browser = app.test_client()
    sign_in(browser, presets_setup["staff_name"], "a staff password")
    html = browser.get("/admin/moderation").get_data(as_text=True)
    assert 'id="preset-form"' in html and "js/pages/admin-moderation-preset.js" in html
    assert re.search(r'value="standard" checked', html) and 'id="rule-preset"' in html
    assert user.client.put(PRESET, json={"preset": "strict"}, headers=user.headers).status_code == 403
    for bad in ({"preset": "lax"}, {}, {"preset": None}):
        answer = client.put(PRESET, json=bad, headers=staff)
        assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "preset", bad
    assert client.get(f"{RULES}?preset=lax", headers=staff).status_code == 422

    presets_choose(presets_setup, "strict")
    assert re.search(r'value="strict" checked', browser.get("/admin/moderation").get_data(as_text=True))
    assert user.submit(prompt="hentai style").status_code == 422
    audit = client.get("/api/v1/admin/audit?action=moderation.preset&limit=5", headers=staff).get_json()["items"]
    assert audit[0]["details"] == {"preset": ["standard", "strict"]}

    # A rule added to strict applies under strict only; a strict rule disabled stops refusing.
    word = unique("zorbstrict")
    rule = client.post(RULES, json={"kind": "word", "pattern": word, "preset": "strict"}, headers=staff).get_json()
    assert rule["preset"] == "strict" and word in presets_rule_ids(presets_setup, "strict")
    hentai = presets_rule_ids(presets_setup, "strict")["hentai"]
    try:
        assert user.submit(prompt=f"a {word} tower").get_json()["error"]["rule"]["id"] == rule["id"]
        assert client.patch(f"{RULES}/{hentai}", json={"enabled": False}, headers=staff).status_code == 200
        assert user.submit(prompt="hentai style", steps=2).status_code == 202
        presets_choose(presets_setup, "standard")
        assert not presets_verdict(presets_setup, f"a {word} tower", "standard")["blocked"]
        assert client.post(f"{RULES}/test", json={"prompt": f"a {word} tower"},
                           headers=staff).get_json()["preset"] == "standard"  # the server's by default
        # Moved to standard, it applies under both.
        moved = client.patch(f"{RULES}/{rule['id']}", json={"preset": "standard"}, headers=staff)
        assert moved.status_code == 200 and moved.get_json()["preset"] == "standard"
        assert presets_verdict(presets_setup, f"a {word} tower", "standard")["blocked"]
        bad = client.patch(f"{RULES}/{rule['id']}", json={"preset": "lax"}, headers=staff)
        assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "preset"
    finally:
        client.patch(f"{RULES}/{hentai}", json={"enabled": True}, headers=staff)
        client.delete(f"{RULES}/{rule['id']}", headers=staff)
        presets_choose(presets_setup, "standard")


def test_presets_a_new_install_takes_the_setting_and_setup_asks_if_it_is_a_school(fresh):
    from config import moderation_preset
    from services.moderation import presets

    with pytest.raises(ValueError, match="DAYDREAM_MODERATION_PRESET"):
        moderation_preset("lax")
    for configured, answer, expected in (("standard", "yes", "strict"), ("strict", "no", "standard")):
        app = fresh(DAYDREAM_MODERATION_PRESET=configured)
        client = app.test_client()
        with app.app_context():  # the server's preset, what a submit is held to by default
            assert presets.server_preset() == presets.effective_preset(None) == configured
        printed = app.test_cli_runner().invoke(args=["setup-link"])
        token = re.search(r"/setup/(\S+)", printed.output).group(1)
        page = client.get(f"/setup/{token}")
        html = page.get_data(as_text=True)
        assert "Is Daydream for a school?" in html
        assert re.search(r'value="(yes|no)" checked', html).group(1) == ("yes" if configured == "strict" else "no")
        made = client.post(f"/setup/{token}", data={"username": unique("root"), "email": f"{unique('r')}@example.com",
                                                    "password": "the first staff password", "school": answer,
                                                    "csrf_token": csrf_from(page.data)})
        assert made.status_code == 302, made.data[:300]
        summary = client.get(PRESET).get_json()  # signed in as the new staff account
        assert (summary["preset"], summary["configured"]) == (expected, configured)
        audit = client.get("/api/v1/admin/audit?action=moderation.preset").get_json()["items"]
        assert audit[0]["details"] == {"preset": [configured, expected]} and audit[0]["reason"] == "first-run setup"
