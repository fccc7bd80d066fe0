"""Sampler (scheduler) names offered to users.

Kept free of torch and diffusers so the web tier can validate requests and list
choices; worker/pipelines.py maps each key to its diffusers class.
"""

# key (stored on tasks, sent by the API) -> label shown to people
SCHEDULERS: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler ancestral",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
    "pndm": "PNDM",
}

DEFAULT_SCHEDULER = "euler"

# The names AUTOMATIC1111's web UI writes in its "parameters" text ("Sampler: ..."),
# which other Stable Diffusion tools parse. PNDM is the sampler A1111 calls PLMS.
A1111_SAMPLER_NAMES: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
    "pndm": "PLMS",
}
