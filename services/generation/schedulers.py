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
    "flow_euler": "FlowMatch Euler",
}

DEFAULT_SCHEDULER = "euler"

# UNet models (SD 1.x/2.x, SDXL) predict noise or v; SD 3 and FLUX are flow-matching
# models, which only a flow-matching scheduler can sample.
UNET_SCHEDULERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_sde_karras", "ddim",
                   "unipc", "lcm", "pndm")
FLOW_SCHEDULERS = ("flow_euler",)

# The names AUTOMATIC1111's web UI writes in its "parameters" text ("Sampler: ..."),
# which other Stable Diffusion tools parse. PNDM is the sampler A1111 calls PLMS.
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
    "flow_euler": "Euler",
}
assert set(UNET_SCHEDULERS + FLOW_SCHEDULERS) == set(SCHEDULERS) == set(A1111_SAMPLER_NAMES)
