"""The compatibility APIs other tools speak (docs/TOOLS.md): AUTOMATIC1111's web UI API
under /sdapi/v1 (a1111.py) and the OpenAI Images API under /v1 (openai.py). They take a
personal API token (Bearer, or HTTP Basic username:token; never a cookie, so no CSRF),
translate to the one submit service (services/generation/compat.py) and answer errors
in their own API's shape."""
from __future__ import annotations

from views.compat import a1111, openai

__all__ = ["a1111", "openai"]
