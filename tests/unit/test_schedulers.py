"""Schedulers for every family (worker/schedulers.py), on the tiny demo models: every
UNet scheduler on SD 1.x, some on SDXL, flow_euler on SD 3 and FLUX."""

import logging

import numpy as np
import pytest
import torch
from diffusers import (
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    StableDiffusionPipeline,
)

from services.generation.schedulers import (
    FLOW_SCHEDULERS, SCHEDULERS, SIGMA_SCHEDULES, UNET_SCHEDULERS, sampler_of, schedule_of, with_schedule,
)
from worker.demo_model import build_demo_model
from worker.schedulers import SCHEDULER_SETTINGS, apply_scheduler


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models: threads only fight over a shared machine's cores.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def demo_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-models")
    made = {}

    def folder(family):
        if family not in made:
            made[family] = build_demo_model(root / f"daydream-demo-{family}", family)
        return made[family]

    return folder


def load_demo(folder, sd1=False):
    cls = StableDiffusionPipeline if sd1 else DiffusionPipeline
    pipe = cls.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sd1_pipe(demo_folders):
    return load_demo(demo_folders("sd1"), sd1=True)


def sample_with(pipe, name, seed=7, steps=2, height=64, width=64, **apply):
    apply_scheduler(pipe, name, **apply)
    generator = torch.Generator("cpu").manual_seed(seed)
    return pipe("a red apple", height=height, width=width, num_inference_steps=steps, guidance_scale=2.0,
                generator=generator, output_type="np").images


