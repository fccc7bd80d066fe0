"""Moderation presets (issue 27): which prompt rules (rules.py) a user's prompts are
matched against.

- "standard": the rules a new database starts with (the migrations' starter list: sexual
  content involving minors, a few extreme terms) and whatever staff add to it.
- "strict", for schools: standard's rules and its own (STRICT_RULES): sexual content,
  gore and slurs, as words, pair rules and patterns. They are PromptRule rows with
  preset "strict", seeded on every install (ensure_presets), so staff edit, disable or
  delete them like any rule. Each version of the list is seeded once (a Setting row
  marks it): a rule staff deleted does not come back at the next start.

The server's preset is the Setting "moderation_preset": a new install takes it from
DAYDREAM_MODERATION_PRESET (standard by default), then staff choose it (the first-run
setup's "Is Daydream for a school?", Admin → Moderation). A user's effective preset is
the strictest of the server's and that of every class they are a pupil of
(SchoolClass.moderation_preset; None follows the server's): a class can hold its pupils
to stricter rules, never looser ones.

Words were chosen against the Scunthorpe problem: word rules match whole words, so
"Essex", "therapist", "grapefruit" and "Penistone" pass. Words of 7 letters or more also
match with separators inside (rules.LONG_TERM), so one whose halves are an ordinary
phrase ("bond age", "wet back", "only fans") is a pattern instead; so is a word with an
ordinary sense beside the slur ("Maine Coon", "Homo sapiens", "a chink of light")."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import ClassMember, PromptRule, SchoolClass, Setting, User
from services.core import audit
from services.core.errors import ValidationError

PRESETS = ("standard", "strict")  # the least strict first
DEFAULT = "standard"
SETTING = "moderation_preset"
SEEDED = "moderation_strict_v{}"  # a Setting per version of STRICT_RULES seeded
LABELS = {"standard": "Standard", "strict": "Strict (for schools)"}


@dataclass(frozen=True)
class Seed:
    kind: str
    pattern: str
    note: str
    since: int = 1  # the version of the list that added it


SEXUAL = "Sexual content (strict preset)"
GORE = "Gore (strict preset)"
SLUR = "A slur (strict preset)"


def _words(note: str, *patterns: str) -> list[Seed]:
    return [Seed("word", pattern, note) for pattern in patterns]


STRICT_RULES: list[Seed] = [
    *_words(SEXUAL, "nude", "naked", "nudity", "nudist*", "nudism", "nsfw", "porn*", "sex", "sexy", "sexual*",
            "erotic*", "hentai", "ecchi", "ahegao", "lewd", "undress*", "unclothed", "orgasm", "orgy", "orgies",
            "intercourse", "masturbat*", "blowjob", "handjob", "cumshot", "fellatio", "cunnilingus", "bukkake",
            "striptease", "bdsm", "dildo", "milf", "slut", "whore", "prostitut*", "fuck*", "rape", "raped", "raping",
            "rapist", "molest*", "incest", "pedo", "pedophil*", "paedophil*", "penis", "vagina", "vulva", "genital*",
            "clit", "clitoris", "cunt", "nipple", "boobs", "titties", "anal", "rule 34"),
    Seed("pair", "breast, breasts, buttocks, crotch, groin, nipples + bare, exposed, uncovered, naked", SEXUAL),
    Seed("regex", r"\b(?:top[-_.]?less|bondage|upskirts?|onlyfans)\b", SEXUAL),
    Seed("regex", r"\b(?:without|not wearing|wearing no)\s(?:any\s)?(?:clothes|clothing|underwear|panties|bra)\b",
         SEXUAL),
    Seed("regex", r"\bwearing\s+nothing\b", SEXUAL),
    Seed("regex", r"\bhorny\b(?![\W_]*(?:toads?|lizards?))", SEXUAL),
    *_words(GORE, "gory", "decapitat*", "dismember*", "disembowel*", "eviscerat*", "mutilat*", "behead*",
            "entrails"),
    Seed("pair", "blood, bloody, bloodied, bleeding + wound, wounded, corpse, guts, entrails, gash, stabbed, "
                 "stabbing, slashed, severed, mangled, torn apart, ripped apart, dead body, dead bodies", GORE),
    Seed("pair", "severed, chopped off, hacked off + head, heads, limb, limbs, arm, arms, leg, legs, hand, hands, "
                 "finger, fingers, torso, body, bodies", GORE),
    Seed("regex", r"(?<!\bal\s)\bgore\b(?![\W_]*tex)", GORE),
    Seed("regex", r"\b(?:slit|slitting|cut|cutting|slashed?|slashing)\s(?:(?:his|her|their|its|a|the|my|your|own)\s)"
                  r"{0,2}(?:throats?|wrists?)\b", GORE),
    Seed("regex", r"\b(?:pool|pools|puddle|puddles)\sof\sblood\b", GORE),
    *_words(SLUR, "nigger", "nigga", "faggot", "fag", "tranny", "shemale", "retard", "retarded", "spic", "kike",
            "gook", "paki", "beaner", "spaz", "wog", "golliwog", "wop", "dago", "jigaboo", "pickaninny", "mongoloid"),
    Seed("regex", r"\bn+i+g{2,}(?:e+r+|a+h?|u+h?r*)[sz]?\b", SLUR),
    Seed("regex", r"\b(?:wetbacks?|ragheads?|towelheads?)\b", SLUR),
    Seed("regex", r"(?<!\bmaine\s)\bcoons?\b(?![\W_]*(?:hounds?|cats?))", SLUR),
    Seed("regex", r"\bchinks?\b(?![\W_]*(?:in|of)\b)", SLUR),
    Seed("regex", r"\bhomos?\b(?![\W_]*(?:sapiens|erectus|habilis|neanderthalensis|floresiensis|naledi|ergaster))",
         SLUR),
    Seed("regex", r"(?<!offa.s\s)\bdykes?\b", SLUR),
]
STRICT_VERSION = max(seed.since for seed in STRICT_RULES)


# --- seeding -------------------------------------------------------------------------------

def configured() -> str:
    """DAYDREAM_MODERATION_PRESET (config.py checks it): a new install's preset."""
    return current_app.config.get("MODERATION_PRESET") or DEFAULT


