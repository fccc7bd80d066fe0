"""Prompt rules: the blocked words and patterns staff keep on Admin → Moderation. A
prompt or negative prompt that matches an enabled rule is refused at submit
(tasks.submit_task calls check_prompt before anything is charged): PromptBlocked, a
422 that names the rule and the field, and a BlockedPrompt row for the user.

- "word": a word or phrase, matched whole (word boundaries, so "class" does not match
  "ass"), in any case; the words of a phrase may be separated by any spaces or
  punctuation, or by none ("child porn" matches "Child-porn" and "childporn"). A
  plural or a number may follow ("csams", "csam123"); a word that ends in "*" may be
  followed by anything ("porn*" matches "pornographic").
- "pair": two comma-separated lists of words or phrases joined by "+", such as
  "child, kid + nude, naked": a prompt (or negative prompt) that holds a word of each
  list, anywhere in it, or both run together ("nakedchild"), matches. Each word is
  matched as a word rule's is.
- "regex": a regular expression, case-insensitive, checked when it is saved (a bad
  one is a 422 naming `pattern`). Patterns are at most MAX_PATTERN characters and run
  with a time limit (the `regex` package's timeout when it is installed; without it,
  Python's `re` and nested quantifiers refused at save). A prompt whose check runs out
  of time is refused, not let through.

Prompts and word patterns are compared in normalized forms (services/moderation/
normalize.py): NFKC, look-alike letters of other scripts as Latin, case folded,
invisible characters out, accents off ("text"); digits and symbols read as letters
("leet": "ch1ld p0rn", "c5am"); runs of spaced-out single letters as one word ("spaced
letters": "c s a m", "c.s.a.m"). Word and pair rules are matched in each form (by whole
words in "text" and "leet", by substring inside a run of "spaced letters"); a word
rule of at least LONG_TERM letters also matches with separators anywhere inside it, as
long as it starts and ends on a word's edge ("loli con", "shota-con"), and anything
may follow it ("necrophiliac"): shorter ones do not, as ordinary words next to each
other spell them too ("basic sample" holds "csam"). Regular expressions are matched
against the prompt as written (NFKC, invisible characters out), "text" and "leet".
Which form matched, and what it read there, is kept with the refused attempt and
shown to staff.

Each rule belongs to a preset (presets.py): a prompt is matched against the rules of
its user's effective preset ("strict" applies standard's rules and its own).

Rules are read from the database at every check (one small query), so an edit applies
at once to every web process, without a restart or a cache to invalidate."""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa

from extensions import db
from models import BlockedPrompt, PromptRule, User, iso
from services.core.errors import NotFound, ServiceError, ValidationError
from services.moderation import presets
from services.moderation.normalize import WORD, Form, fold, forms

try:  # the `regex` package has a match timeout; Python's re has none
    import regex as _regex
except ImportError:  # pragma: no cover - depends on the environment
    _regex = None

log = logging.getLogger(__name__)

KINDS = ("word", "pair", "regex")
MAX_PATTERN = 200
MAX_NOTE = 255
MATCH_TIMEOUT_S = 0.05  # per rule and field
FIELDS = ("prompt", "negative_prompt")
FIELD_LABELS = {"prompt": "prompt", "negative_prompt": "negative prompt"}
LONG_TERM = 7  # letters: a word rule this long also matches with separators inside it
MAX_TERMS = 60  # words in the lists of a pair rule
MATCHED_MARK = "\n[matched] "  # ends the stored prompt of a refused attempt: what matched, where
# After a word: a plural, or a number ("csams", "csam123").
_SUFFIX = r"(?:e?s|\d+)?"
_START, _END = r"(?<![^\W_])", r"(?![^\W_])"  # not inside a word (letters and digits; "_" separates)
# Without the regex package's timeout: a quantified group that holds a quantifier,
# such as (a+)+ or (\w*\s?)*, is what backtracks catastrophically; refused at save.
NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d*,)")


class PromptBlocked(ServiceError):
    """422 prompt_blocked: the prompt (or negative prompt, `field`) matches a rule."""

    status = 422
    code = "prompt_blocked"

    def __init__(self, message: str, *, field: str, rule: dict):
        super().__init__(message, field=field)
        self.rule = rule

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["fields"] = {self.field: self.message}
        body["error"]["rule"] = self.rule
        return body


class Timeout(Exception):
    pass


