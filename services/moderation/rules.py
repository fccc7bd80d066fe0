"""Prompt rules: the blocked words and patterns staff keep on Admin → Moderation. A
prompt or negative prompt that matches an enabled rule is refused at submit
(tasks.submit_task calls check_prompt before anything is charged): PromptBlocked, a
422 that names the rule and the field, and a BlockedPrompt row for the user.

- "word": a word or phrase, matched whole (word boundaries, so "class" does not match
  "ass"), case-insensitively, Unicode-aware; the words of a phrase may be separated
  by any spaces or punctuation ("foo bar" matches "Foo-bar" and "foo  bar").
- "regex": a regular expression, case-insensitive, checked when it is saved (a bad
  one is a 422 naming `pattern`). Patterns are at most MAX_PATTERN characters and run
  with a time limit (the `regex` package's timeout when it is installed; without it,
  Python's `re` and nested quantifiers refused at save). A prompt whose check runs out
  of time is refused, not let through.

Prompts are compared after NFKC normalization with invisible characters (zero-width
spaces, soft hyphens) taken out, so look-alike and split spellings match too. Rules
are read from the database at every check (one small query), so an edit applies at
once to every web process, without a restart or a cache to invalidate."""
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

try:  # the `regex` package has a match timeout; Python's re has none
    import regex as _regex
except ImportError:  # pragma: no cover - depends on the environment
    _regex = None

log = logging.getLogger(__name__)

KINDS = ("word", "regex")
MAX_PATTERN = 200
MAX_NOTE = 255
MATCH_TIMEOUT_S = 0.05  # per rule and field
FIELDS = ("prompt", "negative_prompt")
FIELD_LABELS = {"prompt": "prompt", "negative_prompt": "negative prompt"}
INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff\u180e"), None)
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


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").translate(INVISIBLE)


def word_expression(words: str) -> str:
    """The regular expression of a word rule: its words in order, whole, separated by
    anything that is not a letter or digit."""
    parts = [re.escape(part) for part in normalize(words).split()]
    return r"(?<!\w)" + r"[\W_]+".join(parts) + r"(?!\w)"


_compiled: dict[tuple[str, str], object] = {}
_compiled_lock = threading.Lock()


def _compile(kind: str, pattern: str):
    """The compiled rule (kept per (kind, pattern): compiling is what costs)."""
    key = (kind, pattern)
    found = _compiled.get(key)
    if found is not None:
        return found
    source = word_expression(pattern) if kind == "word" else pattern
    engine = _regex if _regex is not None else re
    flags = engine.IGNORECASE | engine.UNICODE
    if _regex is not None:
        flags |= _regex.V0
    compiled = engine.compile(source, flags)
    with _compiled_lock:
        if len(_compiled) > 2000:
            _compiled.clear()
        _compiled[key] = compiled
    return compiled


