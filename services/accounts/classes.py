"""Classes (or teams): who belongs where, who may open a class, and what staff do to
classes (create, rename, delete, name teachers).

Others read a user's classes through pupil_classes / home_class (caps, model access,
pools, presets), teacher_classes / is_teacher_of (what a teacher may see) and
sync_sso_groups (sign-in with a groups claim). This module imports no other services
package but core, so that any of them may import it.

The rest of the class logic is beside it: class_settings.py (budget, caps, allowed
models and LoRAs, moderation preset), class_members.py (the teacher's view of the
members and their images), class_gallery.py (sharing into the class gallery) and
join_codes.py (codes, links, joining)."""
from __future__ import annotations

import sqlalchemy as sa

from extensions import db
from models import AuditEntry, ClassMember, Image, JoinCode, SchoolClass, Task, TaskState, User, iso
from services.core import audit
from services.core.errors import Conflict, NotFound, ValidationError

PUPIL, TEACHER = "pupil", "teacher"
NAME_MAX = 80
NO_SUCH_CLASS = "No such class."


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
            leave(member)
    db.session.commit()


# --- who may open a class ----------------------------------------------------------------

def membership(user: User, school_class: SchoolClass) -> ClassMember | None:
    return db.session.scalar(sa.select(ClassMember).where(ClassMember.class_id == school_class.id,
                                                          ClassMember.user_id == user.id))


def role_in(user: User, school_class: SchoolClass) -> str | None:
    """"teacher" (staff count as one in every class), "pupil", or None."""
    if user.is_staff:
        return TEACHER
    member = membership(user, school_class)
    return member.role if member else None


def class_for(user: User, class_id, *, teach: bool = False) -> SchoolClass:
    """The class, if the user may open it: staff any, its teachers, and (unless `teach`)
    its pupils. Anything else, an unknown id included, is NotFound: another class is as
    invisible as another user's image."""
    school_class = db.session.get(SchoolClass, class_id) if isinstance(class_id, str) else None
    role = role_in(user, school_class) if school_class is not None else None
    if role is None or (teach and role != TEACHER):
        raise NotFound(NO_SUCH_CLASS)
    return school_class


def classes_of(user: User) -> list[tuple[SchoolClass, str]]:
    """(class, "teacher" | "pupil") for each class the user belongs to, by name."""
    rows = db.session.execute(
        sa.select(SchoolClass, ClassMember.role).join(ClassMember, ClassMember.class_id == SchoolClass.id)
        .where(ClassMember.user_id == user.id).order_by(sa.func.lower(SchoolClass.name), SchoolClass.id))
    return [(c, role) for c, role in rows]


def in_any_class(user: User) -> bool:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ClassMember)
                             .where(ClassMember.user_id == user.id)) > 0


def teacher_ids(school_class: SchoolClass) -> list[int]:
    return list(db.session.scalars(sa.select(ClassMember.user_id).where(
        ClassMember.class_id == school_class.id, ClassMember.role == TEACHER)))


def leave(member: ClassMember) -> None:
    """A member leaves: their images shared into the class leave its gallery."""
    db.session.execute(sa.update(Image).where(Image.user_id == member.user_id, Image.class_id == member.class_id)
                       .values(class_id=None).execution_options(synchronize_session=False))
    db.session.delete(member)


# --- the audit rows of a class -------------------------------------------------------------

def record(action: str, school_class: SchoolClass, *, actor: User, target=None, target_type: str | None = None,
           target_id: str | None = None, target_name: str | None = None, details: dict | None = None) -> None:
    """An audit row ("class.<what>") of something done in a class; the class page lists
    the rows whose details name it."""
    if target is None and target_type is None:
        target_type, target_id, target_name = "class", school_class.id, school_class.name
    audit.record(f"class.{action}", target=target, target_type=target_type, target_id=target_id,
                 target_name=target_name, actor=actor,
                 details={"class_id": school_class.id, "class": school_class.name, **(details or {})})


def audit_rows(school_class: SchoolClass, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """The class's audit rows, newest first."""
    where = (AuditEntry.action.like("class.%"), AuditEntry.details["class_id"].as_string() == school_class.id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(*where))
    rows = db.session.execute(
        sa.select(AuditEntry, User.uuid).outerjoin(User, User.id == AuditEntry.actor_id).where(*where)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)).all()
    return [audit.entry_dict(entry, uuid) for entry, uuid in rows], total


# --- what staff do: create, rename, delete, name teachers ----------------------------------

def clean_name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("name", "give the class a name")
    value = " ".join(value.split())
    if len(value) > NAME_MAX:
        raise ValidationError("name", f"use at most {NAME_MAX} characters")
    return value


