"""Tasks: submit, read, cancel, and the state transitions the worker and the
reconciler make. A task's state only moves forward, each move a conditional update
(services/core/transitions.py):

    queued → running            claim_next / claim_batch → start_task (the worker takes
                                the fairest, and the tasks of its round that share its call)
    running → done              complete_task (the worker saved every image);
                                finish_checked (some withheld by the image check: their
                                share refunded); fail_task with some images saved
    queued | running → failed   fail_task (the job raised; reconcile: its worker died);
                                finish_checked (every image withheld)
    queued | running → canceled cancel (the owner, staff, leaving the studio)

Every move and every refund is made here (_finish, the one place a task ends), through
services/accounts/credits.py, in the transaction of that move, so once: a failed task
is refunded in full, a task done with some images missing their share; a canceled task
keeps the images committed before the cancel and is refunded the share of the others
(none committed, a queued task always: in full). The worker commits a task's images
only while it is running (keep_images; its last with its end), so what the cancel
counts is what the owner keeps. Nothing else changes a task's state; the worker reports
what happened (images saved, withheld, an error) and calls these.

Every change costs the same whatever the queue's depth: the fair order is stored in
the rows (dispatch.py), a change is announced with one `queue` event (counts), and the
owner of a task gets `task` events for its own moves only; pages read the positions of
their own queued tasks when the queue changes (GET /api/v1/queue)."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta

import redis
import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Image, Task, TaskState, User, effective_steps, iso, utcnow
from services.accounts import caps, credits, tiers
from services.core import events, queue, redis_client, transitions
from services.core.errors import Conflict, NotFound, QueueFull, ServiceError, Unavailable, ValidationError
from services.generation import access, catalog, dispatch, estimates, guides, masks, upscalers
from services.generation.params import guide_cost, hires_cost, task_cost, validate_task_params
from services.library import boards, storage
from services.moderation import rules as prompt_rules

log = logging.getLogger(__name__)
UNFINISHED = TaskState.unfinished()


def limits_for(user: User) -> dict:
    """Staff have the staff limits; everyone else their subscription tier's."""
    if user.is_staff:
        return current_app.config["LIMITS"]["staff"]
    tier = tiers.tier_for(user)
    return {"max_side": tier["max_side"], "max_pixels": tier["max_pixels"],
            "max_samples": tier["max_samples"]}


def queue_share_for(user: User) -> int:
    """How many queued tasks the user may have: their tier's share (staff: the largest)."""
    if user.is_staff:
        return max([t["queue_share"] for t in tiers.tiers()] + [current_app.config["USER_QUEUE_LIMIT"]])
    return tiers.tier_for(user)["queue_share"]


def cost_for(user: User, params: dict) -> int:
    if user.is_staff and current_app.config["STAFF_FREE"]:
        return 0
    # Image to image (inpainting and outpainting too) is charged for the steps it runs,
    # int(steps × strength) (models.effective_steps); a hires fix adds its second pass at
    # the final size (params.hires_cost); the guides add their share (params.guide_cost:
    # an edit's, by its model's card).
    steps = effective_steps(params["steps"], params.get("init_image"), params.get("strength"))
    base = task_cost(steps, params["width"], params["height"], params["samples"]) + hires_cost(params)
    card = catalog.card_for(params["model"]) if params.get("edit") else None
    return base + guide_cost(params, base, card)


def check_params(user: User, data) -> dict:
    """The task's parameters checked (a 422 naming the field), its model and LoRAs among
    those the user may use (access.py: their plan's and classes'; no model named: the
    user's default)."""
    guided = isinstance(data, dict) and bool(data.get("control") or data.get("references"))
    params = validate_task_params(
        data, limits=limits_for(user), cards=catalog.cards(), default_model=access.default_model_for(user),
        loras=catalog.lora_table(), max_loras=current_app.config["MAX_LORAS"],
        upscalers=hires_upscalers() if isinstance(data, dict) and data.get("hires") else None,
        guide_models=catalog.guide_table() if guided else None,
        preprocessors=guides.preprocessors() if isinstance(data, dict) and data.get("control") else None,
        max_control=current_app.config["MAX_CONTROL"], max_references=current_app.config["MAX_REFERENCES"],
        picture_size=lambda value: guides.picture_size(user, value),
        fast_modes=catalog.fast_modes(),
    )
    access.check_task(user, params)
    return params


