"""prompt rules: the starter list's two "minor near a sexual word" patterns become one
pair rule (a word of each list anywhere in the prompt, or run together)

Revision ID: f9c4pairrules01
Revises: f8a2registration01
Create Date: 2026-12-05 09:00:00.000000

Data only. The two regular expressions matched a minor's word and a sexual word at
most 40 characters apart, in either order, and only as separate words; the pair rule
(services/moderation/rules.py, kind "pair") matches them anywhere in the same prompt,
and run together ("nakedchild"). A starter rule that staff edited is left as it is.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f9c4pairrules01'
down_revision = 'f8a2registration01'
branch_labels = None
depends_on = None

# As seeded by e7c3moderation01.
_MINOR = r"(?:child(?:ren)?|kids?|under-?age|pre-?teens?|toddlers?|infants?|school ?(?:girl|boy)s?)"
_SEXUAL = r"(?:nudes?|naked|nsfw|sex(?:y|ual)?|porn\w*|erotic\w*|lewd|topless|undress\w*)"
OLD_NEAR = [rf"\b{_MINOR}\b.{{0,40}}\b{_SEXUAL}\b", rf"\b{_SEXUAL}\b.{{0,40}}\b{_MINOR}\b"]
OLD_NOTES = ['A minor near a sexual word: sexual content involving minors',
             'A sexual word near a minor: sexual content involving minors']

PAIR = ('pair',
        'child, children, kid, kiddie, kiddy, under age, pre teen, toddler, infant, school girl, school boy'
        ' + nude, naked, nsfw, sex, sexy, sexual, porn*, erotic*, lewd, topless, undress*',
        'A minor and a sexual word: sexual content involving minors')

rules = sa.table('prompt_rules', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                 sa.column('pattern', sa.String), sa.column('note', sa.String),
                 sa.column('enabled', sa.Boolean), sa.column('created_at', sa.DateTime))
blocked = sa.table('blocked_prompts', sa.column('rule_id', sa.Integer))


def _ids(kind, pattern):
    return [row[0] for row in op.get_bind().execute(
        sa.select(rules.c.id).where(rules.c.kind == kind, rules.c.pattern == pattern))]


def upgrade():
    first, second = (_ids('regex', pattern) for pattern in OLD_NEAR)
    if not first and not second:
        return  # staff changed or deleted both: nothing of the starter list to replace
    kind, pattern, note = PAIR
    if first:
        op.execute(rules.update().where(rules.c.id == first[0]).values(kind=kind, pattern=pattern, note=note))
    else:
        op.execute(rules.update().where(rules.c.id == second[0]).values(kind=kind, pattern=pattern, note=note))
        second = second[1:]
    for rule_id in second:  # the pair rule covers both orders
        op.execute(blocked.update().where(blocked.c.rule_id == rule_id).values(rule_id=None))
        op.execute(rules.delete().where(rules.c.id == rule_id))


def downgrade():
    ids = _ids(*PAIR[:2])
    if not ids:
        return
    op.execute(rules.update().where(rules.c.id == ids[0]).values(kind='regex', pattern=OLD_NEAR[0], note=OLD_NOTES[0]))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(rules, [{'kind': 'regex', 'pattern': OLD_NEAR[1], 'note': OLD_NOTES[1], 'enabled': True,
                            'created_at': now}])
