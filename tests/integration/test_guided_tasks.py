"""Guided tasks through the real stack (web, Redis, a real worker with the tiny demo models
and the demo guides, worker/demo_guides.py): ControlNet units steer the picture (two
control images differ, weight 0 is no unit, the step range matters, the same inputs give
the same pixels), an annotator preprocessor (PiDiNet, random weights) makes its unit's map
in the worker at task time, an SDXL ControlNet, an SDXL ControlNet Union (two units in one
model) and a FLUX ControlNet Union run, an IP-Adapter reference changes the picture and
leaves nothing behind for the next task, and a FLUX.1 Kontext edit records its instruction
and its picture. Each picture, task and ZIP manifest records its guides."""
from __future__ import annotations

import base64
import csv
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.helpers import a1111_infotext_fields, random_pidinet
from tests.integration.helpers import ApiUser

SIZE = 64


@pytest.fixture(scope="module")
def guided_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker, app.server = shared.worker, shared.web(1)
    return app


@pytest.fixture(scope="module")
def guided_user(guided_stack):
    return ApiUser(guided_stack.test_client(), "guideuser")


def png_url(array: np.ndarray) -> str:
    out = io.BytesIO()
    PILImage.fromarray(array.astype(np.uint8)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def lines(axis: int) -> str:
    """White lines every 8 pixels on black, across (0) or down (1), as a data URL."""
    array = np.zeros((SIZE, SIZE, 3), np.uint8)
    if axis == 0:
        array[::8, :] = 255
    else:
        array[:, ::8] = 255
    return png_url(array)


def square_patch(colour) -> str:
    array = np.full((SIZE, SIZE, 3), 30, np.uint8)
    array[16:48, 16:48] = colour
    return png_url(array)


def control_unit(image: str, **settings) -> dict:
    return {"image": image, "model": "demo-controlnet-sd1", "preprocessor": "none", **settings}


def submitted(user, **params) -> str:
    response = user.submit(**{"model": "demo", "steps": 2, "seed": 5, **params})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def finished(user, task_id: str) -> dict:
    task = user.wait_task(task_id, timeout=180)
    assert task["state"] == "done", task
    return task


def first_picture(user, task: dict) -> tuple[np.ndarray, dict]:
    """The task's first picture (pixels) and its PNG's A1111 parameters."""
    with PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)) as picture:
        parameters = a1111_infotext_fields(picture.text.get("parameters", ""))
        return np.asarray(picture.convert("RGB"), dtype=np.int16), parameters


def manifest_row(user, task: dict) -> dict:
    """The first row of the manifest.csv in the task's ZIP."""
    response = user.get(f"/api/v1/tasks/{task['id']}/archive")
    assert response.status_code == 200, response.data[:200]
    manifest = zipfile.ZipFile(io.BytesIO(response.data)).read("manifest.csv").decode()
    return next(csv.DictReader(io.StringIO(manifest)))


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def unguided(guided_user) -> dict:
    """A task of the demo model without guides (seed 5), the others' measure."""
    return finished(guided_user, submitted(guided_user))


