"""Arguments as clients send them: the one parser of true/false values (gallery
filters, API flags)."""
from __future__ import annotations

from services.core.errors import ValidationError


def bool_arg(field: str, raw: str) -> bool:
    """A true/false argument as sent (true/1/yes, false/0/no); anything else is a 422."""
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValidationError(field, "must be true or false")
