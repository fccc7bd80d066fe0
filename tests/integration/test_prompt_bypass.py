"""Prompt rules against the ways round them (services/moderation/normalize.py): hidden
characters, look-alike letters of other scripts, accents, spacing and punctuation
inside a word, leet, suffixes, joined phrases and the two words of a pair far apart
are all refused, on the JSON API, A1111's txt2img and OpenAI's generations alike, at
submit (before any worker runs), with the rule named; staff see which normalized form
matched. Ordinary prompts that merely hold a rule's letters still go through.

The module installs the starter list (what a migrated database starts with) on the
shared stack and takes it away after."""
from __future__ import annotations

import pytest

from tests.helpers import unique
from tests.integration.helpers import ApiUser, make_staff, starter_prompt_rules

RULES = "/api/v1/admin/moderation/rules"

# (spelling, the rule that refuses it): "csam", "lolicon", "child porn" are word rules;
# "pair" is the starter pair rule (a minor's word and a sexual word).
BYPASSES = [
    # invisible characters
    ("cs\u200eam", "csam"), ("cs\u202eam", "csam"), ("cs\u2062am", "csam"), ("cs\u034fam", "csam"),
    ("csa\ufe0fm", "csam"), ("cs\U000e0061am", "csam"), ("cs\u3164am", "csam"), ("c\u200bs\u00ada\u2060m", "csam"),
    ("csa\U000e0100m", "csam"),
    # look-alikes of other scripts, dotless i
    ("\u0441\u0455\u0430\u043c", "csam"), ("\u0421\u0405\u0410\u041c", "csam"),
    ("l\u03bfl\u0456c\u03bfn", "lolicon"), ("lol\u0131con", "lolicon"), ("\u24d2\u24e2\u24d0\u24dc", "csam"),
    ("\uff43\uff53\uff41\uff4d", "csam"),
    # accents, precomposed and combining
    ("cs\u00e1m", "csam"), ("csa\u0301m", "csam"), ("l\u00f6l\u00efc\u00f6n", "lolicon"),
    # spacing or punctuation inside a word
    ("c s a m", "csam"), ("c-s-a-m", "csam"), ("c.s.a.m", "csam"), ("c_s_a_m", "csam"), ("C * S * A * M", "csam"),
    ("l o l i c o n", "lolicon"), ("loli con", "lolicon"), ("lol-icon", "lolicon"),
    # leet
    ("c5am", "csam"), ("l0l1con", "lolicon"), ("ch1ld p0rn", "child porn"), ("c$@m", "csam"), ("1olicon", "lolicon"),
    ("c 5 4 m", "csam"),
    # suffixes
    ("csams", "csam"), ("csam123", "csam"), ("csam_2024", "csam"), ("lolicons", "lolicon"),
    # joined phrases, either order for a pair
    ("childporn", "child porn"), ("Child-Porn", "child porn"), ("nakedchild", "pair"), ("kidsnude", "pair"),
    # two words of a pair far apart (the old rule looked at most 40 characters on)
    ("a naked statue in the hall, " + "tall windows and soft light, " * 3 + "a child nearby", "pair"),
    ("a child on the beach; " + "waves, gulls, a red kite and a lighthouse far away; " * 2 + "nude", "pair"),
    ("n4k3d k1ds", "pair"), ("5exy t0ddler", "pair"),
]
ROUTES = ["native", "a1111", "openai"]

# Ordinary prompts: they hold a rule's letters, or one word of a pair, and must go through.
ORDINARY = [
    "a classic car at sunset", "scampi on a plate", "Lolita Street in the rain", "a classy glass",
    "an assassin on a rooftop", "Scunthorpe town centre", "a child playing in the park", "a nude color palette",
    "children playing in a park", "a school bus", "a minor chord", "a basic sample of paint",
    "music samples on a desk", "electric samurai", "classic samba dancers", "physics amplifier",
    "portrait of Carlo Linares", "Sussex countryside", "an old sextant", "kidney beans in a bowl",
    "infantry seen with the naked eye", "a fun dress with flowers", "mother and child, oil painting",
    "nude lipstick on a vanity table", "1girl, solo, 4k, masterpiece, best quality", "5 a.m. sunrise over the sea",
    "a 1990s photo", "a 3d render of a robot", "vitamin c tablets", "a lollipop", "a lolipop", "Lol, I love this style",
    "lo-fi hip hop girl studying", "a cat with a hat, 8k uhd, 35mm, f/1.8", "a CSA farm box", "a scam email illustration",
    "a toddler's toy box", "a sexy sports car", "infant formula advertisement", "school girl uniform design, anime",
    "besties at the beach", "a shotgun on a table", "the bestial roar of a lion", "a necropolis at night",
    "zoo animals", "a kiddie pool in the garden", "an old therapist's office", "Essex coastline", "c3po and r2d2",
    "a b c d e f", "u s a flag", "Москва at night", "\u039c\u03bf\u03c3\u03c7\u03ac\u03c4\u03bf beach", "\u6771\u4eac\u306e\u591c\u666f",
    "Stra\u00dfe in Berlin", "caf\u00e9 in Paris", "a child-friendly cartoon", "a nudibranch underwater",
    "the naked truth, poster", "kid icarus fan art", "childhood memories, sepia", "top-less tree",
]