def check_hires_prompts(user: User, params: dict) -> None:
    """A hires fix's own prompts go through the prompt rules as the task's do (a refusal
    names hires)."""
    hires = params.get("hires") or {}
    if not (hires.get("prompt") or hires.get("negative_prompt")):
        return
    try:
        prompt_rules.check_prompt(user, {"prompt": hires.get("prompt") or "",
                                         "negative_prompt": hires.get("negative_prompt") or ""})
    except prompt_rules.PromptBlocked as exc:
        exc.field = "hires"
        raise


def hires_upscalers() -> dict:
    """{id: name} of the upscalers a hires fix may use beside the latent modes: the
    enabled upscaler models and the built-in resamplers (services/generation/upscalers.py)."""
    return {item["id"]: item["name"] for item in upscalers.available()}


def submit_task(user: User, data, idempotency_key: str | None = None) -> Task:
    """Validate, debit and create the task in one transaction, then enqueue its id.
    The same Idempotency-Key from the same user with the same request returns the first
    task; with another request it is a 422 (idempotency_key_reused)."""
    fingerprint = None
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()[:255] or None
    if idempotency_key:
        fingerprint = request_fingerprint(user, data)
        existing = _by_idempotency_key(user, idempotency_key)
        if existing:
            return _same_request(existing, fingerprint)
    params = check_params(user, data)
    prompt_rules.check_prompt(user, params)  # 422 prompt_blocked, recorded; nothing charged
    check_hires_prompts(user, params)
    if not redis_client.available():
        raise Unavailable("The queue (Redis) is unavailable; nothing was charged. "
                          "Try again in a moment.", headers={"Retry-After": "10"})
    catalog.check_fits(params["model"])  # 422 model_does_not_fit: the workers' GPU is too small
    init = None
    if params["init_image"]:
        init = db.session.scalar(sa.select(Image).where(  # (not one held for review: staff's only)
            Image.id == params["init_image"], Image.user_id == user.id, Image.review.is_distinct_from("held")))
        if init is None:
            raise ValidationError("init_image", "is not one of your images")
    if params["board_id"] and not boards.live_board_id(user.id, params["board_id"]):
        raise ValidationError("board_id", "is not one of your boards")
    mask, stored = None, []  # stored: new pictures (rows added, files written), removed with a refusal
    try:
        if params["mask"] and init is not None:
            # Read, checked and stored at the picture's size; a new mask's row is committed
            # with the task.
            inpaint = params["inpaint"]
            mask, new_mask = masks.task_mask(user, params["mask"], init, invert=inpaint["mask_invert"],
                                             widening=any(inpaint["outpaint"].values()))
            stored += [mask] if new_mask else []
        guides.store_pictures(user, params, stored)  # the guides' pictures, as ids of the user's
    except Exception:
        db.session.rollback()
        _discard(stored)
        raise
    task = Task(
        user_id=user.id, session_id=user.sessionid, state=TaskState.QUEUED.value,
        prompt=params["prompt"], negative_prompt=params["negative_prompt"],
        width=params["width"], height=params["height"], steps=params["steps"],
        guidance=params["guidance"], samples=params["samples"], seed=params["seed"],
        scheduler=params["scheduler"], model=params["model"],
        init_image_id=params["init_image"], strength=params["strength"], init_fit=params["init_fit"],
        loras=params["loras"] or None,
        mask_image_id=mask.id if mask is not None else None, inpaint=params["inpaint"],
        hires=params.get("hires"),
        control=params["control"], reference_images=params["references"], edit=params["edit"],
        board_id=params["board_id"], fast=params["fast"],
        cost=cost_for(user, params), idempotency_key=idempotency_key, idempotency_hash=fingerprint,
        fair_round=dispatch.next_round(user.id),
    )
    try:
        db.session.add(task)
        db.session.flush()
        caps.check(user, task.samples)  # images per hour and day (429 image_cap), counted with this task
        credits.debit_task(task)  # on PostgreSQL this locks the user's row until commit
        check_queue_bounds(user)
        db.session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race.
        db.session.rollback()
        _discard(stored)
        existing = _by_idempotency_key(user, idempotency_key) if idempotency_key else None
        if existing:
            return _same_request(existing, fingerprint)
        raise
    except Exception:
        db.session.rollback()
        _discard(stored)  # their rows went with the rollback
        raise
    try:
        queue.enqueue_slot(task.id)
    except redis.RedisError as exc:
        # Redis went away between the check above and now: the task stays queued and
        # the reconciler gives it a job when Redis is back (nothing is lost or refunded).
        log.error("enqueue of task %s failed (the reconciler will queue it): %s", task.id, exc)
    announce_task(task)
    announce_queue()
    return task


