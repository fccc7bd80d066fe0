"""ControlNet preprocessors (services/generation/preprocess.py): the built-ins make the
maps they say, at the processor resolution, the same bytes every time; settings out of
range are a 422 naming their field; annotators are offered only with their weights."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.core.errors import ValidationError
from services.generation import annotators, preprocess
from tests.helpers import random_pidinet


def square_picture(size=(96, 64), box=(24, 16, 72, 48), inside="white", outside="black") -> Image.Image:
    picture = Image.new("RGB", size, outside)
    ImageDraw.Draw(picture).rectangle(box, fill=inside)
    return picture


def pen_drawing(ground="white", ink="black", width=1) -> Image.Image:
    """A drawing: a thin line and a circle."""
    picture = Image.new("RGB", (128, 128), ground)
    draw = ImageDraw.Draw(picture)
    draw.line((10, 100, 118, 20), fill=ink, width=width)
    draw.ellipse((30, 30, 70, 70), outline=ink, width=width)
    return picture


def gray_values(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("L"), dtype=np.int32)


def test_the_builtins_are_listed_without_any_annotator_weights(tmp_path):
    (tmp_path / "annotators").mkdir()
    (tmp_path / "annotators" / "sk_model.pth").write_bytes(b"half of lineart_realistic's files")
    listed = preprocess.available(tmp_path)
    assert [item["id"] for item in listed] == ["none", "canny", "scribble", "lineart", "tile", "inpaint"]
    canny = next(item for item in listed if item["id"] == "canny")
    assert canny["builtin"] and canny["union_type"] == 0 and not canny["needs_mask"]
    assert canny["thresholds"]["a"]["default"] == 100 and canny["thresholds"]["b"]["default"] == 200
    assert next(item for item in listed if item["id"] == "inpaint")["needs_mask"]
    # An SDXL ControlNet Union's mode (xinsir's order): lines 3, scribble 2, tile 6, repaint 7.
    assert {item["id"]: item["sdxl_union_type"] for item in listed} == {
        "none": None, "canny": 3, "scribble": 2, "lineart": 3, "tile": 6, "inpaint": 7}
    assert {key: annotators.ANNOTATORS[key].sdxl_union_type for key in (
        "openpose_full", "depth_midas", "softedge_pidinet", "scribble_hed", "lineart_anime", "mlsd", "normal_bae")} \
        == {"openpose_full": 0, "depth_midas": 1, "softedge_pidinet": 2, "scribble_hed": 2, "lineart_anime": 3,
            "mlsd": 3, "normal_bae": 4}
    with pytest.raises(ValidationError) as refused:
        preprocess.run(square_picture(), "lineart_realistic", models_path=tmp_path)
    assert refused.value.field == "preprocessor"


def test_the_map_is_made_at_the_processor_resolution_along_the_short_side():
    assert preprocess.map_size((200, 100), 64) == (128, 64)
    assert preprocess.map_size((100, 300), 512) == (512, 1536)
    for name in preprocess.BUILTIN - {"inpaint"}:
        assert preprocess.run(square_picture((200, 100)), name, resolution=64).size == (128, 64), name
    inpainted = preprocess.run(square_picture((200, 100)), "inpaint", resolution=64,
                               mask=Image.new("L", (200, 100), 255))
    assert inpainted.size == (128, 64)


def test_canny_finds_the_edges_of_a_square_and_the_same_bytes_every_time():
    first = preprocess.run(square_picture(), "canny", resolution=64)
    again = preprocess.run(square_picture(), "canny", resolution=64)
    assert first.mode == "RGB" and first.size == (96, 64)
    assert first.tobytes() == again.tobytes()
    edges = gray_values(first) > 0
    assert set(np.unique(gray_values(first))) == {0, 255}
    # Every edge pixel lies on the square's outline (within a pixel); the outline is found
    # all round, and inside and outside it nothing is.
    ys, xs = np.nonzero(edges)
    on_outline = (np.minimum.reduce([abs(xs - 24), abs(xs - 72), abs(ys - 16), abs(ys - 48)]) <= 1)
    assert on_outline.all()
    assert edges[16:49, 22:27].any(axis=1).all() and edges[16:49, 70:75].any(axis=1).all()
    assert edges[14:19, 24:73].any(axis=0).all() and edges[46:51, 24:73].any(axis=0).all()
    assert not edges[20:45, 28:69].any() and not edges[:10].any()


def test_canny_thresholds_decide_which_edges_count():
    picture = Image.new("RGB", (128, 64), (60, 60, 60))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((8, 8, 56, 56), fill=(90, 90, 90))  # a faint square
    draw.rectangle((72, 8, 120, 56), fill=(255, 255, 255))  # a bright one
    sensitive = gray_values(preprocess.run(picture, "canny", resolution=64, threshold_a=10, threshold_b=50)) > 0
    default = gray_values(preprocess.run(picture, "canny", resolution=64)) > 0
    assert sensitive[:, :64].sum() > 50 and not default[:, :64].any()  # the faint square only at low ones
    assert default[:, 64:].sum() > 50 and (sensitive[:, 64:] == default[:, 64:]).all()


def test_scribble_is_white_thickened_strokes_on_black_whatever_the_drawing_s_ground():
    on_paper = preprocess.run(pen_drawing(), "scribble", resolution=128)
    on_canvas = preprocess.run(pen_drawing(ground="black", ink="white"), "scribble", resolution=128)
    assert on_paper.tobytes() == on_canvas.tobytes()
    values = gray_values(on_paper)
    assert set(np.unique(values)) == {0, 255}
    assert (values == 0).mean() > 0.8  # a black ground
    thin = (gray_values(pen_drawing(ground="black", ink="white")) > 127).sum()
    assert (values == 255).sum() > 1.5 * thin  # thickened
    assert values[100, 10] == 255 and values[50, 50] == 0  # on the line; inside the circle


def test_lineart_is_clean_white_lines_on_black():
    drawing = pen_drawing(width=2)
    grain = np.asarray(drawing, dtype=np.int32) - np.random.default_rng(0).integers(0, 20, (128, 128, 1))
    drawn = preprocess.run(Image.fromarray(grain.clip(0, 255).astype(np.uint8)), "lineart", resolution=128)
    values = gray_values(drawn)
    assert values[100, 10] > 200 and values[50, 50] == 0 and values[5, 120] == 0  # the paper's grain is gone
    assert (values == 0).mean() > 0.8
    assert drawn.tobytes() == preprocess.run(Image.fromarray(grain.clip(0, 255).astype(np.uint8)), "lineart",
                                             resolution=128).tobytes()


def test_tile_blurs_by_its_down_sampling_rate():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    as_is = preprocess.run(picture, "tile", resolution=64)
    assert as_is.tobytes() == preprocess.run(picture, "none", resolution=64).tobytes() == picture.tobytes()
    blurred = preprocess.run(picture, "tile", resolution=64, threshold_a=4)
    assert blurred.size == (64, 64)
    # Neighbouring pixels differ far less once the detail under 4 px is gone.
    assert np.abs(np.diff(gray_values(blurred), axis=1)).mean() < 0.5 * np.abs(np.diff(gray_values(as_is), axis=1)).mean()


def test_inpaint_blacks_out_the_masked_area_and_marks_it_for_the_controlnet():
    picture = Image.new("RGB", (64, 64), (200, 100, 50))
    with pytest.raises(ValidationError) as refused:
        preprocess.run(picture, "inpaint", resolution=64)
    assert refused.value.field == "mask"
    mask = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 63, 127), fill=255)  # the left half, at twice the size
    made = preprocess.run(picture, "inpaint", resolution=64, mask=mask)
    assert made.mode == "RGBA" and made.size == (64, 64)
    rgba = np.asarray(made)
    assert (rgba[:, :32, :3] == 0).all() and (rgba[:, :32, 3] == 0).all()
    assert (rgba[:, 32:, :3] == (200, 100, 50)).all() and (rgba[:, 32:, 3] == 255).all()
    condition = preprocess.inpaint_condition(made)
    assert (condition[:, :32] == -1).all() and np.allclose(condition[:, 32:], np.array([200, 100, 50]) / 255)


@pytest.mark.parametrize("settings, field", [
    ({"threshold_a": 0}, "threshold_a"), ({"threshold_b": 256}, "threshold_b"),
    ({"threshold_a": "high"}, "threshold_a"), ({"threshold_a": True}, "threshold_a"),
    ({"resolution": 32}, "processor_res"), ({"resolution": 4096}, "processor_res"),
    ({"resolution": 512.5}, "processor_res"), ({"resolution": True}, "processor_res")])
def test_settings_out_of_range_are_refused_naming_the_field(settings, field):
    with pytest.raises(ValidationError) as refused:
        preprocess.run(square_picture(), "canny", **settings)
    assert refused.value.field == field


def test_options_fill_in_the_defaults_and_refuse_unknown_preprocessors():
    assert preprocess.options("canny") == {"preprocessor": "canny", "processor_res": 512,
                                           "threshold_a": 100, "threshold_b": 200}
    assert preprocess.options("tile", threshold_a=2.5, resolution=256.0)["threshold_a"] == 2.5
    assert preprocess.options("scribble", threshold_a=50)["threshold_a"] is None  # not one it takes
    with pytest.raises(ValidationError) as refused:
        preprocess.options("depth_leres")
    assert refused.value.field == "preprocessor" and "canny" in refused.value.message


def test_a_very_long_picture_at_a_high_resolution_is_refused():
    with pytest.raises(ValidationError) as refused:
        preprocess.run(Image.new("RGB", (900, 100)), "none", resolution=2048)
    assert refused.value.field == "processor_res"


# --- an annotator for real: PiDiNet (softedge_pidinet) with random weights ------------------

def test_an_annotator_with_its_weights_is_offered_and_maps_the_same_in_a_child_and_here(tmp_path):
    pytest.importorskip("controlnet_aux")
    random_pidinet(tmp_path)
    listed = {item["id"]: item for item in preprocess.available(tmp_path)}
    assert {"softedge_pidinet", "softedge_pidisafe", "scribble_pidinet"} <= set(listed)
    assert not listed["softedge_pidinet"]["builtin"] and listed["softedge_pidinet"]["union_type"] == 0
    assert "softedge_hed" not in listed  # its file is not there
    picture = square_picture((96, 64))
    in_child = preprocess.run(picture, "softedge_pidinet", resolution=64, models_path=tmp_path, child_timeout=240)
    here = preprocess.run(picture, "softedge_pidinet", resolution=64, models_path=tmp_path)
    assert in_child.mode == "RGB" and in_child.size == (96, 64)
    assert in_child.tobytes() == here.tobytes()  # what the preview shows is what the worker uses
    assert len(np.unique(gray_values(here))) > 2  # a map, not a blank


def test_a_damaged_annotator_file_is_said_not_raised(tmp_path):
    (tmp_path / "annotators").mkdir()
    (tmp_path / "annotators" / "table5_pidinet.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(annotators.AnnotatorError) as failed:
        annotators.run(square_picture(), "softedge_pidinet", size=(96, 64), resolution=64, models_path=tmp_path)
    assert "table5_pidinet.pth" in str(failed.value) and str(tmp_path) not in str(failed.value)
