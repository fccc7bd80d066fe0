"""Guides in Render (worker/guides): ControlNet units (SD 1.x, SDXL, FLUX Union), reference
images (IP-Adapters for SD 1.x, SDXL and FLUX, FLUX Redux) and the Edit kind, with the real tiny
demo pipelines and the demo guides (worker/demo_guides.py) on the CPU.
Render's surroundings are a RenderContext of the test's that keeps what it is given; the
tasks' pictures come from a dictionary here instead of the images folder (the worker
reads them through worker/guides/maps.picture_of and the kinds' inputs())."""
from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from models import Task
from services.library.imaging import format_parameters, read_metadata
from tests.helpers import a1111_infotext_fields
from worker import masks
from worker.batching import BatchLimits, batch_key, can_join
from worker.demo_guides import MARKER, VERSIONS, build_demo_guide, demo_guide_path
from worker.demo_model import build_demo_model
from worker.guides import loading, maps
from worker.init_image import fit_picture
from worker.kinds import edit as edit_kind
from worker.kinds import img2img as img2img_kind
from worker.kinds import inpaint as inpaint_kind
from worker.pipelines import flux2 as flux2_pipelines
from worker.pipelines.load import load_pipeline
from worker.render import RenderContext, render_batch
from worker.schedulers import apply_scheduler

SIZE = 64


def stripes(axis: int, step: int = 8) -> Image.Image:
    """White lines on black, across (axis 0) or down (axis 1)."""
    array = np.zeros((SIZE, SIZE, 3), np.uint8)
    if axis == 0:
        array[::step, :] = 255
    else:
        array[:, ::step] = 255
    return Image.fromarray(array)


def square(colour=(200, 80, 40)) -> Image.Image:
    array = np.full((SIZE, SIZE, 3), 30, np.uint8)
    array[16:48, 16:48] = colour
    return Image.fromarray(array)


PICTURES = {"across": stripes(0), "down": stripes(1), "square": square(), "green": square((40, 200, 60))}
MASK = Image.new("L", (SIZE, SIZE), 0)
MASK.paste(255, (16, 16, 48, 48))


@pytest.fixture(autouse=True)
def pictures_in_memory(monkeypatch):
    """The tasks' pictures from PICTURES (by image id), their masks MASK."""
    def picture(task, image_id):
        return PICTURES[image_id].copy()

    monkeypatch.setattr(maps, "picture_of", picture)
    monkeypatch.setattr(edit_kind, "picture_of", picture)
    monkeypatch.setattr(img2img_kind.ImageToImage, "inputs", lambda self, task: fit_picture(
        PICTURES[task.init_image_id], task.width, task.height, task.init_fit))
    monkeypatch.setattr(inpaint_kind.Inpaint, "inputs", lambda self, task: inpaint_kind.prepare(
        PICTURES[task.init_image_id], masks.binary(MASK), task))


class Quiet:
    """A task's progress, unrecorded."""

    def begin_call(self, first, images, row=0, done_before=None):
        pass

    def step(self, done_in_call, per_call, latents=None):
        pass

    def seconds_per_step(self):
        return None

    def image_ready(self, images):
        pass


class GuideRoom(RenderContext):
    """Render's surroundings in memory: one pipeline, the models folder, the calls made."""

    def __init__(self, pipe, models_path: Path):
        self.pipe, self.models_path = pipe, models_path
        self.limits = BatchLimits(configured=8)
        self.calls: list[list[str]] = []

    def pipeline(self, head):
        apply_scheduler(self.pipe, head.scheduler)
        return self.pipe

    def images_per_call(self, head) -> int:
        return 8

    def progress(self, task, pipe):
        return Quiet()

    def canceled(self, task) -> bool:
        return False

    def stop_wanted(self, tasks) -> set[str]:
        return set()

    def record_call(self, tasks, images, seconds, step_work, steps) -> None:
        self.calls.append([task.id for task in tasks])

    def save(self, row, encoded, verdict):
        png = encoded.png.result()
        return SimpleNamespace(metadata=read_metadata(png),
                               pixels=np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16))

    def finish(self, task, withheld: int) -> None:
        pass


