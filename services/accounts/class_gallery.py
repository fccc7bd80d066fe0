"""The class gallery: members share their own images into their class (Image.class_id)
and every member sees what was shared, except what a teacher hid (Image.hidden_by_id)
or the image check holds. The picture files of a class's images are served through the
class (a teacher sees every image of its pupils; a pupil the gallery's)."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from extensions import db
from models import ClassMember, Image, SchoolClass, User
from services.accounts import class_members, classes
from services.core.errors import Conflict, NotFound
from services.library import storage

NO_SUCH_IMAGE = class_members.NO_SUCH_IMAGE


def _shown():
    """The SQL condition of an image the class gallery shows."""
    return sa.and_(Image.hidden_by_id.is_(None), storage.not_held(), User.active.is_(True))


def gallery_images(school_class: SchoolClass, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """What members shared into the class, newest first (hidden and held ones left out)."""
    where = (Image.class_id == school_class.id, _shown())
    base = sa.select(Image, User).join(User, User.id == Image.user_id).where(*where)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(base.subquery()))
    rows = db.session.execute(base.order_by(Image.created_at.desc(), Image.id.desc())
                              .offset(offset).limit(limit)).all()
    return [class_members.image_dict(school_class, image, owner) for image, owner in rows], total


def own_images(user: User, school_class: SchoolClass, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """The user's own pictures to pick from (shared or not), newest first."""
    where = (Image.user_id == user.id, Image.kind != "mask", storage.not_held())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(*where))
    found = db.session.scalars(sa.select(Image).where(*where).order_by(Image.created_at.desc(), Image.id.desc())
                               .offset(offset).limit(limit)).all()
    return [class_members.image_dict(school_class, image, user) for image in found], total


def _own_image(user: User, image_id) -> Image:
    image = db.session.scalar(sa.select(Image).where(Image.id == str(image_id), Image.user_id == user.id,
                                                     Image.kind != "mask", storage.not_held()))
    if image is None:
        raise NotFound(NO_SUCH_IMAGE)
    return image


def share(user: User, school_class: SchoolClass, image_id) -> Image:
    """A member shares one of their images into the class gallery (an image is in one
    class gallery at most: sharing it here takes it out of another)."""
    if classes.membership(user, school_class) is None:
        raise Conflict("Only the class's members share into its gallery.", code="not_a_member")
    if not school_class.gallery:
        raise Conflict("This class's gallery is closed to sharing.", code="gallery_closed")
    image = _own_image(user, image_id)
    if image.class_id != school_class.id:
        image.class_id = school_class.id
        db.session.commit()
    return image


def unshare(user: User, school_class: SchoolClass, image_id) -> None:
    """Its owner takes an image out of the class gallery (a teacher hides it instead)."""
    image = _own_image(user, image_id)
    if image.class_id != school_class.id:
        raise NotFound(NO_SUCH_IMAGE)
    image.class_id = None
    db.session.commit()


def visible_image(viewer: User, school_class: SchoolClass, image_id) -> Image:
    """An image of the class the viewer may open: a teacher (or staff) any image of its
    pupils and anything shared into it; a pupil what the gallery shows. Held images are
    staff's only."""
    if classes.role_in(viewer, school_class) == classes.TEACHER:
        image = db.session.scalar(sa.select(Image).where(Image.id == str(image_id), sa.or_(
            Image.class_id == school_class.id,
            Image.user_id.in_(sa.select(ClassMember.user_id).where(ClassMember.class_id == school_class.id,
                                                                   ClassMember.role == classes.PUPIL)))))
        if image is not None and image.review == storage.HELD and not viewer.is_staff:
            image = None
    else:
        image = db.session.scalar(sa.select(Image).join(User, User.id == Image.user_id).where(
            Image.id == str(image_id), Image.class_id == school_class.id, _shown()))
    if image is None:
        raise NotFound(NO_SUCH_IMAGE)
    return image


def image_file(viewer: User, school_class: SchoolClass, image_id, variant: str) -> Path:
    return storage.file_of(visible_image(viewer, school_class, image_id), variant)