@pytest.fixture(scope="module")
def bypass_setup(stack):
    """Staff, the starter rules installed (taken away after), and one user who submits."""
    client = stack.test_client()
    staff = make_staff(stack, unique("bypassboss"))
    added = []
    for _n, kind, pattern, note in starter_prompt_rules():
        answer = client.post(RULES, json={"kind": kind, "pattern": pattern, "note": note}, headers=staff)
        assert answer.status_code == 201, answer.get_json()
        added.append(answer.get_json())
    user = ApiUser(client, unique("bypasser"))
    yield {"client": client, "staff": staff, "user": user, "tokens": user.me()["tokens"],
           "rules": {rule["pattern"]: rule for rule in added}}
    for rule in added:
        client.delete(f"{RULES}/{rule['id']}", headers=staff)


def bypass_submit(user: ApiUser, route: str, prompt: str):
    """(status, the rule refused with or None) of one submit on a route."""
    if route == "native":
        answer = user.submit(prompt=prompt, steps=2)
        return answer.status_code, (answer.get_json()["error"].get("rule") or {}).get("pattern") \
            if answer.status_code == 422 else None
    if route == "a1111":
        answer = user.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2, "width": 64, "height": 64})
        body = answer.get_json()
        return answer.status_code, body["detail"] if answer.status_code == 422 else None
    answer = user.post("/v1/images/generations", json={"prompt": prompt, "size": "64x64"})
    error = answer.get_json().get("error") or {}
    return answer.status_code, error.get("message") if answer.status_code == 422 else None


def bypass_rule_pattern(setup: dict, expected: str) -> str:
    if expected == "pair":
        return next(pattern for pattern, rule in setup["rules"].items() if rule["kind"] == "pair")
    return expected


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("prompt, expected", BYPASSES, ids=[ascii(p)[1:31] for p, _e in BYPASSES])
def test_bypass_a_disguised_blocked_word_is_refused_at_submit(bypass_setup, route, prompt, expected):
    status, refused_by = bypass_submit(bypass_setup["user"], route, prompt)
    assert status == 422, (route, prompt, status)
    pattern = bypass_rule_pattern(bypass_setup, expected)
    # The native API names the rule; A1111 and OpenAI carry it in their message.
    assert refused_by == pattern if route == "native" else pattern in refused_by, (route, refused_by)


def test_bypass_the_negative_prompt_is_checked_the_same_way(bypass_setup):
    answer = bypass_setup["user"].submit(prompt="a lighthouse", negative_prompt="blurry, c.s.a.m")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == "negative_prompt"


def test_bypass_nothing_was_charged_and_no_task_was_made(bypass_setup):
    """Runs after the refusals above (file order): every one was refused before a task."""
    user = bypass_setup["user"]
    assert user.get("/api/v1/tasks").get_json()["total"] == 0
    assert user.me()["tokens"] == bypass_setup["tokens"]


@pytest.mark.parametrize("prompt", ORDINARY)
def test_bypass_an_ordinary_prompt_is_not_refused(bypass_setup, prompt):
    answer = bypass_setup["client"].post(f"{RULES}/test", json={"prompt": prompt, "negative_prompt": prompt},
                                         headers=bypass_setup["staff"])
    assert answer.status_code == 200
    assert answer.get_json()["blocked"] is False, answer.get_json()


def test_bypass_ordinary_prompts_go_through_on_every_route(bypass_setup, make_user):
    """A few of the ordinary prompts submitted for real: the JSON API queues them, A1111
    and OpenAI answer with the picture."""
    user = make_user("ordinary")
    for prompt in ("a classic car at sunset", "a child playing in the park", "a nude color palette"):
        answer = user.submit(prompt=prompt, steps=2)
        assert answer.status_code == 202, (prompt, answer.get_json())
    user = make_user("ordinary")  # another: the first has as many tasks waiting as allowed
    answer = user.post("/sdapi/v1/txt2img", json={"prompt": "scampi on a plate, 4k", "steps": 2,
                                                  "width": 64, "height": 64})
    assert answer.status_code == 200 and len(answer.get_json()["images"]) == 1, answer.get_json()
    answer = user.post("/v1/images/generations", json={"prompt": "Lolita Street in the rain", "size": "64x64"})
    assert answer.status_code == 200 and len(answer.get_json()["data"]) == 1, answer.get_json()


def test_bypass_staff_see_which_normalized_form_matched(bypass_setup):
    client, staff, user = bypass_setup["client"], bypass_setup["staff"], bypass_setup["user"]
    tried = client.post(f"{RULES}/test", json={"prompt": "the c.s.a.m poster"}, headers=staff).get_json()
    assert tried["blocked"] and tried["matched"] == "spaced letters: \u201ccsam\u201d"
    assert user.submit(prompt="ch1ld p0rn").status_code == 422
    assert user.submit(prompt="an old photo", negative_prompt="\u0441\u0455\u0430\u043c").status_code == 422
    items = client.get(f"/api/v1/admin/moderation/blocked?user={user.data['id']}&limit=2",
                       headers=staff).get_json()["items"]
    assert [(row["rule"], row["matched"], row["prompt"]) for row in items] == [
        ("csam", "negative prompt, text: \u201ccsam\u201d", "an old photo\n[negative] \u0441\u0455\u0430\u043c"),
        ("child porn", "leet: \u201cchild porn\u201d", "ch1ld p0rn"),
    ]