def guided_task(task_id: str, **values) -> Task:
    fields = dict(id=task_id, user_id=1, prompt="a lighthouse", negative_prompt="", width=SIZE, height=SIZE,
                  steps=3, guidance=7.0, samples=1, seed=11, scheduler="euler", model="demo", loras=None,
                  init_image_id=None, strength=None, init_fit=None)
    fields.update(values)
    return Task(**fields)


def flux_task(task_id: str, **values) -> Task:
    return guided_task(task_id, **{"model": "demo-flux", "guidance": 0.0, "scheduler": "flow_euler", **values})


def unit(image: str, model: str = "demo-controlnet-sd1", **settings) -> dict:
    """A unit as Task.control stores it."""
    made = dict(image=image, preprocessor="none", model=model, model_name=model, weight=1.0, start=0.0, end=1.0,
                control_mode="balanced", resize_mode="crop", processor_res=64, threshold_a=None, threshold_b=None,
                pixel_perfect=False)
    made.update(settings)
    return made


def reference(image: str, weight: float = 1.0, model: str = "demo-ipadapter-sd1") -> dict:
    return dict(image=image, weight=weight, model=model, model_name=model)


def differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module", autouse=True)
def torch_on_one_thread():
    # Tiny models on a shared machine: more threads only fight over its cores.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("guide-models")


@pytest.fixture(scope="module")
def sd(models):
    return load_pipeline("demo", models, device="cpu")


@pytest.fixture(scope="module")
def flux(models):
    return load_pipeline("demo-flux", models, device="cpu")


def rendered(pipe, models: Path, *tasks):
    """Each task's first picture (pixels), and the context (its calls)."""
    context = GuideRoom(pipe, models)
    render = render_batch(list(tasks), context)
    return [render.images[task.id][0] for task in tasks], context


def rendered_pixels(pipe, models: Path, task) -> np.ndarray:
    [picture], _ = rendered(pipe, models, task)
    return picture.pixels


# --- ControlNet on SD 1.x ------------------------------------------------------------------

def test_the_control_image_steers_the_picture_and_the_same_inputs_give_the_same_pixels(sd, models):
    plain = rendered_pixels(sd, models, guided_task("plain"))
    across = rendered_pixels(sd, models, guided_task("a", control=[unit("across")]))
    down = rendered_pixels(sd, models, guided_task("d", control=[unit("down")]))
    again = rendered_pixels(sd, models, guided_task("a2", control=[unit("across")]))
    assert differ(across, plain) > 3
    assert differ(across, down) > 3  # two different control images: different pixels
    assert np.array_equal(across, again)  # the same inputs: the same pixels


def test_weight_zero_is_no_unit_and_the_step_range_changes_the_picture(sd, models):
    plain = rendered_pixels(sd, models, guided_task("plain"))
    full = rendered_pixels(sd, models, guided_task("full", control=[unit("across")]))
    assert np.array_equal(rendered_pixels(sd, models, guided_task("zero", control=[unit("across", weight=0.0)])), plain)
    late = rendered_pixels(sd, models, guided_task("late", control=[unit("across", start=0.5)]))
    early = rendered_pixels(sd, models, guided_task("early", control=[unit("across", end=0.5)]))
    # (the first of three steps moves these random weights' picture least: early differs least)
    assert differ(late, full) > 1 and differ(early, full) > 0.1 and differ(late, early) > 1


def test_control_modes_act_per_unit(sd, models):
    balanced = rendered_pixels(sd, models, guided_task("b", control=[unit("across")]))
    prompt = rendered_pixels(sd, models, guided_task("p", control=[unit("across", control_mode="prompt")]))
    control = rendered_pixels(sd, models, guided_task("c", control=[unit("across", control_mode="control")]))
    assert differ(prompt, balanced) > 1 and differ(control, balanced) > 1 and differ(prompt, control) > 1
    # Two units of the same ControlNet, each its own map and mode.
    both = rendered_pixels(sd, models, guided_task(
        "two", control=[unit("across"), unit("down", control_mode="prompt")]))
    assert differ(both, balanced) > 1