def _discard(images: list[Image]) -> None:
    """Remove the files of pictures stored for a task that was refused."""
    for image in images:
        storage.delete_files(image)


def check_queue_bounds(user: User) -> None:
    """Called after the new task is flushed: refuse it (429, the caller rolls back and
    nothing is debited) when the queue or the user's share of it is full."""
    config = current_app.config
    count = lambda *where: db.session.scalar(  # noqa: E731
        sa.select(sa.func.count()).select_from(Task).where(Task.state == TaskState.QUEUED.value, *where))
    share = queue_share_for(user)
    if count(Task.user_id == user.id) > share:
        raise QueueFull(f"You have {share} tasks waiting already, the most "
                        "allowed; submit this one when one of them starts. Nothing was charged.",
                        code="too_many_queued", headers={"Retry-After": str(estimates.retry_after())})
    if count() > config["QUEUE_LIMIT"]:
        raise QueueFull("The queue is full; try again shortly. Nothing was charged.",
                        headers={"Retry-After": str(estimates.retry_after())})


def request_fingerprint(user: User, data) -> str:
    """SHA-256 of a submit's request as sent, normalized: keys in order, 7.0 as 7, and an
    init image and a mask by their content (a compatibility client sends the picture
    itself again with a retry, which is stored as a new upload; a data URL's mask by the
    hash of its text)."""
    def normal(value):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {str(k): normal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normal(v) for v in value]
        return value

    def content(value):
        if not isinstance(value, str):
            return value
        if value.startswith("data:"):
            return "data:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
        image = db.session.scalar(sa.select(Image).where(Image.id == value, Image.user_id == user.id))
        if image is not None:
            try:  # its pixels (the stored file's metadata differs from upload to upload)
                with PILImage.open(storage.path_of(image)) as picture:
                    pixels = hashlib.sha256(picture.tobytes())
                return f"{picture.size[0]}x{picture.size[1]}:{pixels.hexdigest()}"
            except OSError:
                pass  # a missing or unreadable file: the id stands for it
        return value

    body = normal(data)
    if isinstance(body, dict):
        for field in ("init_image", "mask"):
            if field in body:
                body[field] = content(body[field])
        # The guides' pictures (issue 25) likewise: each unit's and reference's, the edit's.
        for field in ("control", "references"):
            for unit in body.get(field) if isinstance(body.get(field), list) else ():
                if isinstance(unit, dict) and "image" in unit:
                    unit["image"] = content(unit["image"])
        edit = body.get("edit")
        if isinstance(edit, dict) and isinstance(edit.get("images"), list):
            edit["images"] = [content(value) for value in edit["images"]]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _same_request(task: Task, fingerprint: str | None) -> Task:
    """The task of an Idempotency-Key used again, if it was for the same request."""
    if task.idempotency_hash and fingerprint and task.idempotency_hash != fingerprint:
        raise ServiceError("This Idempotency-Key was used for a different request (task "
                           f"{task.id}); send a new key with a new request.", code="idempotency_key_reused",
                           field="Idempotency-Key", status=422)
    return task


def _by_idempotency_key(user: User, idempotency_key: str) -> Task | None:
    return db.session.scalar(sa.select(Task).where(
        Task.user_id == user.id, Task.idempotency_key == idempotency_key))