def _search(compiled, text: str) -> bool:
    if _regex is not None:
        try:
            return compiled.search(text, timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError as exc:
            raise Timeout() from exc
    return compiled.search(text) is not None


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


def validate_pattern(kind: str, pattern: str) -> None:
    """A 422 naming `pattern` when the rule cannot be used."""
    if kind == "word":
        if not any(ch.isalnum() for ch in pattern):
            raise ValidationError("pattern", "must contain a letter or a digit")
    else:
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
            if _search(compiled, "") or _search(compiled, " "):
                raise ValidationError("pattern", "matches an empty prompt, so it would block every prompt")
            for probe in ("a" * 200 + "!", "ab " * 100 + "\u00e9", "x1_" * 80):
                _search(compiled, probe)
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
    return values


def rule_dict(rule: PromptRule) -> dict:
    return {"id": rule.id, "kind": rule.kind, "pattern": rule.pattern, "note": rule.note or "",
            "enabled": bool(rule.enabled), "created_at": iso(rule.created_at)}


def list_rules() -> list[PromptRule]:
    return list(db.session.scalars(sa.select(PromptRule).order_by(PromptRule.kind.desc(), PromptRule.pattern,
                                                                 PromptRule.id)))


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
            raise ValidationError("pattern", f"is a rule already (#{other.id})")


def build_rule(staff: User, data) -> PromptRule:
    """A new rule from staff's fields (added to the session; the caller audits and commits)."""
    values = _fields(data, partial=False)
    validate_pattern(values["kind"], values["pattern"])
    _no_duplicate(values["kind"], values["pattern"])
    rule = PromptRule(kind=values["kind"], pattern=values["pattern"], note=values.get("note", ""),
                      enabled=values.get("enabled", True), created_by_id=staff.id)
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


def enabled_rules() -> list[tuple[int, str, str, str]]:
    """(id, kind, pattern, note) of the enabled rules, fresh from the database."""
    return [tuple(row) for row in db.session.execute(
        sa.select(PromptRule.id, PromptRule.kind, PromptRule.pattern, PromptRule.note)
        .where(PromptRule.enabled.is_(True)).order_by(PromptRule.id))]


def find_match(texts: dict[str, str], rules=None) -> Match | None:
    """The first enabled rule that one of the texts ({field: text}) matches, or None."""
    rules = enabled_rules() if rules is None else rules
    normalized = {field: normalize(text) for field, text in texts.items() if text}
    if not normalized:
        return None
    for rule_id, kind, pattern, note in rules:
        try:
            compiled = _compile(kind, pattern)
        except Exception as exc:  # saved before the checks, or edited in the database by hand
            log.warning("prompt rule %s cannot be used, skipped: %s", rule_id, exc)
            continue
        for field, text in normalized.items():
            try:
                if _search(compiled, text):
                    return Match(rule_id, kind, pattern, note or "", field)
            except Timeout:
                log.warning("prompt rule %s ran out of time on a %s; refused", rule_id, field)
                return Match(rule_id, kind, pattern, note or "", field, timed_out=True)
    return None


def describe(match: Match) -> str:
    name = f"the blocked {'word' if match.kind == 'word' else 'pattern'} \u201c{match.pattern}\u201d"
    if match.note:
        name += f" ({match.note})"
    what = FIELD_LABELS.get(match.field, match.field)
    if match.timed_out:
        return (f"Your {what} could not be checked against {name} in time, so it was refused; "
                "shorten or rephrase it. Nothing was charged.")
    return f"Your {what} matches {name}, which is not allowed here. Nothing was charged."


def check_prompt(user: User, params: dict) -> None:
    """Refuse (PromptBlocked, 422) a prompt or negative prompt that matches an enabled
    rule; the attempt is recorded for staff (committed here, as nothing else is pending
    before a task is made)."""
    texts = {field: params.get(field) or "" for field in FIELDS}
    match = find_match(texts)
    if match is None:
        return
    shown = f"{texts['prompt']}"
    if texts["negative_prompt"]:
        shown += f"\n[negative] {texts['negative_prompt']}"
    db.session.add(BlockedPrompt(user_id=user.id, rule_id=match.rule_id, rule=match.pattern[:255],
                                 prompt=shown[:1000]))
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


def blocked_count(user_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(BlockedPrompt)
                             .where(BlockedPrompt.user_id == user_id)) or 0


def recent_blocked(*, offset: int, limit: int, user_uuid: str | None = None) -> tuple[list[dict], int]:
    where = []
    if user_uuid:
        where.append(BlockedPrompt.user_id.in_(sa.select(User.id).where(User.uuid == user_uuid)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(BlockedPrompt).where(*where))
    rows = db.session.execute(
        sa.select(BlockedPrompt, User.uuid, User.username).join(User, User.id == BlockedPrompt.user_id)
        .where(*where).order_by(BlockedPrompt.created_at.desc(), BlockedPrompt.id.desc())
        .offset(offset).limit(limit)).all()
    return [{"id": row.id, "user": {"id": uuid, "username": username}, "rule_id": row.rule_id,
             "rule": row.rule, "prompt": row.prompt, "created_at": iso(row.created_at)}
            for row, uuid, username in rows], total