def test_control_units_steer_the_picture_and_are_recorded(guided_user, unguided):
    across, down = lines(0), lines(1)
    # Three at a time (a user's queue holds three): those that can share a call do (each
    # row its own map).
    tasks = {"plain": unguided}
    for group in ({"across": {"control": [control_unit(across)]}, "down": {"control": [control_unit(down)]}},
                  {"again": {"control": [control_unit(across)]}, "zero": {"control": [control_unit(across, weight=0)]},
                   "late": {"control": [control_unit(across, start=0.5)]}}):
        ids = {name: submitted(guided_user, **params) for name, params in group.items()}
        tasks.update({name: finished(guided_user, task_id) for name, task_id in ids.items()})
    got = {name: first_picture(guided_user, task)[0] for name, task in tasks.items()}
    assert mean_difference(got["across"], got["plain"]) > 3
    assert mean_difference(got["across"], got["down"]) > 3  # two control images: different pixels
    assert np.abs(got["again"] - got["across"]).max() <= 2  # the same inputs: the same pixels
    assert np.abs(got["zero"] - got["plain"]).max() <= 2  # weight 0: the picture of no unit
    assert mean_difference(got["late"], got["across"]) > 1  # the step range changes the result
    # The task and its picture record the unit (its picture stored as one of the user's).
    [unit] = tasks["across"]["control"]
    assert unit["model"] == "demo-controlnet-sd1" and unit["weight"] == 1.0 and not unit["image"].startswith("data:")
    _, parameters = first_picture(guided_user, tasks["late"])
    assert parameters["ControlNet 0"].startswith("Module: none, Model: ")
    assert "Weight: 1.0" in parameters["ControlNet 0"] and "Guidance Start: 0.5" in parameters["ControlNet 0"]
    metadata = guided_user.get(tasks["late"]["images"][0]["metadata_url"]).get_json()
    assert metadata["control"][0]["start"] == 0.5
    # The ZIP's manifest lists the unit (its picture by image id); no references, no edit.
    row = manifest_row(guided_user, tasks["late"])
    [listed] = json.loads(row["control"])
    assert listed == tasks["late"]["control"][0] and listed["start"] == 0.5 and not listed["image"].startswith("data:")
    assert row["references"] == "" and row["edit"] == ""


@pytest.fixture
def pidinet_weights(models_path):
    """Random PiDiNet weights in the models folder the stack reads, for this test only: the
    web tier (at submit) and the worker (at render) look annotators up per task, so a file
    written now is found; it is removed after, so the modules sharing the folder see an
    install without annotator weights again."""
    pytest.importorskip("controlnet_aux")
    folder = models_path / "annotators"
    made_folder = not folder.exists()
    path = random_pidinet(models_path)
    yield path
    path.unlink()
    if made_folder:
        folder.rmdir()


def test_an_annotator_preprocessor_makes_the_map_in_the_worker(guided_user, pidinet_weights):
    picture = square_patch((200, 80, 40))
    ids = {name: submitted(guided_user, control=[control_unit(picture, preprocessor=preprocessor, processor_res=64)])
           for name, preprocessor in (("none", "none"), ("pidinet", "softedge_pidinet"),
                                      ("again", "softedge_pidinet"))}
    tasks = {name: finished(guided_user, task_id) for name, task_id in ids.items()}
    got = {name: first_picture(guided_user, task) for name, task in tasks.items()}
    # The annotator's map, not the picture itself, reached the ControlNet; the same inputs
    # give the same pixels (each task's map made again).
    assert mean_difference(got["pidinet"][0], got["none"][0]) > 3
    assert np.abs(got["again"][0] - got["pidinet"][0]).max() <= 2
    [unit] = tasks["pidinet"]["control"]
    assert unit["preprocessor"] == "softedge_pidinet" and unit["model"] == "demo-controlnet-sd1"
    infotext = got["pidinet"][1]["ControlNet 0"]
    assert infotext.startswith("Module: softedge_pidinet, Model: ") and "Processor Res: 64" in infotext
    metadata = guided_user.get(tasks["pidinet"]["images"][0]["metadata_url"]).get_json()
    assert metadata["control"][0]["preprocessor"] == "softedge_pidinet"


def test_a_flux_controlnet_union_unit_runs_in_the_worker(guided_user):
    flux = {"model": "demo-flux", "steps": 2}
    plain = submitted(guided_user, **flux)
    guided = submitted(guided_user, control=[{"image": lines(0), "model": "demo-controlnet-flux",
                                             "preprocessor": "canny"}], **flux)
    plain_pixels, _ = first_picture(guided_user, finished(guided_user, plain))
    guided_pixels, parameters = first_picture(guided_user, finished(guided_user, guided))
    assert mean_difference(guided_pixels, plain_pixels) > 3
    assert "Module: canny" in parameters["ControlNet 0"] and "Threshold A: 100" in parameters["ControlNet 0"]


