"""The class pages (/classes): the classes you teach or learn in, and a class's page:
for its teachers (and staff) the Class page (members, each pupil's images, join codes,
settings, the class gallery, what was done), for its pupils the class gallery and their
own images to share. The page is rendered here, its parts as partials fetched again by
site/static/js/pages/class/main.js; its actions go to the JSON API (views/api/classes.py).
Another class answers 404 (services/accounts/classes.py:class_for)."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_login import current_user

from services.accounts import class_gallery, class_members, class_settings, classes, join_codes
from views.access import require_sign_in

bp = Blueprint("classes", __name__)
bp.before_request(require_sign_in)  # every page here is for a signed-in user (views/access.py)

IMAGES_PAGE = 24
AUDIT_PAGE = 20


@bp.app_context_processor
def class_link() -> dict:
    """Whether the navigation shows "Classes": to members of a class and to staff."""
    def shown() -> bool:
        if "in_a_class" not in g:
            g.in_a_class = current_user.is_authenticated and (current_user.is_staff
                                                              or classes.in_any_class(current_user))
        return g.in_a_class
    return {"show_classes_link": shown}


def _me():
    return current_user._get_current_object()


def _offset() -> int:
    return max(0, request.args.get("offset", 0, type=int))


@bp.get("/classes")
def index():
    return render_template("classes/index.html", mine=classes.classes_of(_me()))


@bp.get("/classes/<class_id>")
def page(class_id: str):
    school_class = classes.class_for(_me(), class_id)
    teaching = classes.role_in(_me(), school_class) == classes.TEACHER
    context = {"school_class": school_class, "teaching": teaching, "info": classes.class_dict(school_class),
               "member": classes.membership(_me(), school_class) is not None,
               **gallery_context(school_class, 0)}
    if teaching:
        context.update(members=class_members.members(school_class), codes=join_codes.list_codes(school_class),
                       settings=class_settings.settings_dict(school_class),
                       model_choices=class_settings.model_choices(), lora_choices=class_settings.lora_choices(),
                       **audit_context(school_class, 0))
    if context["member"]:
        context.update(own_context(school_class, 0))
    return render_template("classes/class.html", **context)


# --- partials: the page renders them first, then pages/class/main.js fetches them again ---

@bp.get("/classes/<class_id>/members")
def members(class_id: str):
    school_class = classes.class_for(_me(), class_id, teach=True)
    return render_template("classes/_members.html", school_class=school_class,
                           members=class_members.members(school_class))


@bp.get("/classes/<class_id>/codes")
def codes(class_id: str):
    school_class = classes.class_for(_me(), class_id, teach=True)
    return render_template("classes/_codes.html", school_class=school_class, codes=join_codes.list_codes(school_class))


def audit_context(school_class, offset: int) -> dict:
    rows, total = classes.audit_rows(school_class, offset=offset, limit=AUDIT_PAGE)
    return {"audit": rows, "audit_total": total, "audit_offset": offset, "audit_limit": AUDIT_PAGE}


@bp.get("/classes/<class_id>/audit")
def audit(class_id: str):
    school_class = classes.class_for(_me(), class_id, teach=True)
    return render_template("classes/_audit.html", **audit_context(school_class, _offset()))


@bp.get("/classes/<class_id>/pupils/<user_id>/images")
def pupil_images(class_id: str, user_id: str):
    school_class = classes.class_for(_me(), class_id, teach=True)
    pupil = class_members.pupil(school_class, user_id)
    offset = _offset()
    items, total = class_members.pupil_images(school_class, user_id, offset=offset, limit=IMAGES_PAGE)
    return render_template("classes/_pupil_images.html", school_class=school_class, pupil=pupil, images=items,
                           images_total=total, images_offset=offset, images_limit=IMAGES_PAGE)


def gallery_context(school_class, offset: int) -> dict:
    items, total = class_gallery.gallery_images(school_class, offset=offset, limit=IMAGES_PAGE)
    return {"gallery": items, "gallery_total": total, "gallery_offset": offset, "gallery_limit": IMAGES_PAGE}


@bp.get("/classes/<class_id>/gallery")
def gallery(class_id: str):
    school_class = classes.class_for(_me(), class_id)
    teaching = classes.role_in(_me(), school_class) == classes.TEACHER
    return render_template("classes/_gallery.html", school_class=school_class, teaching=teaching,
                           **gallery_context(school_class, _offset()))


def own_context(school_class, offset: int) -> dict:
    items, total = class_gallery.own_images(_me(), school_class, offset=offset, limit=IMAGES_PAGE)
    return {"own": items, "own_total": total, "own_offset": offset, "own_limit": IMAGES_PAGE}


@bp.get("/classes/<class_id>/mine")
def own_images(class_id: str):
    school_class = classes.class_for(_me(), class_id)
    return render_template("classes/_own_images.html", school_class=school_class,
                           **own_context(school_class, _offset()))
