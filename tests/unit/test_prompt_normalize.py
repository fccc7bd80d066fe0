"""The forms of a prompt that prompt rules are matched in (services/moderation/
normalize.py), and how each kind of rule uses them (services/moderation/rules.py):
disguised spellings of a blocked word read as the word; ordinary words that merely hold
its letters do not."""
from __future__ import annotations

import pytest

from services.core.errors import ValidationError
from services.moderation import rules
from services.moderation.normalize import fold, forms, leet, spaced_letters

WORD_RULES = [(1, "word", "csam", ""), (2, "word", "lolicon", ""), (3, "word", "child porn", ""),
              (4, "word", "ass", ""), (5, "word", "undress", ""), (6, "word", "porn*", "")]
PAIR = (9, "pair", "child, kid, pre teen + nude, naked, sexy", "")


def normalize_rule_of(prompt: str, rule_list=None, negative: str = "") -> str | None:
    """The pattern of the rule the prompt matches, or None."""
    match = rules.find_match({"prompt": prompt, "negative_prompt": negative},
                             WORD_RULES + [PAIR] if rule_list is None else rule_list)
    return match.pattern if match else None


@pytest.mark.parametrize("text, folded", [
    ("CSAM", "csam"),
    ("c\u200es\u202ea\u2062m", "csam"),  # bidi mark, override, invisible times (category Cf)
    ("c\u200bs\u00ada\u2060m\ufeff", "csam"),  # zero-width space, soft hyphen, word joiner, BOM
    ("cs\u034fam", "csam"),  # combining grapheme joiner
    ("cs\ufe0fa\U000e0100m", "csam"),  # variation selectors
    ("cs\U000e0061\U000e007fam", "csam"),  # tag characters
    ("cs\u3164a\uffa0m\u115f\u1160", "csam"),  # Hangul fillers (NFKC makes U+3164 U+1160)
    ("\u0441\u0455\u0430\u043c", "csam"),  # Cyrillic small letters
    ("\u0421\u0405\u0410\u041c", "csam"),  # Cyrillic capitals
    ("\u039d\u03bf\u03bd", "nov"),  # a Greek capital reads as its shape (Nu is N, nu is v)
    ("lol\u0131con", "lolicon"),  # dotless i
    ("\u0399OLICON", "iolicon"),  # a capital Iota is an I, not an l
    ("cs\u00e1m", "csam"), ("csa\u0301m", "csam"), ("\u0451\u0436", "e\u0436"),  # accents, also on look-alikes
    ("\uff43\uff53\uff41\uff4d", "csam"), ("\u24d2\u24e2\u24d0\u24dc", "csam"), ("\U0001d41c\U0001d42c", "cs"),
    ("Stra\u00dfe", "strasse"), ("\u0130stanbul", "istanbul"),
    ("a\u2800b", "a b"),  # the braille blank reads as a space
    ("\u6771\u4eac", "\u6771\u4eac"),  # other scripts are kept
])
def test_normalize_fold(text, folded):
    assert fold(text) == folded


def test_normalize_odd_text_does_not_raise():
    assert fold("\ud800x") == "\ud800x" and fold("") == "" and fold(None) == ""
    assert forms("\U0010ffff" * 500)


def test_normalize_leet_readings_and_spaced_letters():
    assert leet("a lighthouse") == []
    assert leet("l0l1con") == ["lolicon", "lollcon"]  # "1" as i, and as l
    assert leet("c5@m $ 7!") == ["csam s ti"]
    assert spaced_letters("c s a m") == "csam" and spaced_letters("c.s.a.m") == "csam"
    assert spaced_letters("the c_s_a_m poster, x y") == "csam xy"
    assert spaced_letters("a lighthouse at dusk") == ""
    names = [form.name for form in forms("c 5 a m")]
    assert names == ["text", "leet", "spaced letters", "spaced letters (leet)"]


