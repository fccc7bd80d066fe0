"""What a Qwen-Image call is given (worker/pipelines/qwen.py): the card's guidance as Qwen's
true_cfg_scale (with Qwen's empty negative prompt when the task has none, so the guidance
acts), guidance_scale only for a guidance-distilled transformer, other families' calls
untouched; Qwen-Image-Edit's picture once per prompt, Edit Plus's pictures themselves and
one image a call. Pipelines are stand-ins named as diffusers' classes are."""
from __future__ import annotations

from types import SimpleNamespace

from worker.pipelines import qwen


def stand_in(class_name: str, guidance_embeds: bool = False):
    """An object whose class is named `class_name`, with a transformer config."""
    made = type(class_name, (), {})()
    made.transformer = SimpleNamespace(config=SimpleNamespace(guidance_embeds=guidance_embeds))
    return made


def test_guidance_becomes_true_cfg_with_qwens_empty_negative_prompt():
    arguments = qwen.call_arguments(stand_in("QwenImagePipeline"),
                                    {"prompt": ["a", "b"], "guidance_scale": 4.0, "num_inference_steps": 2})
    assert arguments == {"prompt": ["a", "b"], "true_cfg_scale": 4.0, "negative_prompt": [" ", " "],
                         "num_inference_steps": 2}


def test_a_negative_prompt_given_is_kept_and_guidance_one_adds_none():
    given = qwen.call_arguments(stand_in("QwenImageImg2ImgPipeline"),
                                {"prompt": ["a"], "negative_prompt": ["fog"], "guidance_scale": 3.0})
    assert given["negative_prompt"] == ["fog"] and given["true_cfg_scale"] == 3.0
    plain = qwen.call_arguments(stand_in("QwenImageInpaintPipeline"), {"prompt": ["a"], "guidance_scale": 1.0})
    assert plain == {"prompt": ["a"], "true_cfg_scale": 1.0}


def test_a_distilled_transformer_keeps_guidance_scale_and_other_families_are_untouched():
    distilled = qwen.call_arguments(stand_in("QwenImagePipeline", guidance_embeds=True),
                                    {"prompt": ["a"], "guidance_scale": 3.5})
    assert distilled == {"prompt": ["a"], "guidance_scale": 3.5}
    other = {"prompt": ["a"], "guidance_scale": 3.5}
    assert qwen.call_arguments(stand_in("FluxPipeline"), other) is other


def test_edit_gives_the_reference_once_a_prompt_and_edit_plus_its_pictures_one_image_a_call():
    pictures, reference = ["first", "second"], "stitched"
    base = {"prompt": ["a", "b"], "guidance_scale": 1.0, "width": 64, "height": 64}
    edit = qwen.edit_arguments(stand_in("QwenImageEditPipeline"), dict(base), pictures, reference)
    assert edit["image"] == ["stitched", "stitched"] and "guidance_scale" not in edit
    plus_pipe = stand_in("QwenImageEditPlusPipeline")
    plus = qwen.edit_arguments(plus_pipe, {**base, "prompt": ["a"]}, pictures, reference)
    assert plus["image"] == ["first", "second"] and plus["true_cfg_scale"] == 1.0
    assert qwen.one_image_a_call(plus_pipe) and not qwen.one_image_a_call(stand_in("QwenImageEditPipeline"))
