"""What a teacher sees of and does to a class's members: the members with what each
made today and their balance, each pupil's images (Hide / Unhide), a new password for a
pupil, and removing a pupil. Every action is an audit row of the class
(classes.record). Teachers are named and removed by staff (classes.add_teacher)."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import ClassMember, Image, SchoolClass, User, iso
from services.accounts import classes, links, signin
from services.accounts.passwords import hash_password
from services.core.errors import Conflict, NotFound
from services.library import storage

# A new password a teacher reads out: no look-alike letters or digits, in groups of four.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_GROUPS = 3
NO_SUCH_PUPIL = "No such pupil in this class."
NO_SUCH_IMAGE = "No such image."


def day_start(now: datetime | None = None) -> datetime:
    """Today's midnight in DAYDREAM_TIMEZONE (UTC when unset or unknown), as naive UTC."""
    try:
        zone = ZoneInfo(current_app.config.get("TIMEZONE") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    local = (now or datetime.now(timezone.utc)).astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(timezone.utc).replace(tzinfo=None)


def members(school_class: SchoolClass) -> list[dict]:
    """Teachers first, then pupils, by username: who they are, how they joined, the
    images they made today and their balance."""
    rows = db.session.execute(
        sa.select(User, ClassMember).join(ClassMember, ClassMember.user_id == User.id)
        .where(ClassMember.class_id == school_class.id)
        .order_by(ClassMember.role.desc(), sa.func.lower(User.username))).all()
    ids = [user.id for user, _member in rows]
    today = dict(db.session.execute(
        sa.select(Image.user_id, sa.func.count()).where(Image.user_id.in_(ids), Image.kind == "result",
                                                        Image.created_at >= day_start())
        .group_by(Image.user_id)).all()) if ids else {}
    return [{"id": user.uuid, "username": user.username,
             "name": " ".join(p for p in (user.first_name, user.last_name) if p),
             "role": member.role, "via": member.via, "joined_at": iso(member.joined_at),
             "staff": user.is_staff, "active": user.active,
             "images_today": today.get(user.id, 0), "tokens": user.tokens}
            for user, member in rows]


def pupil(school_class: SchoolClass, user_public_id) -> User:
    """A pupil of the class by public id; anyone else is NotFound."""
    user = db.session.scalar(sa.select(User).join(ClassMember, ClassMember.user_id == User.id).where(
        ClassMember.class_id == school_class.id, ClassMember.role == classes.PUPIL,
        User.uuid == str(user_public_id)))
    if user is None:
        raise NotFound(NO_SUCH_PUPIL)
    return user


def remove_member(teacher: User, school_class: SchoolClass, user_public_id) -> None:
    """A pupil leaves the class (their account stays; their shared images leave its gallery)."""
    user = pupil(school_class, user_public_id)
    classes.record("member_remove", school_class, actor=teacher, target=user)
    classes.leave(classes.membership(user, school_class))
    db.session.commit()


def new_password() -> str:
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(PASSWORD_GROUPS))


def reset_password(teacher: User, school_class: SchoolClass, user_public_id) -> str:
    """A new password for a pupil, shown once to the teacher: the old one stops working,
    every session of the pupil is signed out and their API tokens revoked. Not for a
    staff account (staff reset their own)."""
    user = pupil(school_class, user_public_id)
    if user.is_staff:
        raise Conflict("That account is staff; staff reset its password.", code="staff_account")
    password = new_password()
    user.password_hash = hash_password(password)
    links.void_links(user, links.RESET)
    signin.sign_out_elsewhere(user)
    classes.record("password_reset", school_class, actor=teacher, target=user)  # never the password
    db.session.commit()
    return password


# --- a pupil's images, as their teacher sees them -------------------------------------------

def image_dict(school_class: SchoolClass, image: Image, owner: User | None = None) -> dict:
    base = f"/api/v1/classes/{school_class.id}/images/{image.id}"
    owner = owner or db.session.get(User, image.user_id)
    return {"id": image.id, "owner": {"id": owner.uuid, "username": owner.username},
            "width": image.width, "height": image.height, "created_at": iso(image.created_at),
            "prompt": image.task.prompt if image.task is not None else None,
            "hidden": image.hidden_by_id is not None, "shared": image.class_id == school_class.id,
            "url": f"{base}/full", "thumbnail_url": f"{base}/thumbnail"}


def pupil_images(school_class: SchoolClass, user_public_id, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """A pupil's images (not masks, not those held by the image check), newest first."""
    user = pupil(school_class, user_public_id)
    where = (Image.user_id == user.id, Image.kind != "mask", storage.not_held())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(*where))
    found = db.session.scalars(sa.select(Image).where(*where).order_by(Image.created_at.desc(), Image.id.desc())
                               .offset(offset).limit(limit)).all()
    return [image_dict(school_class, image, user) for image in found], total


def pupil_image(school_class: SchoolClass, image_id) -> Image:
    """An image of a pupil of the class; anything else is NotFound."""
    image = db.session.scalar(sa.select(Image).join(ClassMember, ClassMember.user_id == Image.user_id).where(
        Image.id == str(image_id), ClassMember.class_id == school_class.id, ClassMember.role == classes.PUPIL))
    if image is None:
        raise NotFound(NO_SUCH_IMAGE)
    return image


def set_hidden(teacher: User, school_class: SchoolClass, image_id, hidden: bool) -> Image:
    """Hide a pupil's image (from the class gallery, the public showcase and signed links;
    its owner still sees it, marked hidden) or show it again."""
    image = pupil_image(school_class, image_id)
    if (image.hidden_by_id is not None) != hidden:
        image.hidden_by_id = teacher.id if hidden else None
        owner = db.session.get(User, image.user_id)
        classes.record("image_hide" if hidden else "image_unhide", school_class, actor=teacher,
                       target_type="image", target_id=image.id, target_name=owner.username)
        db.session.commit()
    return image