def test_an_sdxl_controlnet_unit_runs_in_the_worker(guided_user):
    sdxl = {"model": "demo-sdxl", "steps": 2}
    ids = {"plain": submitted(guided_user, **sdxl)}
    for name, axis in (("across", 0), ("down", 1)):
        ids[name] = submitted(guided_user, control=[{"image": lines(axis), "model": "demo-controlnet-sdxl",
                                                     "preprocessor": "none", "control_mode": "prompt"}], **sdxl)
    got = {name: first_picture(guided_user, finished(guided_user, task_id)) for name, task_id in ids.items()}
    assert mean_difference(got["across"][0], got["plain"][0]) > 3
    assert mean_difference(got["across"][0], got["down"][0]) > 1  # two control images: different pixels
    unit = got["across"][1]["ControlNet 0"]
    assert "Model: Demo ControlNet SDXL" in unit and "Control Mode: My prompt is more important" in unit


def test_an_sdxl_controlnet_union_runs_two_units_in_the_worker(guided_user):
    sdxl = {"model": "demo-sdxl", "steps": 2}
    plain = submitted(guided_user, **sdxl)
    union = {"model": "demo-controlnet-sdxl-union"}
    guided = submitted(guided_user, control=[{"image": lines(0), "preprocessor": "canny", **union},
                                             {"image": lines(1), "preprocessor": "tile", "weight": 0.5, **union}],
                       **sdxl)
    plain_pixels, _ = first_picture(guided_user, finished(guided_user, plain))
    task = finished(guided_user, guided)
    guided_pixels, parameters = first_picture(guided_user, task)
    assert mean_difference(guided_pixels, plain_pixels) > 3
    assert [unit["model"] for unit in task["control"]] == ["demo-controlnet-sdxl-union"] * 2
    name = "Model: Demo ControlNet Union SDXL (tiny, random)"
    assert parameters["ControlNet 0"].startswith(f"Module: canny, {name}, Weight: 1.0")
    assert parameters["ControlNet 1"].startswith(f"Module: tile, {name}, Weight: 0.5")


def test_a_reference_image_changes_the_picture_and_does_not_leak(guided_user, unguided):
    before, _ = first_picture(guided_user, unguided)
    ref = finished(guided_user, submitted(guided_user, references=[
        {"image": square_patch((200, 80, 40)), "model": "demo-ipadapter-sd1", "weight": 0.8}]))
    after, _ = first_picture(guided_user, finished(guided_user, submitted(guided_user)))
    guided, parameters = first_picture(guided_user, ref)
    assert mean_difference(guided, before) > 3
    assert np.abs(after - before).max() <= 2  # the next task runs without the adapter (alone: the
    # same pixels; a call it shared with another task's rows: float noise only)
    assert parameters["IP-Adapter 0"].endswith("Weight: 0.8")
    assert ref["references"][0]["model"] == "demo-ipadapter-sd1"
    row = manifest_row(guided_user, ref)
    assert json.loads(row["references"]) == ref["references"] and row["control"] == ""


def test_a_kontext_edit_records_its_instruction_and_its_picture(guided_user, unguided):
    source = unguided["images"][0]["id"]
    task = finished(guided_user, guided_user.submit(
        model="demo-kontext", prompt="make it winter", steps=2, seed=4,
        edit={"images": [source, square_patch((40, 200, 60))]}).get_json()["id"])
    pixels, parameters = first_picture(guided_user, task)
    assert pixels.shape[2] == 3 and task["prompt"] == "make it winter"
    pictures = task["edit"]["images"]
    assert pictures[0] == source and len(pictures) == 2 and not pictures[1].startswith("data:")
    metadata = guided_user.get(task["images"][0]["metadata_url"]).get_json()
    assert metadata["prompt"] == "make it winter" and metadata["edit"]["images"] == pictures
    assert parameters["Edit images"] == ", ".join(pictures)
    assert json.loads(manifest_row(guided_user, task)["edit"]) == {"images": pictures}