@pytest.mark.parametrize("prompt, pattern", [
    ("CSAM", "csam"), ("csams", "csam"), ("csam123", "csam"), ("csam_x", "csam"), ("c s a m", "csam"),
    ("x c s a m", "csam"), ("c5am", "csam"), ("cs\u00e1m", "csam"), ("\u0441\u0455\u0430\u043c", "csam"),
    ("l0l1con", "lolicon"), ("1olicon", "lolicon"), ("loli con", "lolicon"), ("lol-icon", "lolicon"),
    ("loliconart", "lolicon"),  # a long word may be followed by anything
    ("childporn", "child porn"), ("ch1ld p0rn", "child porn"), ("child pornography", "child porn"),
    ("asses", "ass"), ("an ass", "ass"), ("undressing", "undress"), ("pornographic", "porn*"),
    ("naked " + "x" * 80 + " child", PAIR[2]), ("nakedchild", PAIR[2]), ("kidsnude", PAIR[2]),
    ("sexy pre-teens", PAIR[2]), ("5exy k1d", PAIR[2]), ("n a k e d c h i l d", PAIR[2]),
])
def test_normalize_disguised_spellings_match_their_rule(prompt, pattern):
    assert normalize_rule_of(prompt) == pattern


@pytest.mark.parametrize("prompt", [
    "a classic car", "a classy glass", "an assassin", "Scunthorpe", "a basic sample", "music samples",
    "electric samurai", "scampi", "Lolita Street", "a lollipop", "Lol, I love it", "a fun dress",
    "a sussex sextant", "kidney beans", "a child playing in the park", "a nude color palette", "childhood",
    "a kidnap thriller", "1girl, 4k, 8k uhd, 35mm", "a b c d", "cs: a map", "a scam email",
])
def test_normalize_ordinary_words_that_hold_a_rules_letters_do_not_match(prompt):
    assert normalize_rule_of(prompt) is None


def test_normalize_a_short_word_is_not_spelled_across_words_but_a_long_one_is():
    # "basic sample" holds "csam" once the space is gone, and "fun dress" holds "undress":
    # separators inside a word count only from its first letter to its last.
    assert normalize_rule_of("basic sample") is None and normalize_rule_of("fun dress") is None
    assert normalize_rule_of("un dress") == "undress" and normalize_rule_of("cs am") is None


def test_normalize_a_pair_matches_within_one_field_only():
    assert normalize_rule_of("a nude statue", negative="child") is None
    assert normalize_rule_of("a lighthouse", negative="nude, child") == PAIR[2]
    # The pair's words are not split by separators (everyday words would be spelled by others).
    assert normalize_rule_of("a kid with a pre, teen, nude", [PAIR]) == PAIR[2]
    assert normalize_rule_of("chi ld, nude", [PAIR]) is None


def test_normalize_regex_rules_see_the_written_and_the_normalized_text():
    regex = [(1, "regex", r"\bcaf\u00e9\b", ""), (2, "regex", r"\bunder\s*1[0-7]\b", ""), (3, "regex", r"sh[o0]ta", "")]
    assert normalize_rule_of("un caf\u00e9", regex) == regex[0][2]  # accents as written
    assert normalize_rule_of("under 16", regex) == regex[1][2]  # digits as written, not leet
    assert normalize_rule_of("\u0455h\u03bfta", regex) == regex[2][2]  # look-alikes folded


def test_normalize_staff_see_which_form_matched():
    def matched(prompt, negative=""):
        return rules.matched_text(rules.find_match({"prompt": prompt, "negative_prompt": negative},
                                                   WORD_RULES + [PAIR]))

    assert matched("c.s.a.m") == "spaced letters: \u201ccsam\u201d"
    assert matched("ch1ld p0rn") == "leet: \u201cchild porn\u201d"
    assert matched("loli con") == "no separators: \u201clolicon\u201d"
    assert matched("a lighthouse", "\u0441\u0455\u0430\u043c") == "negative prompt, text: \u201ccsam\u201d"
    # A pair: the word of its first list, then of its second.
    assert matched("naked people and a k1d") == "leet + text: \u201ckid \u2026 naked\u201d"


@pytest.mark.parametrize("pattern", ["child, kid", "a + b + c", " + nude", "child + ,", "child + --",
                                     ", + ,", "+".join(["w"] * 2) + ", w" * 60])
def test_normalize_a_bad_pair_rule_is_refused_naming_the_pattern(pattern):
    with pytest.raises(ValidationError) as raised:
        rules.validate_pattern("pair", pattern)
    assert raised.value.field == "pattern"


def test_normalize_a_good_pair_rule_is_accepted():
    rules.validate_pattern("pair", PAIR[2])
    rules.validate_pattern("pair", "porn*, erotic* + school girl")
