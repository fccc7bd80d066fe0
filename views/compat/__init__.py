"""The compatibility APIs other tools speak (docs/TOOLS.md): AUTOMATIC1111's web UI API
under /sdapi/v1 (a1111.py) and the OpenAI Images API under /v1 (openai.py). They take a
personal API token (Bearer, or HTTP Basic username:token; never a cookie, so no CSRF),
translate to the one submit service (services/generation/compat/) and answer errors in
their own API's shape (views/errors.py, for their unmatched paths too)."""
