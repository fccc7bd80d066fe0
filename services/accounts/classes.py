"""Classes (or teams): members, teachers, join codes, the class's settings (budget,
caps, allowed models and LoRAs, moderation preset) and the class gallery.

Others read a user's classes through pupil_classes / home_class (caps, model access,
pools, presets), teacher_classes / is_teacher_of (what a teacher may see) and
sync_sso_groups (sign-in with a groups claim)."""
from __future__ import annotations

import sqlalchemy as sa

from extensions import db
from models import ClassMember, SchoolClass, User

PUPIL, TEACHER = "pupil", "teacher"


# --- who belongs where (called by sign-in, submit, moderation) --------------------------

def pupil_classes(user: User) -> list[SchoolClass]:
    """The classes where the user is a pupil, oldest membership first."""
    if user is None or getattr(user, "id", None) is None:
        return []
    return list(db.session.scalars(
        sa.select(SchoolClass).join(ClassMember, ClassMember.class_id == SchoolClass.id)
        .where(ClassMember.user_id == user.id, ClassMember.role == PUPIL)
        .order_by(ClassMember.joined_at, ClassMember.id)))


def home_class(user: User) -> SchoolClass | None:
    """The user's first class as a pupil (its pool pays their tasks), or None."""
    found = pupil_classes(user)
    return found[0] if found else None


def teacher_classes(user: User) -> list[SchoolClass]:
    """The classes the user teaches, by name."""
    if user is None or getattr(user, "id", None) is None:
        return []
    return list(db.session.scalars(
        sa.select(SchoolClass).join(ClassMember, ClassMember.class_id == SchoolClass.id)
        .where(ClassMember.user_id == user.id, ClassMember.role == TEACHER)
        .order_by(sa.func.lower(SchoolClass.name), SchoolClass.id)))


def is_teacher_of(teacher: User, pupil: User) -> bool:
    """Whether `teacher` teaches a class where `pupil` is a pupil."""
    if teacher is None or pupil is None or teacher.id is None or pupil.id is None:
        return False
    taught = sa.select(ClassMember.class_id).where(ClassMember.user_id == teacher.id,
                                                   ClassMember.role == TEACHER)
    return db.session.scalar(sa.select(sa.func.count()).select_from(ClassMember).where(
        ClassMember.user_id == pupil.id, ClassMember.role == PUPIL,
        ClassMember.class_id.in_(taught))) > 0


def sync_sso_groups(user: User, groups: list[str]) -> None:
    """Make the user's SSO memberships match a groups claim: join (as pupil, via "sso")
    each class whose sso_group is listed, leave the sso-joined ones no longer listed.
    Memberships made another way (a code, staff) are kept. Commits."""
    if user.id is None:
        db.session.flush()
    wanted = {g for g in (groups or []) if isinstance(g, str) and g}
    classes = db.session.scalars(sa.select(SchoolClass).where(SchoolClass.sso_group.in_(wanted))).all() \
        if wanted else []
    mine = {m.class_id: m for m in db.session.scalars(
        sa.select(ClassMember).where(ClassMember.user_id == user.id))}
    wanted_ids = {c.id for c in classes}
    for school_class in classes:
        if school_class.id not in mine:
            db.session.add(ClassMember(class_id=school_class.id, user_id=user.id, role=PUPIL, via="sso"))
    for class_id, member in mine.items():
        if member.via == "sso" and class_id not in wanted_ids:
            db.session.delete(member)
    db.session.commit()