def _compile_regex(source: str):
    engine = _regex if _regex is not None else re
    flags = engine.IGNORECASE | engine.UNICODE
    if _regex is not None:
        flags |= _regex.V0
    return engine.compile(source, flags)


def _find(compiled, text: str):
    """compiled.search(text), within the time limit (Timeout past it)."""
    if _regex is not None:
        try:
            return compiled.search(text, timeout=MATCH_TIMEOUT_S)
        except TimeoutError as exc:
            raise Timeout() from exc
    return compiled.search(text)


@dataclass(frozen=True)
class Hit:
    """Where a rule matched: the form's name and what it read there."""

    form: str
    text: str

    def __str__(self) -> str:
        return f"{self.form}: \u201c{self.text}\u201d"



def _words(term: str) -> tuple[list[str], bool]:
    """The folded words of a word rule (or of one term of a pair), and whether it ends
    in "*" (anything may follow)."""
    return WORD.findall(fold(term)), term.rstrip().endswith("*")


class Terms:
    """Words or phrases (one for a word rule, a list for a side of a pair), matched in
    the forms of a prompt as the module's docstring says."""

    def __init__(self, terms: list[str], *, long_rules: bool = True):
        whole, split, self.cores, self.joined = [], [], [], []
        for term in terms:
            words, wild = _words(term)
            if not words:
                raise ValueError(f"{term!r} has no letter or digit")
            joined = "".join(words)
            long = long_rules and len(joined) >= LONG_TERM
            # A long word rule may be followed by anything, as one ending in "*" ("necrophiliac").
            tail = r"[^\W_]*" if wild or long else _SUFFIX
            core = r"[\W_]*".join(map(re.escape, words))  # the words, with or without separators
            whole.append(core + tail)
            if long:  # separators may also split its letters ("loli con"), from its first to its last
                split.append(r"[\W_]*".join(map(re.escape, joined)) + tail)
            self.cores.append(core)
            self.joined.append(joined)
        self.whole = _compile_regex(_START + "(?:" + "|".join(whole) + ")" + _END)
        self.split = _compile_regex(_START + "(?:" + "|".join(split) + ")" + _END) if split else None

    def find(self, readings: list[Form]) -> Hit | None:
        for form in readings:
            if form.spaced:
                for joined in self.joined:
                    at = form.text.find(joined)
                    if at >= 0:
                        return Hit(form.name, _around(form.text, at, at + len(joined)))
                continue
            found = _find(self.whole, form.text)
            if found:
                return Hit(form.name, found.group(0))
        if self.split is not None:
            for form in readings:
                found = None if form.spaced else _find(self.split, form.text)
                if found:
                    name = "no separators" + ("" if form.name == "text" else f" ({form.name})")
                    return Hit(name, "".join(WORD.findall(found.group(0))))
        return None


def _around(text: str, start: int, end: int, margin: int = 12) -> str:
    return text[max(0, start - margin):end + margin].strip()


def pair_sides(pattern: str) -> tuple[list[str], list[str]]:
    """The two lists of a pair rule ("a, b + c, d"): ValidationError naming `pattern`
    when it is not two lists of words."""
    sides = pattern.split("+")
    if len(sides) != 2:
        raise ValidationError("pattern", "must be two comma-separated lists of words joined by one \u201c+\u201d, "
                                         "such as \u201cchild, kid + nude, naked\u201d")
    lists = []
    for side in sides:
        terms = [term.strip() for term in side.split(",") if term.strip()]
        if not terms:
            raise ValidationError("pattern", "needs at least one word on each side of the \u201c+\u201d")
        for term in terms:
            if not _words(term)[0]:
                raise ValidationError("pattern", f"has a word without a letter or digit: \u201c{term}\u201d")
        lists.append(terms)
    if len(lists[0]) + len(lists[1]) > MAX_TERMS:
        raise ValidationError("pattern", f"has more than {MAX_TERMS} words")
    return lists[0], lists[1]


class WordRule:
    def __init__(self, pattern: str):
        self.terms = Terms([pattern])

    def find(self, readings: list[Form], as_written: str) -> Hit | None:
        return self.terms.find(readings)