def get_task(user: User, task_id: str) -> Task:
    """Another user's task is a 404, like one that does not exist."""
    task = db.session.scalar(sa.select(Task).where(Task.id == task_id, Task.user_id == user.id))
    if task is None:
        raise NotFound("No such task.")
    return task


def list_tasks(user: User, *, session: str | None, offset: int, limit: int) -> tuple[list[Task], int]:
    where = [Task.user_id == user.id]
    if session == "current":
        where.append(Task.session_id == user.sessionid)
    elif session:
        where.append(Task.session_id == session)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(*where))
    items = db.session.scalars(
        sa.select(Task).where(*where).order_by(Task.created_at.desc(), Task.id)
        .offset(offset).limit(limit)
    ).all()
    return list(items), total


def cancel_task(user: User, task_id: str) -> Task:
    """A queued task is taken off the queue (refunded in full); a running one is marked
    canceled at once and its worker stops at the next step: it keeps the images stored so
    far and is refunded the share of the others (_finish). Either way once."""
    return cancel(get_task(user, task_id))


def cancel(task: Task) -> Task:
    if task.finished:
        raise Conflict(f"The task is {task.state} already; only unfinished tasks can be canceled.")
    was = task.state
    if not _finish(task, TaskState.CANCELED, None):
        db.session.refresh(task)
        raise Conflict(f"The task is {task.state} already; only unfinished tasks can be canceled.")
    # A queued task's job stays in the RQ queue (finding it costs a scan of the queue):
    # the worker that takes it runs the fairest task left, or finds nothing to run.
    if was == TaskState.RUNNING.value:
        try:
            queue.request_stop(task.id)
        except redis.RedisError as exc:  # the worker checks the row's state as well
            log.warning("could not signal the cancel of %s: %s", task.id, exc)
    announce_queue()
    return task


def cancel_unfinished(user: User) -> int:
    """Cancel every queued or running task of the user (leaving the studio)."""
    canceled = 0
    for task in db.session.scalars(sa.select(Task).where(Task.user_id == user.id,
                                                         Task.state.in_(UNFINISHED))).all():
        try:
            cancel(task)
            canceled += 1
        except Conflict:
            pass
    return canceled


# --- transitions made by the worker and the reconciler ---------------------------

def _finish(task: Task, state: TaskState, error: str | None, from_states=UNFINISHED,
            refund: int = 0, refund_note: str = "") -> bool:
    """The one place a task ends. Refunds it in the same transaction: in full if it
    failed; `refund` tokens (the share of the images it did not deliver) if it is done
    with some missing; if it was canceled, the share of the images not committed by now
    (_refund_canceled). Only the call that makes the transition refunds, so a refund
    happens once."""
    def refund_if_owed() -> None:
        if state == TaskState.CANCELED:
            db.session.refresh(task)
            _refund_canceled(task)
        elif state == TaskState.FAILED:
            db.session.refresh(task)  # (the row as the move left it, under its lock)
            credits.refund_task(task)
        elif refund > 0:
            db.session.refresh(task)
            credits.refund_partly(task, refund, refund_note)

    if not transitions.advance(Task, task.id, from_states, then=refund_if_owed,
                               state=state.value, error=error, finished_at=utcnow()):
        return False
    try:
        queue.clear_progress(task.id)
    except redis.RedisError:
        pass
    announce_task(task)
    return True


def _refund_canceled(task: Task) -> None:
    """In the cancel's transaction, after its move (which holds the task's row: the
    worker's keep_images and its end wait for it, then find the task no longer running and
    roll their rows back): the images committed by now are the owner's, and the share of
    the others is refunded, rounded down as for a task done with some missing (the pool
    that paid gets it). None committed (a queued task, or a running one before its first
    image): refunded in full."""
    delivered = delivered_count(task)
    if not delivered:
        credits.refund_task(task)
        return
    missing = max(0, task.samples - delivered)
    share = share_of(task.cost, task.samples, missing)
    credits.refund_partly(task, share, f"canceled: {missing} of {task.samples} images not made")
    task.error = canceled_message(delivered, task.samples, share)