def ensure_presets() -> None:
    """The server's preset and the strict list are in the database. Idempotent and
    cheap; runs once per process (rules.py and server_preset call it)."""
    ext = current_app.extensions
    if ext.get("daydream_presets_seeded"):
        return
    try:
        with db.session.no_autoflush:
            if db.session.get(Setting, SETTING) is None:
                db.session.add(Setting(key=SETTING, value=configured()))
            _seed_strict()
        db.session.commit()
    except sa.exc.IntegrityError:  # another process or request did the same just now
        db.session.rollback()
    ext["daydream_presets_seeded"] = True


def _seed_strict() -> None:
    """Each version of STRICT_RULES not seeded yet: its rules (those no rule has already,
    in any preset), and the Setting that marks it seeded."""
    existing = {(kind, pattern.casefold()) for kind, pattern in db.session.execute(
        sa.select(PromptRule.kind, PromptRule.pattern))}
    for version in range(1, STRICT_VERSION + 1):
        key = SEEDED.format(version)
        if db.session.get(Setting, key) is not None:
            continue
        seeds = [seed for seed in STRICT_RULES if seed.since == version
                 and (seed.kind, seed.pattern.casefold()) not in existing]
        db.session.add(Setting(key=key, value={"rules": len(seeds)}))
        db.session.add_all(PromptRule(kind=seed.kind, pattern=seed.pattern, note=seed.note, enabled=True,
                                      preset="strict") for seed in seeds)


# --- the server's and a user's preset --------------------------------------------------------

def server_preset() -> str:
    ensure_presets()
    row = db.session.get(Setting, SETTING)
    value = row.value if row is not None else None
    return value if value in PRESETS else configured()


def check_preset(value, field: str = "preset") -> str:
    if value not in PRESETS:
        raise ValidationError(field, "must be \u201cstandard\u201d or \u201cstrict\u201d")
    return value


def set_server_preset(preset, *, actor: User, reason: str = "") -> bool:
    """Staff choose the server's preset (audited; the caller commits). True when it changed."""
    preset = check_preset(preset)
    old = server_preset()
    if preset == old:
        return False
    row = db.session.get(Setting, SETTING)
    if row is None:
        db.session.add(Setting(key=SETTING, value=preset))
    else:
        row.value = preset
    audit.record("moderation.preset", target_type="setting", target_id=SETTING, target_name=SETTING,
                 reason=reason, details={"preset": [old, preset]}, actor=actor)
    return True


def set_at_setup(staff: User, school: bool | None) -> None:
    """The first-run setup's answer to "Is Daydream for a school?": yes is strict, no is
    standard, None (not answered) leaves the preset as it is. Committed here."""
    if school is None:
        return
    if set_server_preset("strict" if school else "standard", actor=staff, reason="first-run setup"):
        db.session.commit()


def effective_preset(user: User | None) -> str:
    """The strictest of the server's preset and those of the classes the user is a
    pupil of."""
    chosen = {server_preset()}
    if user is not None and getattr(user, "id", None) is not None:
        chosen.update(db.session.scalars(
            sa.select(SchoolClass.moderation_preset).join(ClassMember, ClassMember.class_id == SchoolClass.id)
            .where(ClassMember.user_id == user.id, ClassMember.role == "pupil",
                   SchoolClass.moderation_preset.in_(PRESETS))))
    return max(chosen, key=PRESETS.index)


def applied(preset: str) -> tuple[str, ...]:
    """The presets whose rules a preset applies: itself and every less strict one."""
    return PRESETS[:PRESETS.index(check_preset(preset)) + 1]


def summary() -> dict:
    """The server's preset, the choices, and each preset's rules (enabled of all) for
    Admin → Moderation."""
    counts = {preset: {"rules": 0, "enabled": 0} for preset in PRESETS}
    for preset, enabled, n in db.session.execute(
            sa.select(PromptRule.preset, PromptRule.enabled, sa.func.count()).group_by(PromptRule.preset,
                                                                                       PromptRule.enabled)):
        if preset in counts:
            counts[preset]["rules"] += n
            counts[preset]["enabled"] += n if enabled else 0
    return {"preset": server_preset(), "configured": configured(),
            "presets": [{"id": preset, "label": LABELS[preset], "applies": list(applied(preset)), **counts[preset]}
                        for preset in PRESETS]}
