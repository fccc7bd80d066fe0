"""The ZIP's manifest.csv: one row an image, with the parameters of its task, its LoRAs
included (as the PNG's parameters write them), read from a task's ZIP download."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import sqlalchemy as sa
from PIL import Image as PILImage

from tests.integration.helpers import ApiUser


def test_the_manifest_has_a_lora_column(fresh):
    app = fresh()
    client = app.test_client()
    user = ApiUser(client, "manifester")
    from extensions import db
    from models import Task, User
    from services.library import storage

    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.username == "manifester"))
        task = Task(user_id=owner.id, session_id=owner.sessionid, state="done", prompt="a lighthouse",
                    width=64, height=64, steps=4, guidance=7.5, samples=2, seed=7, scheduler="euler",
                    model="demo", loras=[{"id": "l1", "name": "ink-style", "weight": 0.8},
                                         {"id": "l2", "name": "paper", "weight": -0.5}])
        plain = Task(user_id=owner.id, session_id=owner.sessionid, state="done", prompt="a plain one",
                     width=64, height=64, steps=4, guidance=7.5, samples=1, seed=9, scheduler="euler",
                     model="demo")
        db.session.add_all([task, plain])
        db.session.flush()
        for row, index in ((task, 0), (task, 1), (plain, 0)):
            storage.save_image(user_id=owner.id, picture=PILImage.new("RGB", (64, 64), "teal"),
                               metadata=row.parameters(), task_id=row.id, index=index, seed=row.seed + index)
        db.session.commit()
        task_id, plain_id = task.id, plain.id

    rows = {}
    for tid in (task_id, plain_id):
        response = user.get(f"/api/v1/tasks/{tid}/archive")
        assert response.status_code == 200, response.data[:300]
        manifest = zipfile.ZipFile(io.BytesIO(response.data)).read("manifest.csv").decode()
        rows[tid] = list(csv.DictReader(io.StringIO(manifest)))
    assert "loras" in rows[task_id][0]
    assert [r["loras"] for r in rows[task_id]] == ["<lora:ink-style:0.8> <lora:paper:-0.5>"] * 2
    assert rows[plain_id][0]["loras"] == ""
    assert rows[task_id][0]["model"] == "demo"


def test_an_inpainted_image_brings_its_mask_and_settings(fresh):
    """The manifest names each image's mask and inpaint settings; the mask's PNG goes into
    the ZIP once (the task's download and a background archive alike), with no row of its own."""
    app = fresh()
    client = app.test_client()
    user = ApiUser(client, "masker")
    from extensions import db
    from models import Task, User
    from services.library import archives, storage

    inpaint = {"mask_blur": 4, "inpaint_area": "masked", "inpaint_padding": 32, "masked_content": "fill",
               "mask_invert": False, "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0}}
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.username == "masker"))
        picture = storage.save_image(user_id=owner.id, picture=PILImage.new("RGB", (64, 64), "navy"),
                                     kind="upload")
        mask_picture = PILImage.new("RGB", (64, 64), "black")
        mask_picture.paste("white", (16, 16, 48, 48))
        mask = storage.save_image(user_id=owner.id, picture=mask_picture, kind="mask")
        db.session.flush()
        task = Task(user_id=owner.id, session_id=owner.sessionid, state="done", prompt="a red door",
                    width=64, height=64, steps=2, guidance=7.5, samples=2, seed=3, scheduler="euler",
                    model="demo", init_image_id=picture.id, strength=0.75, mask_image_id=mask.id,
                    inpaint=inpaint)
        db.session.add(task)
        db.session.flush()
        results = [storage.save_image(user_id=owner.id, picture=PILImage.new("RGB", (64, 64), "red"),
                                      metadata=task.parameters(), task_id=task.id, index=i, seed=3 + i)
                   for i in range(2)]
        db.session.commit()
        task_id, mask_id, picture_id = task.id, mask.id, picture.id
        result_ids = [r.id for r in results]
        mask_bytes = storage.path_of(mask).read_bytes()

    response = user.get(f"/api/v1/tasks/{task_id}/archive")
    assert response.status_code == 200, response.data[:300]
    zf = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(zf.namelist()) == sorted([f"{task_id}_0.png", f"{task_id}_1.png", f"mask_{mask_id}.png",
                                            "manifest.csv"])
    assert zf.read(f"mask_{mask_id}.png") == mask_bytes
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert [r["file"] for r in rows] == [f"{task_id}_0.png", f"{task_id}_1.png"]  # the mask has no row
    assert {r["mask"] for r in rows} == {mask_id}
    assert {r["init_image"] for r in rows} == {picture_id} and {r["strength"] for r in rows} == {"0.75"}
    assert json.loads(rows[0]["inpaint"]) == inpaint

    # a background archive of the results and the mask itself: the mask once, under its own name
    with app.app_context():
        owner_id = db.session.scalar(sa.select(User.id).where(User.username == "masker"))
        names = [name for _path, name, _row in archives._items(owner_id, [*result_ids, mask_id, picture_id])]
    assert sorted(names) == sorted([f"{task_id}_0.png", f"{task_id}_1.png", f"mask_{mask_id}.png",
                                    f"upload_{picture_id}.png"])
    # without the mask in the selection it still comes along, once
    with app.app_context():
        names = [name for _path, name, row in archives._items(owner_id, result_ids) if row is None]
    assert names == [f"mask_{mask_id}.png"]
