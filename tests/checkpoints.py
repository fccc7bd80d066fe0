"""Single-file checkpoints made from diffusers models, for tests.

Real single-file checkpoints (the .safetensors files people download) keep the
tensor names of the code the model was trained with: CompVis/LDM for SD 1.x,
Stability's SGM for SDXL, Stability's MMDiT for SD 3/3.5, Black Forest Labs'
code for FLUX.1. diffusers' single-file loader recognises and converts exactly
those names (diffusers/loaders/single_file_utils.py), so to test our loading
code with the tiny random-weight models we write them back in those layouts.

Each function here is the inverse of one of diffusers' converters
(convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, convert_open_clip_checkpoint,
convert_sd3_transformer_checkpoint_to_diffusers,
convert_flux_transformer_checkpoint_to_diffusers). The tables follow diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py and
convert_diffusers_to_original_sdxl.py, but are worked out from the model's
config instead of hard-coding SD's block counts, so they fit models of any size.
Every tensor of the model is written exactly once: a name the tables do not
know raises, rather than being left out of the file silently.

Pure functions: torch and safetensors only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = [
    "flux_transformer_state_dict",
    "ldm_clip_state_dict",
    "ldm_unet_state_dict",
    "ldm_vae_state_dict",
    "open_clip_state_dict",
    "save_flux_transformer",
    "save_sd1_checkpoint",
    "save_sd3_transformer",
    "save_sdxl_checkpoint",
    "sd3_transformer_state_dict",
]


class _Taker:
    """A state dict that tensors are taken out of, each once; `done()` raises if
    any were not taken (a name the conversion does not know)."""

    def __init__(self, state_dict: dict, what: str):
        self.left = dict(state_dict)
        self.what = what

    def __contains__(self, key: str) -> bool:
        return key in self.left

    def take(self, key: str) -> torch.Tensor:
        try:
            return self.left.pop(key)
        except KeyError:
            raise KeyError(f"{self.what}: no tensor {key!r}") from None

    def take_cat(self, *keys: str) -> torch.Tensor:
        return torch.cat([self.take(k) for k in keys], dim=0)

    def done(self) -> None:
        if self.left:
            raise ValueError(f"{self.what}: no original name for {sorted(self.left)}")


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    """(shift, scale) <-> (scale, shift): diffusers' swap_scale_shift, which is its
    own inverse."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _save(state_dict: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory (and views); copy each.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


# ---------------------------------------------------------------------------
# UNet (SD 1.x / SDXL): the inverse of convert_ldm_unet_checkpoint
# ---------------------------------------------------------------------------

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
    # SDXL's size/crop conditioning (addition_embed_type="text_time").
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "class_embedding.linear_1.": "label_emb.0.0.",
    "class_embedding.linear_2.": "label_emb.0.2.",
}

_UNET_RESNET = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "time_emb_proj.": "emb_layers.1.",
    "conv_shortcut.": "skip_connection.",
}


def _layers_per_block(config) -> int:
    layers = config["layers_per_block"]
    if isinstance(layers, (list, tuple)):
        if len(set(layers)) != 1:
            raise ValueError("diffusers' LDM converter needs the same layers_per_block for every block")
        layers = layers[0]
    return int(layers)


