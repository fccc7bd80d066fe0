"""What the Qwen-Image pipelines take that other families' do not.

- Guidance: Qwen-Image runs real classifier-free guidance as `true_cfg_scale`, and only
  when there is a negative prompt; its `guidance_scale` is for guidance-distilled
  transformers alone. The card's guidance is therefore passed as true_cfg_scale, and a
  task above 1 without a negative prompt gets Qwen's own empty one (" "), so the guidance
  a person set always acts (call_arguments).
- Editing (worker/kinds/edit.py): Qwen-Image-Edit takes the picture (one per prompt) and
  encodes it with the prompt in its Qwen2.5-VL; Edit Plus takes up to three pictures for
  one prompt, and one prompt a call (edit_arguments, one_image_a_call).
"""
from __future__ import annotations

# Qwen's own "no negative prompt" (its examples pass " "): true CFG needs one.
EMPTY_NEGATIVE = " "


def is_qwen(runner) -> bool:
    return type(runner).__name__.startswith("QwenImage")


def is_edit_plus(runner) -> bool:
    return type(runner).__name__.startswith("QwenImageEditPlus")


def is_qwen_edit(runner) -> bool:
    return type(runner).__name__.startswith("QwenImageEdit")


def call_arguments(runner, kwargs: dict) -> dict:
    """`kwargs` for a call of `runner`: unchanged unless it is a Qwen-Image pipeline,
    whose guidance becomes true_cfg_scale (see the module docstring)."""
    if not is_qwen(runner) or "guidance_scale" not in kwargs:
        return kwargs
    kwargs = dict(kwargs)
    guidance = kwargs.pop("guidance_scale")
    transformer = getattr(runner, "transformer", None)
    if getattr(getattr(transformer, "config", None), "guidance_embeds", False):
        kwargs["guidance_scale"] = guidance  # a guidance-distilled transformer embeds it
        return kwargs
    kwargs["true_cfg_scale"] = float(guidance or 0.0)
    if kwargs["true_cfg_scale"] > 1 and "negative_prompt" not in kwargs and "negative_prompt_embeds" not in kwargs:
        prompts = kwargs.get("prompt")
        count = len(prompts) if isinstance(prompts, list) else len(kwargs.get("prompt_embeds", [None]))
        kwargs["negative_prompt"] = [EMPTY_NEGATIVE] * count
    return kwargs


def edit_arguments(runner, arguments: dict, pictures: list, reference) -> dict:
    """The call's arguments for a Qwen-Image-Edit pipeline. arguments: the kind's prompt
    arguments (a prompt and negative prompt per row, steps, guidance) with width and
    height; pictures: the edit's pictures (the same for every row: the batch key), which
    Edit Plus takes themselves, for one prompt a call (one_image_a_call); reference: them
    stitched into one, which the plain Edit takes (once per row); the worker gives each
    pipeline only what it takes (the other is empty: nothing is stitched for Edit Plus)."""
    arguments = call_arguments(runner, arguments)
    if is_edit_plus(runner):
        return {**arguments, "image": list(pictures)}
    return {**arguments, "image": [reference] * len(arguments["prompt"])}


def one_image_a_call(pipe) -> bool:
    """Edit Plus pairs its pictures with one prompt (QwenImageEditPlusPipeline refuses a
    batch): its calls hold one image (worker/jobs.images_per_call)."""
    return is_edit_plus(pipe)


# ComfyUI's Qwen-Image files name the transformer's tensors as diffusers does, under
# this prefix, which diffusers' single-file loader for it does not strip.
COMFY_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def single_file_source(path):
    """What QwenImageTransformer2DModel.from_single_file reads for the file at `path`: the
    path itself, or (a ComfyUI file) its tensors with their prefix taken off."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        prefixed = any(key.startswith(COMFY_PREFIXES) for key in handle.keys())
    if not prefixed:
        return str(path)
    tensors = load_file(str(path))
    for prefix in COMFY_PREFIXES:
        tensors = {key.removeprefix(prefix): value for key, value in tensors.items()}
    return tensors
