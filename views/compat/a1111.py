"""AUTOMATIC1111's web UI API, /sdapi/v1 (docs/TOOLS.md): what Open WebUI, SillyTavern,
LibreChat's Stable Diffusion tool and the `webuiapi` package call, and sd-webui-controlnet's
/controlnet routes. Field names and types as A1111's modules/api/models.py; errors as its
api.py's handler writes them: {"error", "detail", "body", "errors"} (views/errors.py), a
404 under /controlnet too. txt2img and img2img hold the request until the task ends
(services/generation/compat/)."""
from __future__ import annotations

import json

from flask import Blueprint, jsonify, request

from models import TaskState
from services.core.errors import ValidationError
from services.generation import access, tasks
from services.generation.compat import a1111, a1111_controlnet, a1111_extras, a1111_options, common, holding
from services.library import pnginfo
from views.compat.common import authenticate, client_watch
from views.errors import Shape, error_response

PREFIX = "/sdapi/v1"
bp = Blueprint("compat_a1111", __name__)

# Every route of this API, for a 405 that names the allowed methods (the catch-all
# below answers the rest in A1111's shape rather than as a page).
ROUTES: dict[str, tuple[str, ...]] = {}


def route(path: str, methods=("GET",)):
    ROUTES[path] = ROUTES.get(path, ()) + tuple(methods)
    return bp.route(PREFIX + path, methods=list(methods))


def answer_error(status: int, name: str, message: str, headers: dict | None = None):
    """An answer in A1111's error shape (errors raised anywhere take it too: views/errors.py)."""
    return error_response(status, "error", message, headers, shape=Shape.A1111, name=name)


@bp.before_request
def before():
    if request.path == "/internal/ping":
        return None
    authenticate()
    return None


def _body() -> dict:
    return request.json_object(not_object=ValidationError("body", "send a JSON object"))


def _user():
    from flask_login import current_user

    return current_user._get_current_object()


# --- generating --------------------------------------------------------------------------

def _generate(img2img: bool):
    user = _user()
    body = _body()
    params = a1111.a1111_params(user, body, img2img=img2img)
    holding.require_worker()
    key = request.headers.get("Idempotency-Key")
    with holding.Holding():
        if img2img:
            images = body.get("init_images")
            if not isinstance(images, list) or not images:
                raise ValidationError("init_images", "send one base64-encoded image in a list")
            if len(images) > 1:
                raise ValidationError("init_images", "one init image per request is supported here")
            picture = a1111.decode_base64_image(images[0], "init_images")
            mask = a1111.decode_base64_image(body["mask"], "mask") if a1111.has_mask(body) else None
            task = common.submit_with_picture(user, params, picture, "init_images", key, mask=mask,
                                              mask_reading="a1111", on_stored=a1111_controlnet.use_init_image)
        else:
            task = tasks.submit_task(user, params, key)
        task = holding.wait_for_task(task, pause=client_watch())
    if task is None:  # the client went away; nobody reads this
        return answer_error(499, "ClientClosedRequest", "The client closed the connection.")
    if task.state == TaskState.FAILED.value:
        return answer_error(500, "GenerationFailed", task.error or "The generation failed; your tokens were refunded.")
    send = body.get("send_images", True) is not False
    # (an image held for review by the image check is staff's only: never sent)
    images = [common.image_base64(image) for image in task.images if image.review != "held"] if send else []
    info = a1111.a1111_info(task, body, img2img=img2img)
    if task.state == TaskState.CANCELED.value:
        info["interrupted"] = True  # as A1111 answers an interrupted job: what was made (nothing)
    return jsonify({"images": images, "parameters": a1111.a1111_parameters(task, body, img2img=img2img),
                    "info": json.dumps(info)})


def _extras(batch: bool):
    """Extras: each picture an upscale task of the caller's, held until done like txt2img."""
    user = _user()
    body = _body()
    job = a1111_extras.extras_job(body, batch=batch)
    holding.require_worker()
    with holding.Holding():
        groups = a1111_extras.submit_extras(user, job, request.headers.get("Idempotency-Key"))
        groups = a1111_extras.wait_all(groups, client_watch())
    if groups is None:  # the client went away; nobody reads this
        return answer_error(499, "ClientClosedRequest", "The client closed the connection.")
    images, info = a1111_extras.answer(job, groups)
    if batch:
        return jsonify({"html_info": info, "images": images})
    return jsonify({"html_info": info, "image": images[0]})


@route("/extra-single-image", methods=("POST",))
def extra_single_image():
    return _extras(batch=False)


@route("/extra-batch-images", methods=("POST",))
def extra_batch_images():
    return _extras(batch=True)


@route("/png-info", methods=("POST",))
def png_info():
    """A picture's generation settings, as A1111 answers them: {info (the infotext), items
    (its other text metadata), parameters (the infotext as A1111 parses it)}."""
    image = _body().get("image")
    if isinstance(image, str) and not image.strip():
        return jsonify({"info": "", "items": {}, "parameters": {}})
    texts = pnginfo.image_texts(a1111.decode_base64_image(image, "image"), "image")
    found = pnginfo.read_texts(texts)
    items = {key: value for key, value in texts.items() if key != "parameters"}
    return jsonify({"info": found["text"], "items": items, "parameters": pnginfo.parse_infotext(found["text"])})