def clean_sso_group(value, school_class: SchoolClass | None = None) -> str | None:
    """A groups-claim value (None or "": none), unique among classes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > 255:
        raise ValidationError("sso_group", "must be text of at most 255 characters, or null")
    value = value.strip()
    taken = db.session.scalar(sa.select(SchoolClass).where(SchoolClass.sso_group == value))
    if taken is not None and (school_class is None or taken.id != school_class.id):
        raise ValidationError("sso_group", f"the class {taken.name!r} has that group already")
    return value


def create_class(staff: User, name, sso_group=None) -> SchoolClass:
    school_class = SchoolClass(name=clean_name(name), sso_group=clean_sso_group(sso_group),
                               created_by_id=staff.id)
    db.session.add(school_class)
    db.session.flush()
    record("create", school_class, actor=staff)
    db.session.commit()
    return school_class


def delete_class(staff: User, school_class: SchoolClass) -> None:
    """Delete a class: its members, codes and gallery go (the images stay their owners');
    a pool's tokens go with it. Refused while a task its pool paid is unfinished (its
    refund would have nowhere to go)."""
    running = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.class_id == school_class.id, Task.state.in_(TaskState.unfinished())))
    if running:
        raise Conflict("Tasks paid from this class's pool are still queued or running; delete the class "
                       "when they have finished.", code="class_busy")
    record("delete", school_class, actor=staff)
    db.session.execute(sa.update(Image).where(Image.class_id == school_class.id).values(class_id=None)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.delete(ClassMember).where(ClassMember.class_id == school_class.id))
    db.session.execute(sa.delete(JoinCode).where(JoinCode.class_id == school_class.id))
    db.session.delete(school_class)
    db.session.commit()


def _find_user(login) -> User:
    if not isinstance(login, str) or not login.strip():
        raise ValidationError("user", "give the username or email of an account")
    login = login.strip()
    user = db.session.scalar(sa.select(User).where(sa.or_(
        sa.func.lower(User.username) == login.lower(), sa.func.lower(User.email) == login.lower(),
        User.uuid == login)))
    if user is None:
        raise ValidationError("user", "no account has that username, email or id")
    return user


def add_teacher(staff: User, school_class: SchoolClass, login) -> ClassMember:
    """Name an account a teacher of the class (a pupil of it becomes its teacher)."""
    user = _find_user(login)
    member = membership(user, school_class)
    if member is not None and member.role == TEACHER:
        raise Conflict(f"{user.username} teaches this class already.", code="already_teacher", field="user")
    if member is None:
        member = ClassMember(class_id=school_class.id, user_id=user.id, role=TEACHER, via="staff")
        db.session.add(member)
    else:
        member.role, member.via = TEACHER, "staff"
    record("teacher_add", school_class, actor=staff, target=user)
    db.session.commit()
    return member


def remove_teacher(staff: User, school_class: SchoolClass, user_public_id: str) -> None:
    member = db.session.scalar(sa.select(ClassMember).join(User, User.id == ClassMember.user_id).where(
        ClassMember.class_id == school_class.id, ClassMember.role == TEACHER, User.uuid == user_public_id))
    if member is None:
        raise NotFound("No such teacher in this class.")
    record("teacher_remove", school_class, actor=staff, target=member.user)
    leave(member)
    db.session.commit()


def class_dict(school_class: SchoolClass, *, counts: dict | None = None) -> dict:
    """A class as the API shows it (its settings: class_settings.settings_dict)."""
    counts = counts if counts is not None else member_counts([school_class.id]).get(school_class.id, {})
    teachers = db.session.execute(
        sa.select(User.uuid, User.username).join(ClassMember, ClassMember.user_id == User.id)
        .where(ClassMember.class_id == school_class.id, ClassMember.role == TEACHER)
        .order_by(sa.func.lower(User.username))).all()
    return {"id": school_class.id, "name": school_class.name, "sso_group": school_class.sso_group,
            "created_at": iso(school_class.created_at),
            "teachers": [{"id": uuid, "username": name} for uuid, name in teachers],
            "pupils": counts.get(PUPIL, 0)}


def member_counts(class_ids: list[str]) -> dict[str, dict[str, int]]:
    if not class_ids:
        return {}
    found: dict[str, dict[str, int]] = {}
    for class_id, role, n in db.session.execute(
            sa.select(ClassMember.class_id, ClassMember.role, sa.func.count())
            .where(ClassMember.class_id.in_(class_ids)).group_by(ClassMember.class_id, ClassMember.role)):
        found.setdefault(class_id, {})[role] = n
    return found


def list_classes(*, offset: int, limit: int) -> tuple[list[dict], int]:
    """Every class by name (staff), with its teachers and number of pupils."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(SchoolClass))
    found = db.session.scalars(sa.select(SchoolClass).order_by(sa.func.lower(SchoolClass.name), SchoolClass.id)
                               .offset(offset).limit(limit)).all()
    counts = member_counts([c.id for c in found])
    return [class_dict(c, counts=counts.get(c.id, {})) for c in found], total
