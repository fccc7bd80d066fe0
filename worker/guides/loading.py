"""Guide models loaded beside the pipeline: ControlNets, IP-Adapters (their weights and
image encoder) and FLUX Redux, by the guide's catalog id, cached per loaded pipeline
(weakly: freed with it, as worker/pipelines/cache.py's derived pipelines are).

Where a guide's files are (its spec, as the catalog has it):
  - a demo id (families.DEMO_GUIDES): the worker-built folder (worker/demo_guides.py),
    made on first use from the demo model of its family;
  - <models>/controlnet/…: a diffusers folder (ControlNetModel, ControlNetUnionModel,
    FluxControlNetModel), or a single .safetensors file: SD 1.x/SDXL in the original
    layout (control_model.…, through diffusers' single-file loader) or in diffusers'
    layout (SD, SDXL Unions such as xinsir's ProMax file, and FLUX), its config taken
    from the loaded pipeline's denoiser and the file's tensor shapes;
  - <models>/ipadapter/…: an IP-Adapter .safetensors file with its image encoder found as
    the scan finds it (guide_files.image_encoder_for), or a FluxPriorReduxPipeline folder.
Every failure is a GuideError whose message says which guide and why."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from services.generation import catalog, families, guide_files
from services.generation.model_files import ModelsFolder
from worker.demo_guides import BASES, IMAGE_ENCODER, IP_ADAPTER_FILE, build_demo_guide
from worker.demo_model import build_demo_model
from worker.pipelines.errors import cause, without_paths
from worker.pipelines.info import family_of
from worker.pipelines.load import demo_folder_name

# pipe -> {(kind, guide id): loaded}; weak, freed with the pipeline.
_loaded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GuideError(RuntimeError):
    """A guide model could not be loaded or used; the message is for the user (no paths)."""


@dataclass(frozen=True)
class Guide:
    """A guide model as the catalog has it."""

    id: str
    name: str
    spec: str
    adapter: str  # "controlnet" | "ipadapter"
    family: str | None
    architecture: str | None  # "controlnet", "union", "ip-adapter", "ip-adapter-plus", "redux"


@dataclass
class IPAdapter:
    """An IP-Adapter's weights (diffusers' {"image_proj", "ip_adapter"} layout, on the CPU)
    and its image encoder (on the pipeline's device)."""

    state_dict: dict
    image_encoder: torch.nn.Module


def guide(guide_id: str, name: str | None = None) -> Guide:
    """The catalog's entry of a guide id (a demo guide's without the database)."""
    demo = families.DEMO_GUIDES.get(guide_id)
    if demo is not None:
        adapter, family, architecture = demo
        return Guide(guide_id, name or guide_id, guide_id, adapter, family, architecture)
    row = catalog.row_of(guide_id)
    if row is None or not row.adapter:
        raise GuideError(f"The guide model {name or guide_id} is no longer available on this server; "
                         "pick another.")
    return Guide(guide_id, row.name or name or guide_id, row.spec, row.adapter, row.family, row.architecture)


def _placed(model, pipe):
    """`model` on the pipeline's device and in its precision."""
    device = getattr(pipe, "_execution_device", None) or pipe.device
    return model.to(device=device, dtype=pipe.dtype)


def _cached(pipe, key, load):
    made = _loaded.setdefault(pipe, {})
    if key not in made:
        made[key] = load()
    return made[key]


def drop(pipe) -> None:
    """Forget what was loaded for `pipe` (tests; a pipeline let go of is forgotten anyway)."""
    _loaded.pop(pipe, None)


def _demo_folder(models_path: Path, guide_id: str) -> Path:
    model_id, family = BASES[guide_id]
    model_folder = build_demo_model(Path(models_path) / demo_folder_name(model_id), family)
    return build_demo_guide(models_path, guide_id, model_folder)


def _path(found: Guide, models_path: Path, follow_links: bool) -> Path:
    if found.spec in families.DEMO_GUIDES:
        return _demo_folder(Path(models_path), found.spec)
    path = ModelsFolder(models_path, follow_links).resolve(found.spec)
    if not path.exists():
        raise FileNotFoundError(f"{found.spec} is not in the models folder")
    return path


def _failed(found: Guide, exc: BaseException) -> GuideError:
    noun = guide_files.ADAPTER_LABELS.get(found.adapter, "guide model")
    return GuideError(f"The {noun} {found.name} could not be loaded ({without_paths(cause(exc))}); tell staff "
                      "it may be damaged or made for another kind of model.")


# --- ControlNets -------------------------------------------------------------------------

def controlnet(pipe, found: Guide, models_path: Path, follow_links: bool = False):
    """The ControlNet model of `found` for `pipe` (loaded once per pipeline)."""
    def load():
        try:
            path = _path(found, models_path, follow_links)
            return _placed(_load_controlnet(pipe, path), pipe).eval()
        except GuideError:
            raise
        except Exception as exc:
            raise _failed(found, exc) from exc

    return _cached(pipe, ("controlnet", found.id), load)


def _load_controlnet(pipe, path: Path):
    from diffusers import ControlNetModel, ControlNetUnionModel, FluxControlNetModel

    family = family_of(pipe)
    if path.is_dir():
        config = ControlNetModel.load_config(path)
        name = config.get("_class_name", "")
        classes = {"FluxControlNetModel": FluxControlNetModel, "ControlNetModel": ControlNetModel,
                   "ControlNetUnionModel": ControlNetUnionModel}
        if name in classes:
            return classes[name].from_pretrained(path, local_files_only=True)
        raise GuideError(f"a {name or 'model'} folder is not a ControlNet Daydream can use yet")
    header = guide_files.read_header(path)
    keys = [key for key in header if key != "__metadata__"]
    if any(key.startswith("control_model.") for key in keys):  # sd-webui-controlnet's layout
        return ControlNetModel.from_single_file(str(path), config=str(_sd_config_folder(pipe, path)),
                                                local_files_only=True)
    from safetensors.torch import load_file

    state = load_file(str(path))
    if family == "flux":
        model = FluxControlNetModel(**_flux_settings(pipe, state))
    elif "task_embedding" in state:
        model = ControlNetUnionModel(**_union_settings(pipe, state))
    else:
        model = ControlNetModel.from_unet(pipe.unet, load_weights_from_unet=False,
                                          conditioning_embedding_out_channels=_hint_channels(state))
    model.load_state_dict(state)
    return model


def _hint_channels(state: dict) -> tuple[int, ...]:
    """The conditioning embedding's widths of a diffusers-layout SD ControlNet."""
    widths = [state["controlnet_cond_embedding.conv_in.weight"].shape[0]]
    block = 1
    while f"controlnet_cond_embedding.blocks.{block}.weight" in state:
        widths.append(state[f"controlnet_cond_embedding.blocks.{block}.weight"].shape[0])
        block += 2
    return tuple(widths)


UNION_HEADS = 8  # the attention heads over an SDXL Union's conditions (xinsir's; not in the shapes)


def _union_settings(pipe, state: dict) -> dict:
    """A diffusers-layout SDXL ControlNet Union's config (xinsir's files come without one):
    the UNet's, with the file's hint widths, control modes (6; ProMax 8) and condition mixer."""
    from diffusers import ControlNetUnionModel

    with torch.device("meta"):
        settings = {key: value for key, value in ControlNetUnionModel.from_unet(
            pipe.unet, load_weights_from_unet=False).config.items() if not key.startswith("_")}
    modes, width = state["task_embedding"].shape
    settings.update(conditioning_embedding_out_channels=_hint_channels(state), num_control_type=int(modes),
                    num_trans_channel=int(width), num_trans_head=UNION_HEADS,
                    num_trans_layer=_count(state, "transformer_layes."),
                    num_proj_channel=int(state["spatial_ch_projs.weight"].shape[0]))
    return settings


def _count(state: dict, prefix: str) -> int:
    return len({key[len(prefix):].split(".")[0] for key in state if key.startswith(prefix)})


def _flux_settings(pipe, state: dict) -> dict:
    """A diffusers-layout FLUX ControlNet's config: the transformer's, with the file's
    block counts and modes."""
    config = pipe.transformer.config
    settings = {key: config[key] for key in ("patch_size", "in_channels", "attention_head_dim",
                                             "num_attention_heads", "joint_attention_dim",
                                             "pooled_projection_dim", "axes_dims_rope")}
    settings["guidance_embeds"] = any(key.startswith("time_text_embed.guidance_embedder.") for key in state)
    settings["num_layers"] = _count(state, "transformer_blocks.")
    settings["num_single_layers"] = _count(state, "single_transformer_blocks.")
    if "controlnet_mode_embedder.weight" in state:
        settings["num_mode"] = state["controlnet_mode_embedder.weight"].shape[0]
    if "input_hint_block.0.weight" in state:
        settings["conditioning_embedding_channels"] = state["input_hint_block.0.weight"].shape[0]
    return settings


def _sd_config_folder(pipe, path: Path) -> Path:
    """A folder with the config.json of a ControlNet for the loaded UNet (the single-file
    loader wants one, and this install may be offline), in a temporary folder."""
    import tempfile

    from diffusers import ControlNetModel

    folder = Path(tempfile.mkdtemp(prefix="daydream-controlnet-config-"))
    with torch.device("meta"):
        model = ControlNetModel.from_unet(pipe.unet, load_weights_from_unet=False)
    model.save_config(folder)
    return folder


# --- IP-Adapters and Redux ---------------------------------------------------------------

IMAGE_PROJ_PREFIXES = ("ip_adapter_proj_model.", "image_proj.")
ADAPTER_PREFIXES = ("double_blocks.", "ip_adapter.")


def read_ip_adapter(path: Path) -> dict:
    """An IP-Adapter .safetensors file as diffusers' loaders read it (SD's image_proj./
    ip_adapter. keys, or XLabs' FLUX layout)."""
    from safetensors import safe_open

    state = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        for key in f.keys():
            rest = ".".join(key.split(".")[1:])
            if key.startswith(IMAGE_PROJ_PREFIXES):
                state["image_proj"][rest] = f.get_tensor(key)
            elif key.startswith(ADAPTER_PREFIXES):
                rest = (rest.replace("ip_adapter_double_stream_k_proj", "to_k_ip")
                        .replace("ip_adapter_double_stream_v_proj", "to_v_ip").replace("processor.", ""))
                state["ip_adapter"][rest] = f.get_tensor(key)
    if not state["image_proj"] or not state["ip_adapter"]:
        raise GuideError("its tensors are not those of an IP-Adapter")
    return state


def ip_adapter(pipe, found: Guide, models_path: Path, follow_links: bool = False) -> IPAdapter:
    """The IP-Adapter of `found` for `pipe` (read once per pipeline)."""
    from transformers import CLIPVisionModelWithProjection

    def load():
        try:
            path = _path(found, models_path, follow_links)
            if path.is_dir():  # a demo guide's folder
                weights, encoder = path / IP_ADAPTER_FILE, path / IMAGE_ENCODER
            else:
                root = Path(models_path) / guide_files.IPADAPTER_FOLDER
                weights, encoder = path, guide_files.image_encoder_for(path, root)
            model = CLIPVisionModelWithProjection.from_pretrained(encoder, local_files_only=True)
            return IPAdapter(read_ip_adapter(weights), _placed(model, pipe).eval())
        except GuideError:
            raise
        except Exception as exc:
            raise _failed(found, exc) from exc

    return _cached(pipe, ("ipadapter", found.id), load)


def redux(pipe, found: Guide, models_path: Path, follow_links: bool = False):
    """The FluxPriorReduxPipeline of `found` (its image encoder and embedder; the text
    encoders stay the model's), loaded once per pipeline."""
    from diffusers import FluxPriorReduxPipeline

    def load():
        try:
            path = _path(found, models_path, follow_links)
            loaded = FluxPriorReduxPipeline.from_pretrained(path, local_files_only=True, text_encoder=None,
                                                            tokenizer=None, text_encoder_2=None, tokenizer_2=None)
            loaded.set_progress_bar_config(disable=True)
            device = getattr(pipe, "_execution_device", None) or pipe.device
            return loaded.to(device=device, dtype=pipe.dtype)
        except Exception as exc:
            raise _failed(found, exc) from exc

    return _cached(pipe, ("redux", found.id), load)