def test_rows_of_one_call_each_have_their_own_map(sd, models):
    alone = rendered_pixels(sd, models, guided_task("alone", control=[unit("down")], prompt="a fox"))
    [first, second], context = rendered(sd, models, guided_task("r1", control=[unit("across")]),
                                        guided_task("r2", control=[unit("down")], prompt="a fox"))
    assert context.calls == [["r1", "r2"]]
    assert np.abs(second.pixels - alone).max() <= 2  # (a batched call: float noise only)
    assert differ(first.pixels, second.pixels) > 3


def test_the_batch_key_holds_the_units_settings_but_not_their_pictures():
    base = guided_task("k1", control=[unit("across")])
    assert can_join(base, guided_task("k2", control=[unit("down")]))
    assert not can_join(base, guided_task("k3", control=[unit("across", weight=0.5)]))
    assert not can_join(base, guided_task("k4", control=[unit("across", control_mode="prompt")]))
    assert not can_join(base, guided_task("k5"))
    with_ref = guided_task("k6", reference_images=[reference("square")])
    assert can_join(with_ref, guided_task("k7", reference_images=[reference("square")]))
    assert not can_join(with_ref, guided_task("k8", reference_images=[reference("green")]))
    assert not can_join(with_ref, guided_task("k9", reference_images=[reference("square", 0.5)]))
    # A task without guides keeps the key it had.
    assert len(batch_key(guided_task("plain"))) == 10  # (the tenth: fast mode, issue 28)


def test_control_with_image_to_image_and_inpainting(sd, models):
    start = dict(init_image_id="square", strength=0.7)
    plain = rendered_pixels(sd, models, guided_task("i0", **start))
    assert differ(rendered_pixels(sd, models, guided_task("i1", control=[unit("across")], **start)), plain) > 1
    painted = dict(init_image_id="square", strength=0.9, mask_image_id="mask")
    unguided = rendered_pixels(sd, models, guided_task("p0", **painted))
    guided = rendered_pixels(sd, models, guided_task("p1", control=[unit("across")], **painted))
    inpaint_map = rendered_pixels(sd, models, guided_task(
        "p2", control=[unit("square", preprocessor="inpaint")], **painted))
    assert differ(guided, unguided) > 1 and differ(inpaint_map, unguided) > 1
    outside = np.ones((SIZE, SIZE), bool)
    outside[8:56, 8:56] = False  # (beyond the mask and its blur: the input's pixels)
    assert np.abs(guided - unguided)[outside].max() <= 1


# --- reference images ------------------------------------------------------------------------

def test_an_ip_adapter_reference_changes_the_picture_and_does_not_leak(sd, models):
    plain = rendered_pixels(sd, models, guided_task("plain"))
    red = rendered_pixels(sd, models, guided_task("red", reference_images=[reference("square")]))
    green = rendered_pixels(sd, models, guided_task("green", reference_images=[reference("green")]))
    assert differ(red, plain) > 3 and differ(red, green) > 0.5
    assert np.array_equal(rendered_pixels(sd, models, guided_task("after")), plain)  # nothing left loaded
    assert sd.unet.encoder_hid_proj is None
    # Two references, each its own weight.
    half = rendered_pixels(sd, models, guided_task(
        "two", reference_images=[reference("square"), reference("green", 0.5)]))
    assert differ(half, red) > 0.5
    # With a ControlNet unit as well.
    both = rendered_pixels(sd, models, guided_task(
        "both", control=[unit("across")], reference_images=[reference("square")]))
    assert differ(both, red) > 1
    assert np.array_equal(rendered_pixels(sd, models, guided_task("after2")), plain)