class DiffusersWarnings(logging.Handler):
    """diffusers' loggers do not propagate to the root logger: listen on its own."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("diffusers").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("diffusers").removeHandler(self)


def test_settings_cover_every_name():
    assert SCHEDULER_SETTINGS.keys() == SCHEDULERS.keys()
    dpm_2m, extra = SCHEDULER_SETTINGS["dpmpp_2m"]
    assert dpm_2m is DPMSolverMultistepScheduler
    assert extra["algorithm_type"] == "dpmsolver++" and extra["solver_order"] == 2
    assert extra["use_karras_sigmas"] is False
    assert SCHEDULER_SETTINGS["dpmpp_2m_karras"][1]["use_karras_sigmas"] is True
    assert SCHEDULER_SETTINGS["dpmpp_sde_karras"][1]["use_karras_sigmas"] is True
    assert SCHEDULER_SETTINGS["flow_euler"][0] is FlowMatchEulerDiscreteScheduler
    for key, (sampler, schedule) in SIGMA_SCHEDULES.items():
        assert sampler_of(key) == sampler and schedule_of(key) == schedule and with_schedule(sampler, schedule) == key


@pytest.mark.parametrize("name", UNET_SCHEDULERS)
def test_every_unet_scheduler_on_sd1_is_finite_and_reproducible(sd1_pipe, name):
    cls, extra = SCHEDULER_SETTINGS[name]
    with DiffusersWarnings() as warned:
        first = sample_with(sd1_pipe, name, steps=3 if name == "pndm" else 2)
    assert isinstance(sd1_pipe.scheduler, cls)
    for key, value in extra.items():
        if key in sd1_pipe.scheduler.config:
            assert sd1_pipe.scheduler.config[key] == value, key
    assert not [m for m in warned.records if "not expected" in m], warned.records
    second = sample_with(sd1_pipe, name, steps=3 if name == "pndm" else 2)
    assert first.shape == (1, 64, 64, 3) and np.isfinite(first).all()
    assert np.array_equal(first, second)


def karras(high, low, n, rho=7.0):
    ramp = np.linspace(0, 1, n)
    return (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho


@pytest.mark.parametrize("schedule", ["karras", "exponential"])
def test_euler_ancestral_runs_on_a_karras_or_exponential_schedule(sd1_pipe, schedule):
    """A1111's "Euler a" with the schedule type Karras (or Exponential), which diffusers'
    EulerAncestralDiscreteScheduler has no setting for: the sigmas are redrawn between the
    plain schedule's ends, the timesteps follow them, and the picture differs from plain
    Euler a while staying reproducible."""
    plain = apply_scheduler(sd1_pipe, "euler_a")
    plain.set_timesteps(8)
    plain_sigmas = plain.sigmas.numpy().copy()
    scheduled = apply_scheduler(sd1_pipe, f"euler_a_{schedule}")
    assert isinstance(scheduled, SCHEDULER_SETTINGS[f"euler_a_{schedule}"][0]) and scheduled is not plain
    scheduled.set_timesteps(8)
    sigmas = scheduled.sigmas.numpy()
    high, low = float(plain_sigmas[0]), float(plain_sigmas[-2])
    expected = karras(high, low, 8) if schedule == "karras" else np.exp(np.linspace(np.log(high), np.log(low), 8))
    assert np.allclose(sigmas[:-1], expected, rtol=1e-4) and sigmas[-1] == 0
    assert not np.allclose(sigmas, plain_sigmas)  # not the model's own schedule
    timesteps = scheduled.timesteps.numpy()
    assert len(timesteps) == 8 and (np.diff(timesteps) < 0).all()  # falling with the sigmas
    assert timesteps[0] == pytest.approx(plain.timesteps.numpy()[0], abs=0.01)  # same ends
    assert timesteps[-1] == pytest.approx(plain.timesteps.numpy()[-1], abs=0.01)
    first = sample_with(sd1_pipe, f"euler_a_{schedule}", steps=4)
    assert np.isfinite(first).all()
    assert np.array_equal(first, sample_with(sd1_pipe, f"euler_a_{schedule}", steps=4))
    assert not np.array_equal(first, sample_with(sd1_pipe, "euler_a", steps=4))


def test_the_schedule_variants_set_diffusers_sigma_settings(sd1_pipe):
    for name in ("euler", "dpmpp_2m", "unipc"):
        assert apply_scheduler(sd1_pipe, f"{name}_karras").config.use_karras_sigmas is True
        assert apply_scheduler(sd1_pipe, f"{name}_exponential").config.use_exponential_sigmas is True
        plain = apply_scheduler(sd1_pipe, name).config
        assert not plain.use_karras_sigmas and not plain.use_exponential_sigmas
    assert apply_scheduler(sd1_pipe, "dpmpp_sde_exponential").config.use_exponential_sigmas is True


def test_sde_noise_follows_the_seed(sd1_pipe):
    a = sample_with(sd1_pipe, "dpmpp_sde_karras", seed=1)
    b = sample_with(sd1_pipe, "dpmpp_sde_karras", seed=2)
    assert not np.array_equal(a, b)
    # An explicit seed or generator seeds the Brownian tree; it does not stick to the
    # reused scheduler for the next request.
    c = sample_with(sd1_pipe, "dpmpp_sde_karras", seed=1, steps=2, generator=torch.Generator().manual_seed(1))
    d = apply_scheduler(sd1_pipe, "dpmpp_sde_karras", seed=1) and sd1_pipe(
        "a red apple", height=64, width=64, num_inference_steps=2, guidance_scale=2.0,
        generator=torch.Generator().manual_seed(1), output_type="np").images
    assert np.array_equal(c, d)
    assert sd1_pipe.scheduler.noise_sampler_seed == 1
    sample_with(sd1_pipe, "dpmpp_sde_karras", seed=1)
    assert sd1_pipe.scheduler.noise_sampler_seed is None


def test_made_once_from_the_models_own_config(demo_folders):
    pipe = load_demo(demo_folders("sd1"), sd1=True)
    # A v-prediction model with trailing spacing (as SD 2.x configs can say).
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, prediction_type="v_prediction",
                                                        timestep_spacing="trailing")
    own = pipe.scheduler
    assert apply_scheduler(pipe, "euler") is own  # the model's own one, as it is
    karras = apply_scheduler(pipe, "dpmpp_2m_karras")
    plain = apply_scheduler(pipe, "dpmpp_2m")
    assert pipe.scheduler is plain and plain is not karras
    assert karras.config.use_karras_sigmas and not plain.config.use_karras_sigmas
    for name in UNET_SCHEDULERS:
        scheduler = apply_scheduler(pipe, name)
        assert apply_scheduler(pipe, name) is scheduler  # reused
        assert scheduler.config.prediction_type == "v_prediction"
        if "timestep_spacing" in scheduler.config:
            assert scheduler.config.timestep_spacing == "trailing", name
    assert apply_scheduler(pipe, "ddim").config.clip_sample is False
    assert apply_scheduler(pipe, "ddim").config.set_alpha_to_one is False
    assert apply_scheduler(pipe, "pndm").config.skip_prk_steps is True
    assert apply_scheduler(pipe, "euler") is own


def test_unknown_and_mismatched_names_raise(sd1_pipe):
    with pytest.raises(ValueError, match="Unknown scheduler"):
        apply_scheduler(sd1_pipe, "heun")
    for name in FLOW_SCHEDULERS:
        with pytest.raises(ValueError, match="does not fit a UNet model"):
            apply_scheduler(sd1_pipe, name)


@pytest.fixture(scope="module")
def sdxl_pipe(demo_folders):
    return load_demo(demo_folders("sdxl"))


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m_karras", "dpmpp_sde_karras"])
def test_sdxl_takes_unet_schedulers(sdxl_pipe, name):
    pipe = sdxl_pipe
    first = sample_with(pipe, name, height=64, width=64)
    assert isinstance(pipe.scheduler, SCHEDULER_SETTINGS[name][0])
    assert np.isfinite(first).all() and np.array_equal(first, sample_with(pipe, name, height=64, width=64))


def test_sdxl_refuses_flow_euler(sdxl_pipe):
    with pytest.raises(ValueError, match="does not fit a UNet model"):
        apply_scheduler(sdxl_pipe, "flow_euler")


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_flow_models_take_flow_euler_and_keep_their_config(demo_folders, family):
    pipe = load_demo(demo_folders(family))
    own = pipe.scheduler
    config = dict(own.config)
    scheduler = apply_scheduler(pipe, "flow_euler")
    assert scheduler is own and isinstance(scheduler, FlowMatchEulerDiscreteScheduler)
    assert scheduler.config.shift == config["shift"]
    assert scheduler.config.use_dynamic_shifting == config["use_dynamic_shifting"]
    first = sample_with(pipe, "flow_euler", height=64, width=64)
    assert first.shape == (1, 64, 64, 3) and np.isfinite(first).all()
    assert np.array_equal(first, sample_with(pipe, "flow_euler", height=64, width=64))
    for name in UNET_SCHEDULERS:
        with pytest.raises(ValueError, match="does not fit a flow-matching model"):
            apply_scheduler(pipe, name)
    assert pipe.scheduler is own  # a refused request leaves the pipeline as it was