def canceled_message(delivered: int, samples: int, share: int) -> str:
    """A task canceled with some of its images made: its owner's note."""
    them = "it" if delivered == 1 else "them"
    missing = samples - delivered
    others = "the other one" if missing == 1 else f"the other {missing}"
    tokens = f" ({share} token{'s' if share != 1 else ''})" if share else ""
    refund = f", and the share of {others}{tokens} was refunded" if share else ""
    return f"Canceled with {delivered} of {samples} images made: you keep {them}{refund}."


def keep_images(task_id: str) -> bool:
    """Commit the images the worker stored for a running task that has more to come, in
    one transaction with a hold on the task's row (a write that changes nothing, only
    while it is running): a cancel is either before (the rows are rolled back, False: the
    worker removes their files) or after (it counts them)."""
    held = db.session.execute(sa.update(Task).where(Task.id == task_id, Task.state == TaskState.RUNNING.value)
                              .values(state=Task.state).execution_options(synchronize_session=False))
    if held.rowcount != 1:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def start_task(task_id: str, worker_name: str) -> Task | None:
    """queued → running. None when the task is gone or no longer queued (canceled)."""
    if not transitions.advance(Task, task_id, (TaskState.QUEUED.value,), state=TaskState.RUNNING.value,
                               started_at=utcnow(), worker=worker_name):
        return None
    task = db.session.get(Task, task_id)
    announce_task(task)
    return task


def idle_models_elsewhere(worker_name: str) -> set[str]:
    """Models loaded on the other live workers that run nothing now."""
    busy = set(db.session.scalars(sa.select(Task.worker).where(Task.state == TaskState.RUNNING.value)))
    try:
        alive = queue.workers()
    except Exception:  # no Redis: no hint, plain fairness
        return set()
    return {info.get("model") for name, info in alive.items()
            if name != worker_name and name not in busy and info.get("model")}


def claim_next(worker_name: str, loaded_model: str | None) -> Task | None:
    """Pick the fairest task from the first round (dispatch.pick) and move it queued →
    running for this worker. Several workers may race for it: the conditional update
    lets one win; the others pick again."""
    elsewhere = idle_models_elsewhere(worker_name)
    patience = timedelta(seconds=current_app.config["AFFINITY_WAIT"])
    for _ in range(20):
        first = dispatch.first_round()
        task = dispatch.pick([first] if first else [], loaded_model,
                             idle_elsewhere=elsewhere, patience=patience)
        if task is None:
            return None
        started = start_task(task.id, worker_name)
        if started is not None:
            return started
    return None


def claim_batch(worker_name: str, loaded_model: str | None, *, max_images: int,
                joins: Callable[[Task, Task], bool]) -> list[Task]:
    """[] when nothing is queued. Else the task claim_next would claim (the head, moved
    queued → running for this worker) followed by the queued tasks that can share its
    pipeline call: the tasks after the head in the fair order *within the same round*,
    taken in order while joins(head, task) is true and the images (sum of .samples,
    head included) stay <= max_images; it stops at the first task that cannot join, so
    a batch never lets a user jump ahead of a fairer user whose task cannot join. Each
    joiner is moved queued → running with start_task; one lost to another worker is skipped."""
    head = claim_next(worker_name, loaded_model)
    if head is None:
        return []
    room = max_images - head.samples
    # Each joiner brings an image at least; a few more are read for those lost to a race.
    after = dispatch.after_in_round(head, room + 8 if room > 0 else 0)
    return dispatch.join_batch(head, after, max_images=max_images, joins=joins,
                               start=lambda task: start_task(task.id, worker_name))


def complete_task(task: Task) -> bool:
    return _finish(task, TaskState.DONE, None, from_states=(TaskState.RUNNING.value,))