def _unet_prefixes(config) -> list[tuple[str, str, bool]]:
    """(diffusers prefix, LDM prefix, is a resnet) for every block of the UNet."""
    layers = _layers_per_block(config)
    down = list(config["down_block_types"])
    up = list(config["up_block_types"])
    out: list[tuple[str, str, bool]] = []

    slot = 1  # input_blocks.0 is conv_in
    for b, _kind in enumerate(down):
        for j in range(layers):
            out.append((f"down_blocks.{b}.resnets.{j}.", f"input_blocks.{slot}.0.", True))
            out.append((f"down_blocks.{b}.attentions.{j}.", f"input_blocks.{slot}.1.", False))
            slot += 1
        if b < len(down) - 1:  # every block but the last ends with a downsample
            out.append((f"down_blocks.{b}.downsamplers.0.conv.", f"input_blocks.{slot}.0.op.", False))
            slot += 1

    mid = config.get("mid_block_type") or "UNetMidBlock2DCrossAttn"
    if mid != "UNetMidBlock2DCrossAttn":
        raise ValueError(f"mid block {mid!r}: diffusers' LDM converter expects resnet, attention, resnet")
    out += [("mid_block.resnets.0.", "middle_block.0.", True),
            ("mid_block.attentions.0.", "middle_block.1.", False),
            ("mid_block.resnets.1.", "middle_block.2.", True)]

    slot = 0
    for b, kind in enumerate(up):
        for j in range(layers + 1):
            out.append((f"up_blocks.{b}.resnets.{j}.", f"output_blocks.{slot}.0.", True))
            out.append((f"up_blocks.{b}.attentions.{j}.", f"output_blocks.{slot}.1.", False))
            if j == layers and b < len(up) - 1:  # the upsample closes the block's last layer
                index = 2 if "CrossAttn" in kind else 1
                out.append((f"up_blocks.{b}.upsamplers.0.conv.", f"output_blocks.{slot}.{index}.conv.", False))
            slot += 1
    return out


def ldm_unet_state_dict(unet) -> dict:
    """A diffusers UNet2DConditionModel's weights under the LDM/SGM names (without
    the "model.diffusion_model." prefix)."""
    config = unet.config
    prefixes = _unet_prefixes(config)
    taker = _Taker(unet.state_dict(), "unet")
    out = {}
    for key in list(taker.left):
        new = None
        for hf, ldm in _UNET_TOP.items():
            if key.startswith(hf):
                new = ldm + key[len(hf):]
                break
        if new is None:
            for hf, ldm, resnet in prefixes:
                if key.startswith(hf):
                    rest = key[len(hf):]
                    if resnet:
                        for hf_part, ldm_part in _UNET_RESNET.items():
                            if rest.startswith(hf_part):
                                rest = ldm_part + rest[len(hf_part):]
                                break
                    new = ldm + rest
                    break
        if new is None:
            continue  # left in the taker: done() names it
        if new in out:
            raise ValueError(f"unet: {key!r} and another tensor both map to {new!r}")
        out[new] = taker.take(key)
    taker.done()
    return out


# ---------------------------------------------------------------------------
# VAE: the inverse of convert_ldm_vae_checkpoint
# ---------------------------------------------------------------------------

_VAE_TOP = {
    "encoder.conv_in.": "encoder.conv_in.",
    "encoder.conv_out.": "encoder.conv_out.",
    "encoder.conv_norm_out.": "encoder.norm_out.",
    "decoder.conv_in.": "decoder.conv_in.",
    "decoder.conv_out.": "decoder.conv_out.",
    "decoder.conv_norm_out.": "decoder.norm_out.",
    "quant_conv.": "quant_conv.",
    "post_quant_conv.": "post_quant_conv.",
}

_VAE_ATTENTION = {
    "group_norm.": "norm.",
    "to_q.": "q.",
    "to_k.": "k.",
    "to_v.": "v.",
    "to_out.0.": "proj_out.",
}


