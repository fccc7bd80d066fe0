"""The ZIP's manifest.csv: one row an image, with the parameters of its task, its LoRAs
included (as the PNG's parameters write them), read from a task's ZIP download."""
from __future__ import annotations

import csv
import io
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