def fail_task(task_id: str, message: str, reason: str = "the worker stopped") -> bool:
    """The task's run went wrong (the job raised, its worker died). What it delivered
    (images saved before the failure) is kept and paid for: a running task with some of
    its images ends done, refunded the share of the others (`reason` says why they are
    missing); one with none fails, refunded in full, with `message`."""
    db.session.rollback()
    task = db.session.get(Task, task_id)
    if task is None:
        return False
    delivered = delivered_count(task) if task.state == TaskState.RUNNING.value else 0
    if delivered >= task.samples:
        return complete_task(task)
    if delivered:
        missing = task.samples - delivered
        share = share_of(task.cost, task.samples, missing)
        return finish_partly(task, missing, partly_message(delivered, task.samples, reason, share),
                             note=f"{missing} of {task.samples} images not made ({reason})")
    return _finish(task, TaskState.FAILED, message)


def delivered_count(task: Task) -> int:
    """The images a task delivered (saved, rows committed)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(
        Image.task_id == task.id, Image.kind == "result")) or 0


def share_of(cost: int, samples: int, missing: int) -> int:
    """The share of a task's cost of `missing` of its images, rounded down (never more
    than was paid)."""
    if cost <= 0 or samples <= 0 or missing <= 0:
        return 0
    return min(cost, cost * min(missing, samples) // samples)


def partly_message(delivered: int, samples: int, reason: str, share: int) -> str:
    others = samples - delivered
    tokens = (f"their share of the cost ({share} token{'s' if share != 1 else ''}) was refunded"
              if share else "no tokens were charged for them")
    return (f"{delivered} of {samples} images were made; the other{' ' + str(others) if others > 1 else ''} "
            f"could not be ({reason}), and {tokens}.")


def finish_partly(task: Task, missing: int, message: str, *, note: str) -> bool:
    """running → done with `missing` of its images not delivered (not made, or withheld
    by the image check): refunded their share of the cost in the same transaction, with
    `message` as the task's note. Every image missing: failed, refunded in full."""
    if missing >= task.samples:
        return _finish(task, TaskState.FAILED, message)
    return _finish(task, TaskState.DONE, message, from_states=(TaskState.RUNNING.value,),
                   refund=share_of(task.cost, task.samples, missing), refund_note=note)


def withheld_message(count: int, samples: int, refunded: int) -> str:
    """The task's message when the image check withheld `count` of its images."""
    if count >= samples:
        which = "The image was" if samples == 1 else f"All {samples} images were"
        return f"{which} withheld by the image check; your tokens were refunded."
    images = "images was" if count == 1 else "images were"  # "1 of 4 images was"
    its = "its" if count == 1 else "their"
    tokens = (f"{its} share of the cost ({refunded} token{'s' if refunded != 1 else ''}) was refunded"
              if refunded else "no tokens were charged for " + ("it" if count == 1 else "them"))
    return f"{count} of {samples} {images} withheld by the image check; {tokens}."


def finish_checked(task: Task, withheld_count: int) -> bool:
    """End a task whose every image is saved or was withheld by the image check
    (worker/safety.py gives the verdicts; the worker counts what it withheld). None
    withheld: done. Some: done, with the message and a refund of their share (a ledger
    row) in the same transaction. All: failed, refunded in full (the studio shows a
    failed task's message)."""
    if withheld_count <= 0:
        return complete_task(task)
    share = share_of(task.cost, task.samples, withheld_count)
    message = withheld_message(withheld_count, task.samples,
                               task.cost if withheld_count >= task.samples else share)
    return finish_partly(task, withheld_count, message,
                         note=f"{withheld_count} of {task.samples} images withheld by the image check")


def reconcile() -> dict:
    """Settle tasks whose job was lost: a running task whose worker's heartbeat is gone
    (services/core/liveness.py) fails and is refunded; when queued tasks outnumber the jobs
    waiting to run them (a Redis restart lost jobs), jobs are added, whatever the tasks'
    age (a spare job is harmless: it finds nothing to run). Runs at worker start-up and,
    from one worker at a time, every RECONCILE_INTERVAL seconds (worker/heartbeat.py)."""
    alive = queue.workers()
    settled = {"failed": 0, "requeued": 0}
    for task in db.session.scalars(sa.select(Task).where(Task.state == TaskState.RUNNING.value)).all():
        if task.worker not in alive:
            if fail_task(task.id, "The worker running this task stopped. Your tokens "
                                  "were refunded; submit it again."):
                settled["failed"] += 1
                queue.request_stop(task.id)  # were it only frozen, it stops when it wakes
    queued = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.state == TaskState.QUEUED.value))
    missing = queued - queue.waiting_jobs()  # spare jobs (of canceled tasks) are harmless
    for row in dispatch.ahead(missing):
        queue.enqueue_slot(row.id)
        settled["requeued"] += 1
    if settled["failed"] or settled["requeued"]:
        announce_queue()
    return settled


