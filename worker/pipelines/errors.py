"""What goes wrong with a pipeline, and what of it a user may see: ModelLoadError (a
model did not load), LoraError (a LoRA could not be applied), and without_paths (an
error's text with the server's paths cut)."""
from __future__ import annotations

import re


class ModelLoadError(Exception):
    """A model could not be loaded. The message is meant for the operator (staff see it on
    Admin → Models, and the log has it): it may name server paths. `user` is what the
    person who asked sees: the model's name, no paths."""

    def __init__(self, message: str, user: str | None = None):
        super().__init__(message)
        self.user = user or without_paths(message)


class LoraError(Exception):
    """A LoRA could not be applied; the message is meant for the person who asked (no paths)."""


# An absolute path in a message (POSIX, ~/…, or C:\…): not after a word, a dot or a colon,
# so "1.x/2.x", hub ids ("owner/name") and URLs stay as they are.
_PATH = re.compile(r"""(?<![\w.:/~-])(?:~?/|[A-Za-z]:\\)[^\s'"`()\[\]{}<>,;]+""")


def without_paths(text: str) -> str:
    """`text` with every absolute server path cut to its last part ("/srv/models/a/b.safetensors"
    becomes "b.safetensors"): what a user may see of an error."""
    def last_part(match: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", match.group(0).rstrip(".:")) if p and p != "~"]
        tail = match.group(0)[len(match.group(0).rstrip(".:")):]
        return (parts[-1] if parts else "…") + tail
    return _PATH.sub(last_part, text)


def cause(exc: BaseException) -> str:
    """An exception in one line: its type and its (shortened) text."""
    text = " ".join(str(exc).split()).rstrip(".")  # hub errors span many lines
    if len(text) > 400:
        text = text[:400] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