@route("/txt2img", methods=("POST",))
def txt2img():
    return _generate(img2img=False)


@route("/img2img", methods=("POST",))
def img2img():
    return _generate(img2img=True)


# --- the caller's running task ------------------------------------------------------------

def _flag(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None:
        body = request.get_json(silent=True)
        raw = body.get(name) if isinstance(body, dict) else None
    return raw is True or (isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes"))


@route("/progress")
def progress():
    return jsonify(a1111.progress(_user(), with_image=not _flag("skip_current_image")))


@route("/interrupt", methods=("POST",))
def interrupt():
    holding.interrupt(_user())
    return jsonify({})


@route("/skip", methods=("POST",))
def skip():
    holding.interrupt(_user())
    return jsonify({})


# --- what there is ---------------------------------------------------------------------

def _model_item(row) -> dict:
    return {"title": common.model_title(row), "model_name": row.id, "hash": common.short_hash(row.id),
            "sha256": None, "filename": row.id, "config": None}


@route("/sd-models")
def sd_models():
    return jsonify([_model_item(row) for row in access.usable_models(_user())])


@route("/refresh-checkpoints", methods=("POST",))
def refresh_checkpoints():
    return jsonify(None)  # staff rescan the models folder on Admin → Models


@route("/samplers")
def samplers():
    aliases = {}
    for key, label in a1111.A1111_SAMPLER_NAMES.items():
        aliases.setdefault(label, []).append(key)
    return jsonify([{"name": name, "aliases": aliases.get(name, []), "options": {}}
                    for name in a1111.sampler_names()])


@route("/schedulers")
def schedulers():
    return jsonify([{"name": name, "label": label, "aliases": None,
                     "default_rho": 7.0 if name == "karras" else -1.0, "need_inner_model": False}
                    for name, label in a1111.SCHEDULE_TYPES])


@route("/loras")
def loras():
    return jsonify([{"name": row.name, "alias": row.name, "path": row.id,
                     "metadata": {"family": row.family or "sd1"}} for row in access.usable_loras(_user())])


EMPTY_LISTS = ("/sd-vae", "/hypernetworks", "/face-restorers",
               "/realesrgan-models", "/prompt-styles", "/script-info", "/extensions", "/sd-modules")
for _path in EMPTY_LISTS:
    bp.add_url_rule(PREFIX + _path, f"empty{_path.replace('-', '_').replace('/', '_')}", lambda: jsonify([]))
    ROUTES[_path] = ("GET",)


@route("/upscalers")
def upscalers():
    return jsonify(a1111_extras.upscaler_list())


@route("/latent-upscale-modes")
def latent_upscale_modes():
    return jsonify(a1111_extras.latent_modes())


@route("/scripts")
def scripts():
    return jsonify({"txt2img": [], "img2img": []})


@route("/embeddings")
def embeddings():
    return jsonify({"loaded": {}, "skipped": {}})


@route("/options")
def get_options():
    return jsonify(a1111_options.options_for(_user()))


@route("/options", methods=("POST",))
def set_options():
    a1111_options.set_options(_user(), _body())
    return jsonify(None)


@route("/cmd-flags")
def cmd_flags():
    return jsonify({"api": True, "api_auth": None, "nowebui": True, "listen": False, "port": None,
                    "lowvram": False, "medvram": False, "xformers": False, "no_half": False,
                    "hide_ui_dir_config": True, "enable_insecure_extension_access": False,
                    "data_dir": "", "ckpt_dir": None, "lora_dir": ""})


@route("/memory")
def memory():
    return jsonify({"ram": {}, "cuda": {}})


# --- sd-webui-controlnet's routes (its units ride on txt2img and img2img; any other path
# under /controlnet answers a 404 in A1111's shape: views/errors.py) -----------------------

@bp.get("/controlnet/version")
def controlnet_version():
    return jsonify({"version": a1111_controlnet.API_VERSION})


@bp.get("/controlnet/model_list")
def controlnet_model_list():
    return jsonify({"model_list": a1111_controlnet.model_list(_user())})


@bp.get("/controlnet/module_list")
def controlnet_module_list():
    user = _user()
    names = a1111_controlnet.module_list(user)
    return jsonify({"module_list": names, "module_detail": a1111_controlnet.module_detail(user, names)})


@bp.get("/controlnet/settings")
def controlnet_settings():
    return jsonify({"control_net_unit_count": a1111_controlnet.unit_count()})


@bp.post("/controlnet/detect")
def controlnet_detect():
    """The maps a module makes of the pictures: {"images": [base64 PNG], "info": "Success"}."""
    return jsonify({"images": a1111_controlnet.detect(_user(), _body()), "info": "Success"})


@bp.get("/internal/ping")
def ping():
    return jsonify({})


@bp.route(PREFIX + "/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_here(rest: str):
    allowed = ROUTES.get("/" + rest)
    if allowed:
        return answer_error(405, "HTTPException", "Method Not Allowed", {"Allow": ", ".join(allowed)})
    return answer_error(404, "HTTPException", "Not Found")