def save_tiny_redux(folder: Path) -> Path:
    """A FluxPriorReduxPipeline of the demo FLUX's widths (a tiny SigLIP, Redux's embedder)."""
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        encoder = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                                       num_attention_heads=4, image_size=32, patch_size=8))
        embedder = ReduxImageEncoder(redux_dim=32, txt_in_features=32)
        with torch.no_grad():
            embedder.redux_down.weight.mul_(8)  # (image tokens loud enough to show beside the prompt's)
        pipe = FluxPriorReduxPipeline(image_encoder=encoder,
                                      feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                                      image_embedder=embedder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_flux_redux_references_join_the_prompt(flux, models, monkeypatch):
    save_tiny_redux(models / "ipadapter" / "tiny-redux")
    real = loading.guide

    def guide(guide_id, name=None):
        if guide_id == "tiny-redux":
            return loading.Guide("tiny-redux", "Tiny Redux", "ipadapter/tiny-redux", "ipadapter", "flux", "redux")
        return real(guide_id, name)

    monkeypatch.setattr(loading, "guide", guide)
    plain = rendered_pixels(flux, models, flux_task("plain"))
    full = rendered_pixels(flux, models, flux_task("full", reference_images=[reference("square", 1.0, "tiny-redux")]))
    half = rendered_pixels(flux, models, flux_task("half", reference_images=[reference("square", 0.5, "tiny-redux")]))
    # (a random Redux: its 16 image tokens beside the prompt's 512 move the picture a little, and
    # the weight, which scales tokens that FLUX normalises, less: but surely)
    assert differ(full, plain) > 0.1 and differ(full, half) > 0.01


# --- SDXL: a ControlNet and an IP-Adapter ---------------------------------------------------

def test_sdxl_controlnet_units_and_an_ip_adapter_reference(models, monkeypatch):
    sdxl = load_pipeline("demo-sdxl", models, device="cpu")
    xl = dict(model="demo-sdxl")
    plain = rendered_pixels(sdxl, models, guided_task("plain", **xl))
    across = rendered_pixels(sdxl, models, guided_task("a", control=[unit("across", "demo-controlnet-sdxl")], **xl))
    down = rendered_pixels(sdxl, models, guided_task("d", control=[unit("down", "demo-controlnet-sdxl")], **xl))
    assert differ(across, plain) > 3 and differ(across, down) > 1
    zero = guided_task("z", control=[unit("across", "demo-controlnet-sdxl", weight=0.0)], **xl)
    assert np.array_equal(rendered_pixels(sdxl, models, zero), plain)
    start = dict(init_image_id="square", strength=0.7, **xl)
    guided = guided_task("i1", control=[unit("across", "demo-controlnet-sdxl", control_mode="control")], **start)
    assert differ(rendered_pixels(sdxl, models, guided), rendered_pixels(sdxl, models, guided_task("i0", **start))) > 1
    painted = dict(init_image_id="square", strength=0.9, mask_image_id="mask", **xl)
    guided = guided_task("p1", control=[unit("across", "demo-controlnet-sdxl")], **painted)
    unguided = rendered_pixels(sdxl, models, guided_task("p0", **painted))
    assert differ(rendered_pixels(sdxl, models, guided), unguided) > 1

    # An IP-Adapter for the demo SDXL UNet, built as the demo SD 1.x one is.
    from worker.demo_guides import _ip_adapter
    from worker.pipelines.load import demo_folder_name

    folder = models / "ipadapter" / "tiny-ip-adapter-sdxl"
    folder.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        _ip_adapter(folder, build_demo_model(models / demo_folder_name("demo-sdxl"), "sdxl"))
    real = loading.guide

    def guide(guide_id, name=None):
        if guide_id == "tiny-ip-adapter-sdxl":
            return loading.Guide(guide_id, "Tiny IP-Adapter SDXL", "ipadapter/tiny-ip-adapter-sdxl", "ipadapter",
                                 "sdxl", "ip-adapter")
        return real(guide_id, name)

    monkeypatch.setattr(loading, "guide", guide)
    referenced = rendered_pixels(sdxl, models, guided_task(
        "r", reference_images=[reference("square", 1.0, "tiny-ip-adapter-sdxl")], **xl))
    assert differ(referenced, plain) > 3
    assert np.array_equal(rendered_pixels(sdxl, models, guided_task("after", **xl)), plain)  # nothing left loaded


FLUX_IP_ADAPTER = "tiny-flux-ip-adapter"


def save_tiny_flux_ip_adapter(folder: Path, transformer_config) -> None:
    """An IP-Adapter file for the demo FLUX transformer in XLabs' layout (ip_adapter_proj_model.…,
    double_blocks.N.processor.ip_adapter_double_stream_k/v_proj.…), a tiny CLIP vision
    encoder in image_encoder/ beside it."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=4, num_channels=3))
        encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
        joint = int(transformer_config["joint_attention_dim"])
        inner = int(transformer_config["num_attention_heads"]) * int(transformer_config["attention_head_dim"])
        state = {"ip_adapter_proj_model.proj.weight": torch.randn(joint * 4, 32) * 0.5,
                 "ip_adapter_proj_model.proj.bias": torch.randn(joint * 4) * 0.1,
                 "ip_adapter_proj_model.norm.weight": torch.ones(joint),
                 "ip_adapter_proj_model.norm.bias": torch.zeros(joint)}
        for block in range(int(transformer_config["num_layers"])):  # (the double-stream blocks)
            for part in ("k", "v"):
                prefix = f"double_blocks.{block}.processor.ip_adapter_double_stream_{part}_proj"
                state[f"{prefix}.weight"] = torch.randn(inner, joint) * 4 / joint ** 0.5
                state[f"{prefix}.bias"] = torch.zeros(inner)
    save_file(state, str(folder / "ip-adapter.safetensors"))


def test_a_flux_ip_adapter_reference_changes_the_picture_and_does_not_leak(flux, models, monkeypatch):
    from services.generation import guide_files

    save_tiny_flux_ip_adapter(models / "ipadapter" / FLUX_IP_ADAPTER, flux.transformer.config)
    # The file as the scan lists it; the worker finds its image encoder beside it as the scan does.
    spec = f"ipadapter/{FLUX_IP_ADAPTER}/ip-adapter.safetensors"
    scanned = guide_files.ipadapter_file(models / spec, models / "ipadapter")
    assert (scanned.adapter, scanned.family, scanned.architecture) == ("ipadapter", "flux", "ip-adapter")
    real = loading.guide

    def guide(guide_id, name=None):
        if guide_id == FLUX_IP_ADAPTER:
            return loading.Guide(FLUX_IP_ADAPTER, "Tiny FLUX IP-Adapter", spec, "ipadapter", "flux", "ip-adapter")
        return real(guide_id, name)

    monkeypatch.setattr(loading, "guide", guide)
    plain = rendered_pixels(flux, models, flux_task("plain"))
    red = rendered_pixels(flux, models, flux_task("r", reference_images=[reference("square", 1.0, FLUX_IP_ADAPTER)]))
    green = rendered_pixels(flux, models, flux_task("g", reference_images=[reference("green", 1.0,
                                                                                     FLUX_IP_ADAPTER)]))
    assert differ(red, plain) > 3 and differ(red, green) > 1
    assert np.array_equal(rendered_pixels(flux, models, flux_task("after")), plain)  # nothing left loaded


# --- FLUX ControlNet Union --------------------------------------------------------------------

def test_a_flux_controlnet_union_steers_text_image_and_inpaint_calls(flux, models):
    plain = rendered_pixels(flux, models, flux_task("plain"))
    across = rendered_pixels(flux, models, flux_task("a", control=[unit("across", "demo-controlnet-flux")]))
    down = rendered_pixels(flux, models, flux_task("d", control=[unit("down", "demo-controlnet-flux")]))
    assert differ(across, plain) > 3 and differ(across, down) > 1
    again = rendered_pixels(flux, models, flux_task("a2", control=[unit("across", "demo-controlnet-flux")]))
    assert np.array_equal(again, across)
    start = rendered_pixels(flux, models, flux_task("s0", init_image_id="square", strength=0.7))
    guided = rendered_pixels(flux, models, flux_task("s1", init_image_id="square", strength=0.7,
                                            control=[unit("across", "demo-controlnet-flux", preprocessor="canny")]))
    assert differ(guided, start) > 1
    painted = rendered_pixels(flux, models, flux_task("p1", init_image_id="square", strength=0.9, mask_image_id="mask",
                                             control=[unit("across", "demo-controlnet-flux"),
                                                      unit("down", "demo-controlnet-flux", preprocessor="tile")]))
    assert painted.shape == (SIZE, SIZE, 3)


# --- SDXL ControlNet Union ---------------------------------------------------------------------

SDXL_UNION = "demo-controlnet-sdxl-union"


def test_an_sdxl_controlnet_union_is_scanned_as_one_and_loads_from_its_folder_or_one_file(models):
    """The demo Union (ControlNetUnionModel, random weights, ProMax's eight modes) is a
    diffusers folder; its weights alone as one file (xinsir's ProMax file has no config)
    load with the same config and weights. The scan calls both SDXL Unions."""
    from safetensors.torch import save_file

    from services.generation import guide_files
    from services.generation.guide_files import Guide

    sdxl = load_pipeline("demo-sdxl", models, device="cpu")
    folder_net = loading.controlnet(sdxl, loading.guide(SDXL_UNION), models)
    assert type(folder_net).__name__ == "ControlNetUnionModel" and folder_net.config.num_control_type == 8
    assert guide_files.controlnet_folder(demo_guide_path(models, SDXL_UNION)) == Guide("controlnet", "sdxl", "union", 8)
    state = {key: value.contiguous() for key, value in folder_net.state_dict().items()}
    (models / "controlnet").mkdir(exist_ok=True)
    path = models / "controlnet" / "union-promax.safetensors"
    save_file(state, str(path))
    assert guide_files.controlnet_keys(guide_files.read_header(path)) == Guide("controlnet", "sdxl", "union", 8)
    file_net = loading.controlnet(sdxl, loading.Guide("file-union", "file", "controlnet/union-promax.safetensors",
                                                      "controlnet", "sdxl", "union"), models)
    def settings(net):
        return {key: list(value) if isinstance(value, tuple) else value for key, value in net.config.items()
                if not key.startswith("_")}

    assert file_net is not folder_net and settings(file_net) == settings(folder_net)
    assert all(torch.equal(value, state[key]) for key, value in file_net.state_dict().items())


def test_an_sdxl_controlnet_union_takes_the_units_maps_and_modes_in_one_call(models, monkeypatch):
    from worker.guides import control

    sdxl = load_pipeline("demo-sdxl", models, device="cpu")
    sent = []  # each call's modes, weights and step ranges
    made = control.arguments
    monkeypatch.setattr(control, "arguments", lambda *args: sent.append(made(*args)) or sent[-1])
    xl = dict(model="demo-sdxl", steps=2)

    def union_unit(image, **settings):
        return unit(image, SDXL_UNION, **{"preprocessor": "lineart", **settings})

    plain = rendered_pixels(sdxl, models, guided_task("plain", **xl))
    across = rendered_pixels(sdxl, models, guided_task("a", control=[union_unit("across")], **xl))
    assert sent[-1]["control_mode"] == [3] and type(sent[-1]["control_image"]) is list  # lineart: mode 3
    down = rendered_pixels(sdxl, models, guided_task("d", control=[union_unit("down")], **xl))
    again = rendered_pixels(sdxl, models, guided_task("a2", control=[union_unit("across")], **xl))
    zero = rendered_pixels(sdxl, models, guided_task("z", control=[union_unit("across", weight=0.0)], **xl))
    assert differ(across, plain) > 3 and differ(across, down) > 1  # two control images: different pixels
    assert np.array_equal(again, across) and np.array_equal(zero, plain)  # weight 0: the pixels of no unit
    # Two units, one call: each its map, mode (scribble 2, tile 6), weight and step range.
    two = rendered_pixels(sdxl, models, guided_task("two", control=[
        union_unit("across", preprocessor="scribble"), union_unit("down", preprocessor="tile", weight=0.5,
                                                                  start=0.5)], **xl))
    assert (sent[-1]["control_mode"], sent[-1]["controlnet_conditioning_scale"],
            sent[-1]["control_guidance_start"]) == ([2, 6], [1.0, 0.5], [0.0, 0.5])
    assert differ(two, across) > 1
    guess = rendered_pixels(sdxl, models, guided_task("g", control=[union_unit("across", control_mode="control")],
                                                      **xl))
    assert differ(guess, across) > 1
    # Rows of one call, each its own map.
    [first, second], context = rendered(sdxl, models, guided_task("r1", control=[union_unit("across")], **xl),
                                        guided_task("r2", control=[union_unit("down")], **xl))
    assert context.calls == [["r1", "r2"]] and np.abs(second.pixels - down).max() <= 2
    assert differ(first.pixels, second.pixels) > 1
    # Image to image, and inpaint with the repaint mode (7: the picture, the area black).
    start = dict(init_image_id="square", strength=0.7, **xl)
    assert differ(rendered_pixels(sdxl, models, guided_task("i1", control=[union_unit("across")], **start)),
                  rendered_pixels(sdxl, models, guided_task("i0", **start))) > 1
    painted = dict(init_image_id="square", strength=0.9, mask_image_id="mask", **xl)
    repaint = rendered_pixels(sdxl, models, guided_task("p1", control=[union_unit("square", preprocessor="inpaint")],
                                                        **painted))
    assert sent[-1]["control_mode"] == [7]
    assert differ(repaint, rendered_pixels(sdxl, models, guided_task("p0", **painted))) > 1
    # xinsir's first Union has six modes: no tile, no repaint.
    with pytest.raises(loading.GuideError, match="has 6 control modes, not the tile preprocessor's"):
        control._check_modes(6, [union_unit("across", preprocessor="tile")], [6])


# --- Edit (FLUX.1 Kontext) ----------------------------------------------------------------------

def test_a_kontext_edit_records_its_instruction_and_its_pictures(models):
    kontext = load_pipeline("demo-kontext", models, device="cpu")
    assert type(kontext).__name__ == "FluxKontextPipeline"
    one = flux_task("one", model="demo-kontext", prompt="make it winter", edit={"images": ["square"]})
    two = flux_task("two", model="demo-kontext", prompt="make it winter", edit={"images": ["square", "down"]},
                    width=80, height=48)
    [edited], context = rendered(kontext, models, one)
    [stitched], _ = rendered(kontext, models, two)
    assert edited.pixels.shape == (SIZE, SIZE, 3) and stitched.pixels.shape == (48, 80, 3)
    assert context.calls == [["one"]]
    record = stitched.metadata
    assert record["prompt"] == "make it winter" and record["edit"] == {"images": ["square", "down"]}
    assert record["edit_images"] == ["square", "down"]
    # Edits of other pictures do not share a call (one reference size a call).
    assert not can_join(one, flux_task("x", model="demo-kontext", edit={"images": ["green"]}))
    assert can_join(one, flux_task("y", model="demo-kontext", prompt="at night", edit={"images": ["square"]}))


def test_several_edit_pictures_are_stitched_side_by_side():
    tall = Image.new("RGB", (20, 40), (255, 0, 0))
    wide = Image.new("RGB", (40, 20), (0, 0, 255))
    joined = edit_kind.stitched([tall, wide])
    assert joined.size == (20 + 80, 40)
    assert joined.getpixel((5, 5)) == (255, 0, 0) and joined.getpixel((60, 30)) == (0, 0, 255)
    assert edit_kind.reference_size(joined.size, 64 * 64, 16) == (96, 48)


def test_flux2_and_edit_plus_take_each_picture_and_nothing_is_stitched_for_them(models, monkeypatch):
    joined = []  # the stitching asked for: none, for pipelines that take each picture themselves
    monkeypatch.setattr(edit_kind, "stitched", lambda pictures: joined.append(len(pictures)) or pictures[0])
    given, edit_arguments = [], flux2_pipelines.edit_arguments
    monkeypatch.setattr(flux2_pipelines, "edit_arguments", lambda arguments, pictures, width, height: (
        given.append([picture.size for picture in pictures]) or edit_arguments(arguments, pictures, width, height)))
    klein = load_pipeline("demo-flux2", models, device="cpu")
    two = flux_task("k2", model="demo-flux2", prompt="put them together", steps=2, width=80, height=48,
                    edit={"images": ["square", "down"]})
    [edited], _ = rendered(klein, models, two)
    assert edited.pixels.shape == (48, 80, 3) and edited.metadata["edit_images"] == ["square", "down"]
    assert given == [[(64, 64), (64, 64)]] and joined == []  # each at about the result's pixels
    # Edit Plus (a stand-in named as diffusers' class): the pictures themselves, as they are.
    plus = type("QwenImageEditPlusPipeline", (), {})()
    plus.transformer = SimpleNamespace(config=SimpleNamespace(guidance_embeds=False))
    task = guided_task("q2", model="demo-qwen-edit-plus", guidance=1.0, negative_prompt="", width=96,
                       edit={"images": ["square", "green"]})
    kind = edit_kind.Edit()
    runner, arguments = kind.build_call(plus, task, [SimpleNamespace(task=task)], {task.id: kind.inputs(task)})
    assert runner is plus and [picture.size for picture in arguments["image"]] == [(SIZE, SIZE)] * 2
    assert joined == []


# --- maps, records, demo guides ----------------------------------------------------------------

def test_a_map_is_fitted_by_its_resize_mode():
    wide = Image.new("RGB", (128, 64), (255, 255, 255))
    assert maps.fit(wide, 64, 64, "resize").getpixel((0, 32)) == (255, 255, 255)
    assert maps.fit(wide, 64, 64, "crop").size == (64, 64)
    filled = maps.fit(wide, 64, 64, "fill")
    assert filled.getpixel((32, 2)) == (0, 0, 0) and filled.getpixel((32, 32)) == (255, 255, 255)
    # Pixel perfect: the map's short side as the fitting will scale it (cover, or fit inside).
    assert maps.pixel_perfect((128, 64), 256, 256, "crop") == 256
    assert maps.pixel_perfect((128, 64), 256, 256, "fill") == 128


def test_the_infotext_lists_units_references_and_edits_as_a1111_does():
    record = {"prompt": "a lighthouse", "steps": 3, "seed": 11, "width": 64, "height": 64, "model": "demo",
              "control": [unit("across", model_name="Demo ControlNet", preprocessor="canny", threshold_a=100,
                               threshold_b=200, processor_res=512)],
              "references": [reference("square", 0.6) | {"model_name": "Demo IP-Adapter"}],
              "edit": {"images": ["square", "down"]}}
    fields = a1111_infotext_fields(format_parameters(record))
    assert fields["ControlNet 0"] == ("Module: canny, Model: Demo ControlNet, Weight: 1.0, Resize Mode: Crop and "
                                      "Resize, Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance "
                                      "Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced")
    assert fields["IP-Adapter 0"] == "Model: Demo IP-Adapter, Weight: 0.6"
    assert fields["Edit images"] == "square, down"


def test_the_demo_guides_are_versioned_folders_with_random_zero_convolutions(models, monkeypatch):
    folder = demo_guide_path(models, "demo-controlnet-sd1")
    model_folder = build_demo_model(models / "daydream-demo", "sd1")
    assert build_demo_guide(models, "demo-controlnet-sd1", model_folder) == folder
    assert json.loads((folder / MARKER).read_text()) == {"id": "demo-controlnet-sd1", "version": 1}
    from diffusers import ControlNetModel

    net = ControlNetModel.from_pretrained(folder)
    assert all(block.weight.abs().sum() > 0 for block in net.controlnet_down_blocks)
    # An older version is rebuilt in place, leaving nothing beside it.
    before = (folder / "diffusion_pytorch_model.safetensors").read_bytes()
    monkeypatch.setitem(VERSIONS, "demo-controlnet-sd1", 2)
    build_demo_guide(models, "demo-controlnet-sd1", model_folder)
    assert json.loads((folder / MARKER).read_text())["version"] == 2
    assert (folder / "diffusion_pytorch_model.safetensors").read_bytes() == before  # (seeded: the same bytes)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("guide_id", ["demo-controlnet-sd1", "demo-controlnet-flux"])
def test_a_controlnet_file_in_diffusers_layout_loads_as_its_folder(sd, flux, models, guide_id):
    """A single .safetensors ControlNet (diffusers' keys) gets its config from the loaded
    model's denoiser and the file's shapes (block counts, Union modes)."""
    from safetensors.torch import save_file

    pipe = flux if guide_id.endswith("flux") else sd
    folder_net = loading.controlnet(pipe, loading.guide(guide_id), models)
    state = {key: value.contiguous() for key, value in folder_net.state_dict().items()}
    (models / "controlnet").mkdir(exist_ok=True)
    save_file(state, str(models / "controlnet" / f"{guide_id}.safetensors"))
    found = loading.Guide(f"file-{guide_id}", "file", f"controlnet/{guide_id}.safetensors", "controlnet",
                          None, "controlnet")
    file_net = loading.controlnet(pipe, found, models)
    assert type(file_net) is type(folder_net) and file_net is not folder_net
    assert file_net.config.get("num_mode") == folder_net.config.get("num_mode")
    assert all(torch.equal(value, state[key]) for key, value in file_net.state_dict().items())
