"""Reference images: IP-Adapter and FLUX Redux.

IP-Adapter (SD 1.x, SDXL, FLUX): for the one call that has references, the adapter is
loaded onto the denoiser once per reference (each reference its own slot, so each its own
scale: set_ip_adapter_scale([w1, w2, …])), the references given as ip_adapter_image (one
picture a slot), and unloaded when the call ends, whatever happened: a call without
references runs on the plain denoiser, so nothing leaks into the next task. The weights
(read once per loaded pipeline, kept on the CPU) and the image encoder (kept on the
device) are what is cached; loading them onto the denoiser is building a few small
projections. The references of one call share the first one's image encoder (an
adapter's own encoder is the one beside it; mixing adapters trained on different
encoders in one task is refused here).

FLUX Redux (a FluxPriorReduxPipeline folder): each reference's SigLIP embedding, through
Redux's embedder, becomes image tokens (scaled by the reference's weight, as diffusers'
prompt_embeds_scale and ComfyUI's "multiply" strength do) after each row's own prompt
tokens: the call gets prompt_embeds and pooled_prompt_embeds instead of the prompt. FLUX
normalises each token before attending to it, so the weight acts softly (0 leaves the
reference out). It works with every FLUX kind (text to image, image to image, inpaint,
ControlNet).

A call's rows share their references (the batch key holds the reference images): the
diffusers pipelines repeat one set of image embeddings over the batch."""
from __future__ import annotations

import torch

from worker.guides.loading import GuideError


class WithIPAdapters:
    """The kind's runner, called with IP-Adapters loaded on its pipeline for that call only."""

    def __init__(self, runner, pipeline, adapters: list, weights: list[float], pictures: list):
        self.runner, self.pipeline = runner, pipeline
        self.adapters, self.weights, self.pictures = adapters, weights, pictures

    def __call__(self, **arguments):
        from transformers import CLIPImageProcessor

        pipeline = self.pipeline
        encoder = self.adapters[0].image_encoder
        if any(adapter.image_encoder is not encoder for adapter in self.adapters[1:]):
            raise GuideError("These reference images use IP-Adapters made for different image encoders; "
                             "use one IP-Adapter for all the references of a task.")
        before = (getattr(pipeline, "image_encoder", None), getattr(pipeline, "feature_extractor", None))
        size = int(encoder.config.image_size)
        pipeline.register_modules(image_encoder=encoder,
                                  feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
        count = len(self.adapters)
        try:
            states = [adapter.state_dict for adapter in self.adapters]
            if hasattr(pipeline, "transformer"):  # FLUX (FluxIPAdapterMixin)
                pipeline.load_ip_adapter(states, weight_name=["ip-adapter.safetensors"] * count,
                                         subfolder=[""] * count)
            else:
                pipeline.load_ip_adapter(states, subfolder=[""] * count, weight_name=[""] * count)
            pipeline.set_ip_adapter_scale(list(self.weights))
            return self.runner(**arguments, ip_adapter_image=list(self.pictures))
        finally:
            unload(pipeline)
            pipeline.register_modules(image_encoder=before[0], feature_extractor=before[1])


def unload(pipeline) -> None:
    """The denoiser as it was before load_ip_adapter (a failed load included)."""
    denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    if denoiser is None:
        return
    loaded = getattr(denoiser, "encoder_hid_proj", None) is not None
    if not loaded and hasattr(pipeline, "transformer"):
        loaded = any(type(p).__name__.startswith("FluxIPAdapter") for p in denoiser.attn_processors.values())
    if not loaded and not any("IPAdapter" in type(p).__name__ for p in denoiser.attn_processors.values()):
        return
    pipeline.unload_ip_adapter()


@torch.no_grad()
def redux_arguments(pipeline, arguments: dict, reduxes: list, weights: list[float], pictures: list) -> dict:
    """The call's arguments with each row's prompt tokens followed by the references' Redux
    image tokens (module doc)."""
    out = dict(arguments)
    prompts = out.pop("prompt")
    out.pop("prompt_2", None)
    device = getattr(pipeline, "_execution_device", None) or pipeline.device
    embeds, pooled, _ = pipeline.encode_prompt(prompt=prompts, prompt_2=None, device=device,
                                               num_images_per_prompt=1,
                                               max_sequence_length=int(out.get("max_sequence_length") or 512))
    tokens = []
    for redux, weight, picture in zip(reduxes, weights, pictures):
        latents = redux.encode_image(picture, device, 1)
        image_embeds = redux.image_embedder(latents).image_embeds.to(dtype=embeds.dtype) * float(weight)
        tokens.append(image_embeds.expand(embeds.shape[0], -1, -1))
    out["prompt_embeds"] = torch.cat([embeds, *tokens], dim=1)
    out["pooled_prompt_embeds"] = pooled
    return out
