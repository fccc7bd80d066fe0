"""Sampler (scheduler) names offered to users.

Kept free of torch and diffusers so the web tier can validate requests and list
choices; worker/schedulers.py maps each key to its diffusers class and settings. Which
schedulers a model takes is on its card (services/generation/families.py).
"""

# key (stored on tasks, sent by the API) -> label shown to people
SCHEDULERS: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler ancestral",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpmpp_sde_karras": "DPM++ SDE Karras",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "lcm": "LCM (for LCM and turbo models)",
    "pndm": "PNDM",
    # The samplers above on a Karras or exponential noise schedule (A1111's schedule types).
    "euler_karras": "Euler Karras",
    "euler_exponential": "Euler exponential",
    "euler_a_karras": "Euler ancestral Karras",
    "euler_a_exponential": "Euler ancestral exponential",
    "dpmpp_2m_exponential": "DPM++ 2M exponential",
    "dpmpp_sde_exponential": "DPM++ SDE exponential",
    "unipc_karras": "UniPC Karras",
    "unipc_exponential": "UniPC exponential",
    "flow_euler": "FlowMatch Euler",
}

DEFAULT_SCHEDULER = "euler"

# UNet models (SD 1.x/2.x, SDXL) predict noise or v; SD 3 and FLUX are flow-matching
# models, which only a flow-matching scheduler can sample.
UNET_SCHEDULERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_sde_karras", "ddim",
                   "unipc", "lcm", "pndm", "euler_karras", "euler_exponential", "euler_a_karras",
                   "euler_a_exponential", "dpmpp_2m_exponential", "dpmpp_sde_exponential", "unipc_karras",
                   "unipc_exponential")
FLOW_SCHEDULERS = ("flow_euler",)

# The names AUTOMATIC1111's web UI writes in its "parameters" text ("Sampler: ..."),
# which other Stable Diffusion tools parse. PNDM is the sampler A1111 calls PLMS.
# A key with a noise schedule of its own is written as A1111 wrote those before it had a
# separate schedule type ("DPM++ 2M Karras"), which A1111 still reads as sampler + schedule.
A1111_SAMPLER_NAMES: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpmpp_sde_karras": "DPM++ SDE Karras",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "lcm": "LCM",
    "pndm": "PLMS",
    "euler_karras": "Euler Karras",
    "euler_exponential": "Euler Exponential",
    "euler_a_karras": "Euler a Karras",
    "euler_a_exponential": "Euler a Exponential",
    "dpmpp_2m_exponential": "DPM++ 2M Exponential",
    "dpmpp_sde_exponential": "DPM++ SDE Exponential",
    "unipc_karras": "UniPC Karras",
    "unipc_exponential": "UniPC Exponential",
    "flow_euler": "Euler",
}

# Keys that sample on a noise schedule other than the model's own: key -> (sampler, schedule).
# A1111 offers any sampler with any schedule type; here the pairs diffusers can run.
# (DPM++ SDE has no plain key: A1111's default schedule for it is Karras.)
SIGMA_SCHEDULES: dict[str, tuple[str, str]] = {
    "euler_karras": ("euler", "karras"), "euler_exponential": ("euler", "exponential"),
    "euler_a_karras": ("euler_a", "karras"), "euler_a_exponential": ("euler_a", "exponential"),
    "dpmpp_2m_karras": ("dpmpp_2m", "karras"), "dpmpp_2m_exponential": ("dpmpp_2m", "exponential"),
    "dpmpp_sde_karras": ("dpmpp_sde", "karras"), "dpmpp_sde_exponential": ("dpmpp_sde", "exponential"),
    "unipc_karras": ("unipc", "karras"), "unipc_exponential": ("unipc", "exponential"),
}
SCHEDULE_LABELS = {"karras": "Karras", "exponential": "Exponential"}


def sampler_of(key: str) -> str:
    """The sampler a key runs, without its schedule ("euler_a_karras" -> "euler_a")."""
    return SIGMA_SCHEDULES.get(key, (key, ""))[0]


def schedule_of(key: str) -> str | None:
    """The key's own noise schedule ("karras", "exponential"), or None: the model's."""
    return SIGMA_SCHEDULES[key][1] if key in SIGMA_SCHEDULES else None


def with_schedule(key: str, schedule: str) -> str | None:
    """The key that runs `key`'s sampler on `schedule`; None where there is none."""
    sampler = sampler_of(key)
    for other, pair in SIGMA_SCHEDULES.items():
        if pair == (sampler, schedule):
            return other
    return None


assert set(UNET_SCHEDULERS + FLOW_SCHEDULERS) == set(SCHEDULERS) == set(A1111_SAMPLER_NAMES)
assert set(SIGMA_SCHEDULES) <= set(UNET_SCHEDULERS)
