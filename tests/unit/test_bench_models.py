"""The benchmarks' random-weight models (bench/real_models.py) have the real
architectures: the real-size configs are checked on torch's meta device (shapes, no
memory), and the tiny variants are built, saved and loaded as the worker loads a model."""

import pytest
import torch

from bench import real_models

# Parameter counts of the published models (millions): SD 1.5 and SDXL base 1.0.
REAL_MILLIONS = {
    ("sd15", "unet"): 859.5,
    ("sd15", "text_encoder"): 123.1,
    ("sd15", "vae"): 83.7,
    ("sdxl", "unet"): 2567.5,
    ("sdxl", "text_encoder"): 123.1,
    ("sdxl", "text_encoder_2"): 694.7,
    ("sdxl", "vae"): 83.7,
}


@pytest.fixture(scope="module", params=real_models.ARCHITECTURES)
def meta_pipeline(request):
    return request.param, real_models.make_pipeline(request.param, device="meta")


def test_the_real_size_models_have_the_published_parameter_counts(meta_pipeline):
    arch, pipe = meta_pipeline
    for (wanted_arch, part), millions in REAL_MILLIONS.items():
        if wanted_arch != arch:
            continue
        count = real_models.parameter_count(getattr(pipe, part)) / 1e6
        assert count == pytest.approx(millions, rel=0.01), f"{arch} {part}: {count:.1f} M"


def test_the_real_size_models_are_built_without_memory_on_the_meta_device(meta_pipeline):
    _arch, pipe = meta_pipeline
    assert all(p.is_meta for p in pipe.unet.parameters())


def test_sdxl_conditioning_matches_its_text_encoders(meta_pipeline):
    arch, pipe = meta_pipeline
    if arch != "sdxl":
        pytest.skip("SDXL only")
    config = pipe.unet.config
    assert config.cross_attention_dim == pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert config.projection_class_embeddings_input_dim == (
        6 * config.addition_time_embed_dim + pipe.text_encoder_2.config.projection_dim) == 2816
    assert tuple(config.transformer_layers_per_block) == (1, 2, 10)


@pytest.mark.parametrize("arch", real_models.ARCHITECTURES)
def test_a_tiny_variant_saves_as_a_folder_the_worker_loads_and_runs(tmp_path, arch):
    from services.generation.families import detect_folder
    from worker.pipelines.load import load_pipeline

    folder = real_models.build_folder(arch, tmp_path / f"{arch}-tiny", tiny=True)
    assert real_models.build_folder(arch, folder, tiny=True) == folder  # kept, not rebuilt
    assert detect_folder(folder).family == {"sd15": "sd1", "sdxl": "sdxl"}[arch]
    assert real_models.parameter_count(real_models.make_pipeline(arch, tiny=True)) < 10e6

    pipe = load_pipeline(folder.name, tmp_path, device="cpu")
    size = 64 if arch == "sd15" else 128
    image = pipe(prompt="a lighthouse", num_inference_steps=2, guidance_scale=5.0, width=size, height=size,
                 generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert image.size == (size, size)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        real_models.make_pipeline("sd9")


# The transformers' published parameter counts (millions): FLUX.1 dev, Z-Image Turbo,
# FLUX.2 klein 4B; and the VAEs.
REAL_TRANSFORMER_MILLIONS = {
    ("flux1", "transformer"): 11901.4,
    ("flux1", "vae"): 83.8,
    ("zimage", "transformer"): 6154.9,
    ("flux2-klein", "transformer"): 3875.5,
    ("flux2-klein", "vae"): 84.0,
}


@pytest.mark.parametrize("arch", real_models.TRANSFORMER_ARCHITECTURES)
def test_the_real_size_transformers_have_the_published_parameter_counts(arch):
    pipe = real_models.make_pipeline(arch, device="meta")
    assert pipe.text_encoder is None  # the benchmark passes prompt embeddings instead
    for (wanted_arch, part), millions in REAL_TRANSFORMER_MILLIONS.items():
        if wanted_arch == arch:
            count = real_models.parameter_count(getattr(pipe, part)) / 1e6
            assert count == pytest.approx(millions, rel=0.001), f"{arch} {part}: {count:.1f} M"


@pytest.mark.parametrize("arch", real_models.TRANSFORMER_ARCHITECTURES)
def test_a_tiny_transformer_pipeline_runs_on_prompt_embeddings_of_its_shapes(arch):
    pipe = real_models.make_pipeline(arch, dtype=torch.bfloat16, tiny=True)
    assert real_models.denoiser(pipe).dtype == torch.bfloat16  # made in the dtype, not cast from float32
    pipe = real_models.make_pipeline(arch, tiny=True)
    inputs = real_models.prompt_inputs(arch, tiny=True)
    latents = pipe(**inputs, num_inference_steps=2, width=64, height=64, output_type="latent",
                   generator=torch.Generator("cpu").manual_seed(0)).images
    assert torch.isfinite(latents).all()