# --- what the API and the pages show ----------------------------------------------

def task_to_dict(task: Task, positions: dict[str, int] | None = None) -> dict:
    """positions: queued task id → position (dispatch.positions), when the caller has
    them for several tasks; else a queued task's position is read on its own."""
    live = {}
    position = None
    if task.state == TaskState.RUNNING.value:
        try:
            live = queue.get_progress(task.id) or {}
        except redis.RedisError:
            pass
    elif task.state == TaskState.QUEUED.value:
        position = dispatch.position_of(task) if positions is None else positions.get(task.id)
    total = live.get("total", task.effective_steps * task.samples)
    step = total if task.state == TaskState.DONE.value else live.get("step", 0)
    run_s = eta_s = None
    if task.state in (TaskState.QUEUED.value, TaskState.RUNNING.value):
        try:
            # run_s: the server's estimate of the whole run, shown before any progress.
            run_s = estimates.run_seconds(task)
            if task.state == TaskState.RUNNING.value:
                # The worker's live ETA, aged since it was written (the estimate line adds
                # up the same numbers); before the worker's first, the run estimate.
                eta_s = estimates.remaining_seconds(task)
        except redis.RedisError:
            pass
    return {
        "id": task.id,
        "state": task.state,
        **task.parameters(),
        "hires": dict(task.hires) if task.hires else None,
        # The guides (issue 25), always there: [] / null where the task has none.
        "control": [dict(unit) for unit in task.control or ()],
        "references": [dict(ref) for ref in task.reference_images or ()],
        "edit": dict(task.edit) if task.edit else None,
        "upscale": dict(task.upscale) if task.upscale else None,  # {image, scale, upscaler, refine}
        "board_id": task.board_id,
        "cost": task.cost,
        "refunded": task.refunded,
        "session_id": task.session_id,
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "duration_s": task.duration_s,
        "position": position,
        "progress": {"step": step, "total": total},
        "eta_s": None if eta_s is None else round(eta_s, 1),
        "run_s": None if run_s is None else round(run_s, 2),
        "images": [image.to_dict() for image in task.images],
        "error": task.error,
    }


def event_payload(task: Task, positions: dict[str, int] | None = None) -> dict:
    data = task_to_dict(task, positions)
    return {"id": task.id, "state": task.state, "step": data["progress"]["step"],
            "total": data["progress"]["total"], "eta_s": data["eta_s"], "run_s": data["run_s"],
            "position": data["position"], "images": data["images"], "error": task.error,
            "refunded": task.refunded, "seed": task.seed}


def announce_task(task: Task) -> None:
    """The task's owner gets a `task` event with its row as it is now (the studio
    updates its card). Never raises."""
    try:
        events.emit_task(task.user.room, event_payload(task))
    except Exception as exc:  # live events are a convenience; the row is the truth
        log.warning("could not emit task event: %s", exc)


def queue_stats() -> dict:
    counts = dict(db.session.execute(sa.select(Task.state, sa.func.count()).where(
        Task.state.in_(UNFINISHED)).group_by(Task.state)).all())
    return {"queued": counts.get(TaskState.QUEUED.value, 0),
            "running": counts.get(TaskState.RUNNING.value, 0)}


def announce_queue() -> None:
    """The queue changed: one `queue` event (the counts) to everyone, whatever the
    queue's depth. Pages with queued tasks read their new positions from GET
    /api/v1/queue (debounced); the owner of a task that moved got its own `task` event."""
    try:
        events.emit_queue(queue_stats())
    except Exception as exc:
        log.warning("could not announce the queue: %s", exc)