class PairRule:
    """A word of each list anywhere in the text, or two run together ("nakedchild").
    Their letters are not split by separators: lists of everyday words would match
    ordinary phrases ("top, less" and "fun dress" hold "topless" and "undress")."""

    def __init__(self, pattern: str):
        self.sides = [Terms(side, long_rules=False) for side in pair_sides(pattern)]
        one, two = ("|".join(side.cores) for side in self.sides)
        self.together = _compile_regex(_START + rf"(?:(?:{one}){_SUFFIX}(?:{two})|(?:{two}){_SUFFIX}(?:{one}))"
                                       + _SUFFIX + _END)

    def find(self, readings: list[Form], as_written: str) -> Hit | None:
        first = self.sides[0].find(readings)
        second = self.sides[1].find(readings) if first else None
        if first and second:
            form = first.form if first.form == second.form else f"{first.form} + {second.form}"
            return Hit(form, f"{first.text} \u2026 {second.text}")
        for form in readings:
            found = None if form.spaced else _find(self.together, form.text)
            if found:
                return Hit(form.name, found.group(0))
        return None


class RegexRule:
    def __init__(self, pattern: str):
        self.compiled = _compile_regex(pattern)

    def find(self, readings: list[Form], as_written: str) -> Hit | None:
        for name, text in [("as written", as_written)] + [(form.name, form.text) for form in readings
                                                           if not form.spaced]:
            found = _find(self.compiled, text)
            if found:
                return Hit(name, found.group(0)[:80])
        return None


_KIND_CLASSES = {"word": WordRule, "pair": PairRule, "regex": RegexRule}
_compiled: dict[tuple[str, str], object] = {}
_compiled_lock = threading.Lock()


def _compile(kind: str, pattern: str):
    """The compiled rule (kept per (kind, pattern): compiling is what costs)."""
    key = (kind, pattern)
    found = _compiled.get(key)
    if found is not None:
        return found
    compiled = _KIND_CLASSES[kind](pattern)
    with _compiled_lock:
        if len(_compiled) > 2000:
            _compiled.clear()
        _compiled[key] = compiled
    return compiled


def as_written(text: str) -> str:
    """The prompt as it was written, NFKC and without invisible characters: what
    regular expressions also see (a pattern with accents still finds them)."""
    text = text or ""
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")


# --- staff editing ---------------------------------------------------------------------

def _text(data: dict, name: str, limit: int, *, required: bool) -> str | None:
    if name not in data:
        if required:
            raise ValidationError(name, "is required")
        return None
    value = data[name]
    if not isinstance(value, str):
        raise ValidationError(name, "must be text")
    value = value.strip()
    if required and not value:
        raise ValidationError(name, "must not be empty")
    if len(value) > limit:
        raise ValidationError(name, f"is {len(value)} characters long; at most {limit} are allowed")
    return value


def _matches(rule, text: str) -> bool:
    return rule.find(forms(text), as_written(text)) is not None


def validate_pattern(kind: str, pattern: str) -> None:
    """A 422 naming `pattern` when the rule cannot be used."""
    if kind == "word":
        if not _words(pattern)[0]:
            raise ValidationError("pattern", "must contain a letter or a digit")
        return
    if kind == "pair":
        pair_sides(pattern)
        return
    if _regex is None and NESTED_QUANTIFIER.search(pattern):
        raise ValidationError("pattern", "nests a repetition inside a repeated group, "
                                         "which can take very long to match; simplify it")
    try:
        compiled = _compile(kind, pattern)
    except (re.error, *((_regex.error,) if _regex is not None else ())) as exc:
        raise ValidationError("pattern", f"is not a valid regular expression: {exc}")
    except (RecursionError, OverflowError, ValueError) as exc:
        raise ValidationError("pattern", f"is not a usable regular expression: {exc}")
    # A pattern that matches nothing-at-all would block every prompt.
    try:
        if _matches(compiled, "") or _matches(compiled, " "):
            raise ValidationError("pattern", "matches an empty prompt, so it would block every prompt")
        for probe in ("a" * 200 + "!", "ab " * 100 + "\u00e9", "x1_" * 80):
            _matches(compiled, probe)
    except Timeout:
        raise ValidationError("pattern", "takes too long to match; simplify it")


def _fields(data, *, partial: bool) -> dict:
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object")
    values = {}
    if "kind" in data or not partial:
        kind = data.get("kind", "word")
        if kind not in KINDS:
            raise ValidationError("kind", "must be \"word\" or \"regex\"")
        values["kind"] = kind
    pattern = _text(data, "pattern", MAX_PATTERN, required=not partial)
    if pattern is not None:
        values["pattern"] = pattern
    note = _text(data, "note", MAX_NOTE, required=False)
    if note is not None:
        values["note"] = note
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ValidationError("enabled", "must be true or false")
        values["enabled"] = data["enabled"]
    if "preset" in data:
        values["preset"] = presets.check_preset(data["preset"])
    return values


