"""The forms of a prompt that the prompt rules (services/moderation/rules.py) are matched
against, so that look-alike, hidden, accented, spaced-out and leet spellings of a
blocked word match as the word itself.

fold(text), the "text" form, in this order:
- NFKC (full-width, mathematical, circled and superscript letters become plain ones,
  ligatures come apart);
- letters of other scripts that look like Latin ones (Cyrillic "с", Greek "ο", dotless
  "ı") become those Latin letters, from the Unicode confusables data (the
  confusable-homoglyphs package), before case folding so that a capital reads as its
  shape (Greek "Ν" is "n", "ν" is "v"); ASCII is left as it is;
- case folding ("ß" is "ss");
- every format character (Unicode category Cf: zero-width spaces and joiners, bidi
  marks and overrides, invisible operators, tag characters, soft hyphens), variation
  selectors, the combining grapheme joiner and the Hangul fillers are taken out;
- accents come off (NFD, combining marks dropped), so "csám" is "csam" whether the
  accent is precomposed or combining; then look-alikes once more (an accent may have
  hidden one, as in Cyrillic "ё").

Derived forms (forms()):
- "leet": digits and symbols that stand for letters read as those letters (0→o, 1→i,
  3→e, 4→a, 5→s, 7→t, 8→b, @→a, $→s, !→i, |→l, €→e); "1" also read as "l";
- "spaced letters": runs of single letters or digits set apart by separators ("c s a m",
  "c.s.a.m", "c_s_a_m"), each run written as one word.
How each rule kind uses them is in rules.py.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from confusable_homoglyphs.confusables import confusables_data

# Taken out before matching besides category Cf: variation selectors (also U+E0100..
# U+E01EF), the combining grapheme joiner, the Hangul fillers (which render as blanks;
# NFKC turns U+3164 and U+FFA0 into U+1160), the Khmer inherent vowels. (The braille
# blank, drawn as a space, is read as one.)
_IGNORED = frozenset([0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x17B4, 0x17B5,
                      *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), *range(0xE0000, 0xE0080),
                      *range(0x180B, 0x1810)])

LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                      "@": "a", "$": "s", "!": "i", "|": "l", "\u20ac": "e"})
LEET_ONE_AS_L = str.maketrans({"1": "l"})
WORD = re.compile(r"[^\W_]+")  # a word: letters and digits (rules.py reads words the same way)


def _ignored(ch: str) -> bool:
    return ord(ch) in _IGNORED or unicodedata.category(ch) == "Cf"


@functools.lru_cache(maxsize=1)
def _latin() -> dict[int, str]:
    """Each non-ASCII character that the confusables data says looks like one ASCII
    letter, to that letter, case kept (Greek "Ν" is "N", "ν" is "v"). A character without
    an entry of its own takes its capital's ("м" is listed as nothing, "М" as "M")."""
    def target(char: str) -> str | None:
        return next((glyph["c"] for glyph in confusables_data.get(char, ())
                     if len(glyph["c"]) == 1 and glyph["c"].isascii() and glyph["c"].isalpha()), None)

    table: dict[int, str] = {}
    for char in confusables_data:
        if len(char) == 1 and not char.isascii():
            found = target(char) or (target(char.upper()) if len(char.upper()) == 1 else None)
            if found == "l" and char.isupper():
                found = "I"  # the data's one shape for "I" and "l" is "l"; a capital is an I
            if found:
                table[ord(char)] = found
    for code, found in list(table.items()):  # small letters whose capital alone is listed
        lower = chr(code).lower()
        if len(lower) == 1 and not lower.isascii() and ord(lower) not in table and target(lower) is None:
            table[ord(lower)] = found.lower()
    table[ord("\u0131")] = "i"  # dotless i
    return table


try:  # one pass of a compiled class instead of a look-up per character
    import regex as _regex

    _STRIPPED = _regex.compile(r"[\p{Cf}\p{Mn}\p{Me}\u115f\u1160\u3164\uffa0\u17b4\u17b5\U000e0000-\U000e007f]")
except ImportError:  # pragma: no cover - the regex package is a dependency
    _STRIPPED = None


def _strip(text: str) -> str:
    """Invisible characters and combining marks (accents) out."""
    text = unicodedata.normalize("NFD", text)
    if _STRIPPED is not None:
        text = _STRIPPED.sub("", text)
    else:  # pragma: no cover
        text = "".join(ch for ch in text if not _ignored(ch) and unicodedata.category(ch) not in ("Mn", "Me"))
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """The "text" form: NFKC, look-alikes as Latin, case folded, invisible characters and
    accents out (then look-alikes again: an accent may have hidden one, as in "ё")."""
    text = text or ""
    if text.isascii():
        return text.lower()  # all the steps come to this for ASCII
    text = unicodedata.normalize("NFKC", text.replace("\u2800", " "))
    text = _strip(text.translate(_latin()).casefold())
    return text.translate(_latin()).casefold()


def leet(folded: str) -> list[str]:
    """The leet readings of a folded text: none when it has nothing to read; "1" as "i",
    and also as "l"."""
    readings = []
    for text in (folded.translate(LEET), folded.translate(LEET_ONE_AS_L).translate(LEET)):
        if text != folded and text not in readings:
            readings.append(text)
    return readings


def spaced_letters(text: str) -> str:
    """The runs of single letters or digits set apart by separators, each run as one
    word ("a c s a m b" -> "acsamb"); runs are joined by spaces. Empty when there is none."""
    runs, run = [], []
    for token in WORD.findall(text):
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) > 1:
            runs.append("".join(run))
        run = []
    if len(run) > 1:
        runs.append("".join(run))
    return " ".join(runs)


@dataclass(frozen=True)
class Form:
    """One reading of a prompt: `name` says which (shown to staff), `spaced` that it is
    made of spaced-out letters (matched by substring, not by whole words)."""

    name: str
    text: str
    spaced: bool = False


def forms(text: str) -> list[Form]:
    """The readings of a prompt the rules look at: the folded text first, then its leet
    readings, then the spaced-out letters of each."""
    folded = fold(text)
    bases = [Form("text", folded)] + [Form("leet", reading) for reading in leet(folded)]
    found = list(bases)
    for base in bases:
        spaced = spaced_letters(base.text)
        if spaced:
            name = "spaced letters" if base.name == "text" else f"spaced letters ({base.name})"
            found.append(Form(name, spaced, spaced=True))
    return found