def ldm_vae_state_dict(vae) -> dict:
    """A diffusers AutoencoderKL's weights under the LDM names (without the
    "first_stage_model." prefix). The mid-block attention's projections are
    written as the 1x1 convolutions of the original (diffusers squeezes them)."""
    config = vae.config
    n_down = len(config["down_block_types"])
    n_up = len(config["up_block_types"])
    prefixes: dict[str, str] = dict(_VAE_TOP)
    for i in range(n_down):
        prefixes[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
    for i in range(n_up):
        # the decoder's blocks are numbered the other way round in LDM
        prefixes[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{n_up - 1 - i}.block."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{n_up - 1 - i}.upsample."
    for part in ("encoder", "decoder"):
        for i in range(2):
            prefixes[f"{part}.mid_block.resnets.{i}."] = f"{part}.mid.block_{i + 1}."

    taker = _Taker(vae.state_dict(), "vae")
    out = {}
    for key in list(taker.left):
        new = None
        for part in ("encoder", "decoder"):
            attn = f"{part}.mid_block.attentions.0."
            if key.startswith(attn):
                rest = key[len(attn):]
                for hf_part, ldm_part in _VAE_ATTENTION.items():
                    if rest.startswith(hf_part):
                        new = f"{part}.mid.attn_1." + ldm_part + rest[len(hf_part):]
                        break
        if new is None:
            for hf, ldm in prefixes.items():
                if key.startswith(hf):
                    new = ldm + key[len(hf):].replace("conv_shortcut.", "nin_shortcut.")
                    break
        if new is None:
            continue
        value = taker.take(key)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # linear -> 1x1 conv, as in the original
        out[new] = value
    taker.done()
    return out


# ---------------------------------------------------------------------------
# Text encoders
# ---------------------------------------------------------------------------

def _hf_clip_state_dict(text_encoder) -> dict:
    """The CLIP text model's weights under the names transformers has used for
    years ("text_model.…", and "text_projection.weight"): transformers 5.6+
    flattened CLIPTextModel (no "text_model." level), but checkpoints, and
    diffusers' single-file loader, keep the old names."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        if key.startswith("text_model.") or key.startswith("text_projection."):
            out[key] = value
        else:
            out["text_model." + key] = value
    return out


def ldm_clip_state_dict(text_encoder) -> dict:
    """OpenAI CLIP (CLIP-L) as LDM/SGM keep it: transformers' own names, under
    "cond_stage_model.transformer." (SD 1.x) or "conditioner.embedders.0.transformer."
    (SDXL); the inverse of convert_ldm_clip_checkpoint, which only strips the prefix."""
    return _hf_clip_state_dict(text_encoder)


_OPEN_CLIP_LAYER = {
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
    "self_attn.out_proj.": "attn.out_proj.",
}


def open_clip_state_dict(text_encoder) -> dict:
    """A CLIPTextModelWithProjection (SDXL's text_encoder_2, OpenCLIP ViT-bigG) in
    OpenCLIP's layout: "transformer.resblocks.N.attn.in_proj_weight" with q, k, v
    fused, "positional_embedding" and "text_projection" as bare tensors, the
    projection transposed (the inverse of convert_open_clip_checkpoint)."""
    taker = _Taker(_hf_clip_state_dict(text_encoder), "text_encoder_2")
    out = {
        "positional_embedding": taker.take("text_model.embeddings.position_embedding.weight"),
        "token_embedding.weight": taker.take("text_model.embeddings.token_embedding.weight"),
        "ln_final.weight": taker.take("text_model.final_layer_norm.weight"),
        "ln_final.bias": taker.take("text_model.final_layer_norm.bias"),
        # diffusers reads text_projection.weight = text_projection.T
        "text_projection": taker.take("text_projection.weight").T.contiguous(),
    }
    layers = sorted({int(k.split(".")[3]) for k in taker.left if k.startswith("text_model.encoder.layers.")})
    for n in layers:
        hf = f"text_model.encoder.layers.{n}."
        oc = f"transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[oc + f"attn.in_proj_{kind}"] = taker.take_cat(
                *(hf + f"self_attn.{p}_proj.{kind}" for p in "qkv"))
        for key in [k for k in taker.left if k.startswith(hf)]:
            rest = key[len(hf):]
            for hf_part, oc_part in _OPEN_CLIP_LAYER.items():
                if rest.startswith(hf_part):
                    out[oc + oc_part + rest[len(hf_part):]] = taker.take(key)
                    break
    taker.done()
    return out


# ---------------------------------------------------------------------------
# Full checkpoints
# ---------------------------------------------------------------------------

def _prefixed(prefix: str, state_dict: dict) -> dict:
    return {prefix + k: v for k, v in state_dict.items()}


def save_sd1_checkpoint(pipe, path) -> Path:
    """A full SD 1.x checkpoint in the CompVis/LDM layout: the UNet under
    "model.diffusion_model.", the VAE under "first_stage_model.", the CLIP text
    model under "cond_stage_model.transformer."."""
    state = {}
    state.update(_prefixed("model.diffusion_model.", ldm_unet_state_dict(pipe.unet)))
    state.update(_prefixed("first_stage_model.", ldm_vae_state_dict(pipe.vae)))
    state.update(_prefixed("cond_stage_model.transformer.", ldm_clip_state_dict(pipe.text_encoder)))
    return _save(state, path)


def save_sdxl_checkpoint(pipe, path) -> Path:
    """A full SDXL checkpoint in Stability's SGM layout: UNet, VAE, CLIP-L under
    "conditioner.embedders.0.transformer.", OpenCLIP bigG under
    "conditioner.embedders.1.model."."""
    state = {}
    state.update(_prefixed("model.diffusion_model.", ldm_unet_state_dict(pipe.unet)))
    state.update(_prefixed("first_stage_model.", ldm_vae_state_dict(pipe.vae)))
    state.update(_prefixed("conditioner.embedders.0.transformer.", ldm_clip_state_dict(pipe.text_encoder)))
    state.update(_prefixed("conditioner.embedders.1.model.", open_clip_state_dict(pipe.text_encoder_2)))
    return _save(state, path)


# ---------------------------------------------------------------------------
# SD 3 / 3.5 transformer: the inverse of convert_sd3_transformer_checkpoint_to_diffusers
# ---------------------------------------------------------------------------

def sd3_transformer_state_dict(transformer) -> dict:
    """An SD3Transformer2DModel's weights in Stability's MMDiT layout
    ("joint_blocks.N.x_block…", "joint_blocks.N.context_block…"), no prefix."""
    state = transformer.state_dict()
    if "pos_embed.pos_embed" not in state:
        # A non-persistent buffer where pos_embed_max_size is unset; diffusers'
        # converter needs it in the file all the same.
        state = dict(state)
        state["pos_embed.pos_embed"] = transformer.pos_embed.pos_embed
    t = _Taker(state, "sd3 transformer")
    out = {
        "pos_embed": t.take("pos_embed.pos_embed"),
        "x_embedder.proj.weight": t.take("pos_embed.proj.weight"),
        "x_embedder.proj.bias": t.take("pos_embed.proj.bias"),
        "context_embedder.weight": t.take("context_embedder.weight"),
        "context_embedder.bias": t.take("context_embedder.bias"),
    }
    for hf, orig in (("time_text_embed.timestep_embedder.", "t_embedder.mlp."),
                     ("time_text_embed.text_embedder.", "y_embedder.mlp.")):
        for kind in ("weight", "bias"):
            out[f"{orig}0.{kind}"] = t.take(f"{hf}linear_1.{kind}")
            out[f"{orig}2.{kind}"] = t.take(f"{hf}linear_2.{kind}")

    num_layers = len(transformer.transformer_blocks)
    for i in range(num_layers):
        hf = f"transformer_blocks.{i}."
        x = f"joint_blocks.{i}.x_block."
        c = f"joint_blocks.{i}.context_block."
        last = i == num_layers - 1
        for kind in ("weight", "bias"):
            out[f"{x}attn.qkv.{kind}"] = t.take_cat(*(f"{hf}attn.to_{p}.{kind}" for p in "qkv"))
            out[f"{c}attn.qkv.{kind}"] = t.take_cat(*(f"{hf}attn.add_{p}_proj.{kind}" for p in "qkv"))
            out[f"{x}attn.proj.{kind}"] = t.take(f"{hf}attn.to_out.0.{kind}")
            out[f"{x}adaLN_modulation.1.{kind}"] = t.take(f"{hf}norm1.linear.{kind}")
            context_mod = t.take(f"{hf}norm1_context.linear.{kind}")
            # the last block's context half is an AdaLayerNormContinuous: (scale, shift)
            out[f"{c}adaLN_modulation.1.{kind}"] = _swap_halves(context_mod) if last else context_mod
            out[f"{x}mlp.fc1.{kind}"] = t.take(f"{hf}ff.net.0.proj.{kind}")
            out[f"{x}mlp.fc2.{kind}"] = t.take(f"{hf}ff.net.2.{kind}")
            if not last:
                out[f"{c}attn.proj.{kind}"] = t.take(f"{hf}attn.to_add_out.{kind}")
                out[f"{c}mlp.fc1.{kind}"] = t.take(f"{hf}ff_context.net.0.proj.{kind}")
                out[f"{c}mlp.fc2.{kind}"] = t.take(f"{hf}ff_context.net.2.{kind}")
            if f"{hf}attn2.to_q.{kind}" in t:  # SD 3.5 Medium's dual attention
                out[f"{x}attn2.qkv.{kind}"] = t.take_cat(*(f"{hf}attn2.to_{p}.{kind}" for p in "qkv"))
                out[f"{x}attn2.proj.{kind}"] = t.take(f"{hf}attn2.to_out.0.{kind}")
        # SD 3.5's RMS qk-norm (weights only, as diffusers' converter reads it)
        for hf_name, orig in (("attn.norm_q", f"{x}attn.ln_q"), ("attn.norm_k", f"{x}attn.ln_k"),
                              ("attn.norm_added_q", f"{c}attn.ln_q"), ("attn.norm_added_k", f"{c}attn.ln_k"),
                              ("attn2.norm_q", f"{x}attn2.ln_q"), ("attn2.norm_k", f"{x}attn2.ln_k")):
            if f"{hf}{hf_name}.weight" in t:
                out[f"{orig}.weight"] = t.take(f"{hf}{hf_name}.weight")

    out["final_layer.linear.weight"] = t.take("proj_out.weight")
    out["final_layer.linear.bias"] = t.take("proj_out.bias")
    out["final_layer.adaLN_modulation.1.weight"] = _swap_halves(t.take("norm_out.linear.weight"))
    out["final_layer.adaLN_modulation.1.bias"] = _swap_halves(t.take("norm_out.linear.bias"))
    t.done()
    return out


def save_sd3_transformer(transformer, path, prefix: str = "model.diffusion_model.") -> Path:
    """The SD 3/3.5 transformer alone, as Stability's files keep it
    ("model.diffusion_model.joint_blocks.N.…")."""
    return _save(_prefixed(prefix, sd3_transformer_state_dict(transformer)), path)


# ---------------------------------------------------------------------------
# FLUX.1 transformer: the inverse of convert_flux_transformer_checkpoint_to_diffusers
# ---------------------------------------------------------------------------

def flux_transformer_state_dict(transformer) -> dict:
    """A FluxTransformer2DModel's weights in Black Forest Labs' layout
    ("double_blocks.N.…", "single_blocks.N.…", "img_in", "txt_in", "time_in",
    "vector_in", "guidance_in", "final_layer"), no prefix."""
    t = _Taker(transformer.state_dict(), "flux transformer")
    out = {}
    embedders = [("time_text_embed.timestep_embedder.", "time_in."),
                 ("time_text_embed.text_embedder.", "vector_in.")]
    if "time_text_embed.guidance_embedder.linear_1.weight" in t:  # FLUX.1 [dev]; [schnell] has none
        embedders.append(("time_text_embed.guidance_embedder.", "guidance_in."))
    for kind in ("weight", "bias"):
        for hf, orig in embedders:
            out[f"{orig}in_layer.{kind}"] = t.take(f"{hf}linear_1.{kind}")
            out[f"{orig}out_layer.{kind}"] = t.take(f"{hf}linear_2.{kind}")
        out[f"txt_in.{kind}"] = t.take(f"context_embedder.{kind}")
        out[f"img_in.{kind}"] = t.take(f"x_embedder.{kind}")

    for i in range(len(transformer.transformer_blocks)):
        hf = f"transformer_blocks.{i}."
        d = f"double_blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{d}img_mod.lin.{kind}"] = t.take(f"{hf}norm1.linear.{kind}")
            out[f"{d}txt_mod.lin.{kind}"] = t.take(f"{hf}norm1_context.linear.{kind}")
            out[f"{d}img_attn.qkv.{kind}"] = t.take_cat(*(f"{hf}attn.to_{p}.{kind}" for p in "qkv"))
            out[f"{d}txt_attn.qkv.{kind}"] = t.take_cat(*(f"{hf}attn.add_{p}_proj.{kind}" for p in "qkv"))
            out[f"{d}img_attn.proj.{kind}"] = t.take(f"{hf}attn.to_out.0.{kind}")
            out[f"{d}txt_attn.proj.{kind}"] = t.take(f"{hf}attn.to_add_out.{kind}")
            out[f"{d}img_mlp.0.{kind}"] = t.take(f"{hf}ff.net.0.proj.{kind}")
            out[f"{d}img_mlp.2.{kind}"] = t.take(f"{hf}ff.net.2.{kind}")
            out[f"{d}txt_mlp.0.{kind}"] = t.take(f"{hf}ff_context.net.0.proj.{kind}")
            out[f"{d}txt_mlp.2.{kind}"] = t.take(f"{hf}ff_context.net.2.{kind}")
        out[f"{d}img_attn.norm.query_norm.scale"] = t.take(f"{hf}attn.norm_q.weight")
        out[f"{d}img_attn.norm.key_norm.scale"] = t.take(f"{hf}attn.norm_k.weight")
        out[f"{d}txt_attn.norm.query_norm.scale"] = t.take(f"{hf}attn.norm_added_q.weight")
        out[f"{d}txt_attn.norm.key_norm.scale"] = t.take(f"{hf}attn.norm_added_k.weight")

    for i in range(len(transformer.single_transformer_blocks)):
        hf = f"single_transformer_blocks.{i}."
        s = f"single_blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{s}modulation.lin.{kind}"] = t.take(f"{hf}norm.linear.{kind}")
            # q, k, v and the MLP's input projection are one linear in BFL's code
            out[f"{s}linear1.{kind}"] = t.take_cat(
                f"{hf}attn.to_q.{kind}", f"{hf}attn.to_k.{kind}", f"{hf}attn.to_v.{kind}",
                f"{hf}proj_mlp.{kind}")
            out[f"{s}linear2.{kind}"] = t.take(f"{hf}proj_out.{kind}")
        out[f"{s}norm.query_norm.scale"] = t.take(f"{hf}attn.norm_q.weight")
        out[f"{s}norm.key_norm.scale"] = t.take(f"{hf}attn.norm_k.weight")

    out["final_layer.linear.weight"] = t.take("proj_out.weight")
    out["final_layer.linear.bias"] = t.take("proj_out.bias")
    # BFL's final adaLN gives (shift, scale); diffusers' AdaLayerNormContinuous (scale, shift)
    out["final_layer.adaLN_modulation.1.weight"] = _swap_halves(t.take("norm_out.linear.weight"))
    out["final_layer.adaLN_modulation.1.bias"] = _swap_halves(t.take("norm_out.linear.bias"))
    t.done()
    return out


def save_flux_transformer(transformer, path, prefix: str = "") -> Path:
    """The FLUX.1 transformer alone, as Black Forest Labs' flux1-dev/-schnell
    .safetensors keep it (bare names; ComfyUI's saves add "model.diffusion_model.",
    which diffusers strips as well)."""
    return _save(_prefixed(prefix, flux_transformer_state_dict(transformer)), path)