def rule_dict(rule: PromptRule) -> dict:
    return {"id": rule.id, "kind": rule.kind, "pattern": rule.pattern, "note": rule.note or "",
            "enabled": bool(rule.enabled), "preset": rule.preset or presets.DEFAULT,
            "created_at": iso(rule.created_at)}


def list_rules(preset: str | None = None) -> list[PromptRule]:
    """Every rule, or one preset's own (`preset`: a 422 naming it when unknown)."""
    presets.ensure_presets()
    where = [PromptRule.preset == presets.check_preset(preset)] if preset is not None else []
    return list(db.session.scalars(sa.select(PromptRule).where(*where).order_by(
        PromptRule.preset.desc(), PromptRule.kind.desc(), PromptRule.pattern, PromptRule.id)))


def get_rule(rule_id) -> PromptRule:
    try:
        rule = db.session.get(PromptRule, int(rule_id))
    except (TypeError, ValueError, OverflowError):
        rule = None
    if rule is None:
        raise NotFound("No such rule.")
    return rule


def _no_duplicate(kind: str, pattern: str, own_id: int | None = None) -> None:
    for other in db.session.scalars(sa.select(PromptRule).where(PromptRule.kind == kind)):
        if other.id != own_id and other.pattern.casefold() == pattern.casefold():
            raise ValidationError("pattern", f"is a rule already (#{other.id}, {other.preset})")


def build_rule(staff: User, data) -> PromptRule:
    """A new rule from staff's fields (added to the session; the caller audits and commits)."""
    values = _fields(data, partial=False)
    validate_pattern(values["kind"], values["pattern"])
    _no_duplicate(values["kind"], values["pattern"])
    rule = PromptRule(kind=values["kind"], pattern=values["pattern"], note=values.get("note", ""),
                      enabled=values.get("enabled", True), preset=values.get("preset", presets.DEFAULT),
                      created_by_id=staff.id)
    db.session.add(rule)
    db.session.flush()
    return rule


def change_rule(rule: PromptRule, data) -> dict:
    """Apply staff's changes; returns {field: [old, new]} of what changed."""
    values = _fields(data, partial=True)
    kind = values.get("kind", rule.kind)
    pattern = values.get("pattern", rule.pattern)
    if "kind" in values or "pattern" in values:
        validate_pattern(kind, pattern)
        _no_duplicate(kind, pattern, rule.id)
    changes = {}
    for name, value in values.items():
        if getattr(rule, name) != value:
            changes[name] = [getattr(rule, name), value]
            setattr(rule, name, value)
    return changes


# --- at submit ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    rule_id: int
    kind: str
    pattern: str
    note: str
    field: str
    timed_out: bool = False
    hit: Hit | None = None  # which form of the text matched, and what it read there


def enabled_rules(preset: str) -> list[tuple[int, str, str, str]]:
    """(id, kind, pattern, note) of the enabled rules a preset applies, fresh from the
    database."""
    presets.ensure_presets()
    return [tuple(row) for row in db.session.execute(
        sa.select(PromptRule.id, PromptRule.kind, PromptRule.pattern, PromptRule.note)
        .where(PromptRule.enabled.is_(True), PromptRule.preset.in_(presets.applied(preset)))
        .order_by(PromptRule.id))]


def find_match(texts: dict[str, str], rules=None, *, preset: str | None = None) -> Match | None:
    """The first enabled rule that one of the texts ({field: text}) matches, or None:
    of `rules` when given, else of `preset`'s (by default the server's)."""
    if rules is None:
        rules = enabled_rules(preset or presets.server_preset())
    readings = {field: (forms(text), as_written(text)) for field, text in texts.items() if text}
    if not readings:
        return None
    for rule_id, kind, pattern, note in rules:
        try:
            compiled = _compile(kind, pattern)
        except Exception as exc:  # saved before the checks, or edited in the database by hand
            log.warning("prompt rule %s cannot be used, skipped: %s", rule_id, exc)
            continue
        for field, (field_forms, written) in readings.items():
            try:
                hit = compiled.find(field_forms, written)
            except Timeout:
                log.warning("prompt rule %s ran out of time on a %s; refused", rule_id, field)
                return Match(rule_id, kind, pattern, note or "", field, timed_out=True)
            if hit is not None:
                return Match(rule_id, kind, pattern, note or "", field, hit=hit)
    return None


def describe(match: Match) -> str:
    kind = {"word": "word", "pair": "word pair"}.get(match.kind, "pattern")
    name = f"the blocked {kind} \u201c{match.pattern}\u201d"
    if match.note:
        name += f" ({match.note})"
    what = FIELD_LABELS.get(match.field, match.field)
    if match.timed_out:
        return (f"Your {what} could not be checked against {name} in time, so it was refused; "
                "shorten or rephrase it. Nothing was charged.")
    return f"Your {what} matches {name}, which is not allowed here. Nothing was charged."


def matched_text(match: Match) -> str:
    """Which form of the text matched and what it read there, for staff: e.g.
    'spaced letters: "csam"'."""
    if match.timed_out or match.hit is None:
        return "(ran out of time)" if match.timed_out else ""
    field = "" if match.field == "prompt" else f"{FIELD_LABELS.get(match.field, match.field)}, "
    return field + str(match.hit)


def check_prompt(user: User, params: dict) -> None:
    """Refuse (PromptBlocked, 422) a prompt or negative prompt that matches an enabled
    rule of the user's effective preset (presets.effective_preset); the attempt is
    recorded for staff (committed here, as nothing else is pending before a task is made)."""
    texts = {field: params.get(field) or "" for field in FIELDS}
    if not any(texts.values()):
        return
    match = find_match(texts, preset=presets.effective_preset(user))
    if match is None:
        return
    shown = f"{texts['prompt']}"
    if texts["negative_prompt"]:
        shown += f"\n[negative] {texts['negative_prompt']}"
    # What matched, for staff, on a last line of the stored prompt (split off again by
    # recent_blocked).
    matched = MATCHED_MARK + matched_text(match)[:200]
    db.session.add(BlockedPrompt(user_id=user.id, rule_id=match.rule_id, rule=match.pattern[:255],
                                 prompt=shown[:1000 - len(matched)] + matched))
    try:
        db.session.commit()
    except Exception as exc:  # the refusal stands even if counting it failed
        db.session.rollback()
        log.warning("could not record a blocked prompt of user %s: %s", user.id, exc)
    raise PromptBlocked(describe(match), field=match.field,
                        rule={"id": match.rule_id, "kind": match.kind, "pattern": match.pattern,
                              "note": match.note})


# --- what staff see of blocked attempts ----------------------------------------------------

def blocked_summary(*, limit: int = 50) -> list[dict]:
    """Per user: how many prompts were refused, and when the last one was; most first."""
    count = sa.func.count(BlockedPrompt.id)
    last = sa.func.max(BlockedPrompt.created_at)
    rows = db.session.execute(
        sa.select(User.uuid, User.username, count, last).join(User, User.id == BlockedPrompt.user_id)
        .group_by(User.id, User.uuid, User.username).order_by(count.desc(), last.desc()).limit(limit)).all()
    return [{"user": {"id": uuid, "username": username}, "count": n, "last_at": iso(when)}
            for uuid, username, n, when in rows]


def recent_blocked(*, offset: int, limit: int, user_uuid: str | None = None) -> tuple[list[dict], int]:
    where = []
    if user_uuid:
        where.append(BlockedPrompt.user_id.in_(sa.select(User.id).where(User.uuid == user_uuid)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(BlockedPrompt).where(*where))
    rows = db.session.execute(
        sa.select(BlockedPrompt, User.uuid, User.username).join(User, User.id == BlockedPrompt.user_id)
        .where(*where).order_by(BlockedPrompt.created_at.desc(), BlockedPrompt.id.desc())
        .offset(offset).limit(limit)).all()
    items = []
    for row, uuid, username in rows:
        prompt, mark, matched = row.prompt.rpartition(MATCHED_MARK)
        if not mark:  # recorded before what matched was kept
            prompt, matched = matched, ""
        items.append({"id": row.id, "user": {"id": uuid, "username": username}, "rule_id": row.rule_id,
                      "rule": row.rule, "prompt": prompt, "matched": matched, "created_at": iso(row.created_at)})
    return items, total
