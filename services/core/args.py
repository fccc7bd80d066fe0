"""Arguments as clients send them: the one parser of true/false values (gallery
filters, API flags), and the one parser of JSON bodies (the app's Request class
parses every body with load_json)."""
from __future__ import annotations

import json
import math
import re

from services.core.errors import ServiceError, ValidationError

# A JSON body nested deeper than this is refused (no API takes more than a few levels);
# json.loads itself would raise RecursionError at about a thousand.
MAX_JSON_DEPTH = 32
# The largest number a JSON body may hold: 64 bits, what any column or counter can keep
# (a larger one is no meaningful count, seed, size or weight; an integer that large
# overflows a float). Floats too, so that the OpenAPI document can say it as a maximum.
MAX_JSON_INT = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def bool_arg(field: str, raw: str) -> bool:
    """A true/false argument as sent (true/1/yes, false/0/no); anything else is a 422."""
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValidationError(field, "must be true or false")


def _shown(name: str) -> str:
    """A name as it can be printed and stored (a lone surrogate as its escape)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _path(parent: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{parent or 'body'}[{part}]"
    return f"{parent}.{_shown(part)}" if parent else _shown(part)


def _refuse(field: str, message: str) -> ValidationError:
    error = ValidationError(field, message)
    error.client_field = True  # the client's own name: the compatibility APIs keep it
    return error


def check_json(value) -> None:
    """Refuse what json.loads lets through but nothing downstream can take: text with a
    lone surrogate ("\\ud800" is no character; the database cannot store it), numbers
    that are not finite (1e400, NaN) or beyond 64 bits (9.3e18 too), and nesting deeper than
    MAX_JSON_DEPTH. A bad value is a 422 naming its field ("prompt",
    "override_settings.sd_model_checkpoint", "loras[0].id"); deep nesting is bad_json."""
    stack = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ServiceError(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                               code="bad_json")
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                raise _refuse(path or "body", f"is not valid Unicode text: it holds a lone "
                                      f"surrogate ({_shown(found.group())}), which is no character")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_JSON_INT:
                raise _refuse(path or "body", "is too large a number")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _refuse(path or "body", "must be a finite number")
            if abs(item) > MAX_JSON_INT:
                raise _refuse(path or "body", "is too large a number")
        elif isinstance(item, dict):
            for name in item:
                if _SURROGATE.search(name):
                    raise _refuse(_path(path, name), "is not a valid field name: it holds a "
                                          "lone surrogate, which is no character")
            stack.extend((item[name], _path(path, name), depth + 1) for name in reversed(list(item)))
        elif isinstance(item, list):
            stack.extend((item[n], _path(path, n), depth + 1) for n in range(len(item) - 1, -1, -1))


def load_json(data: bytes | str):
    """A request body's JSON, checked by check_json. Text that is not JSON raises
    ValueError, as json.loads does (get_json(silent=True) gives None: the views answer
    bad_json); nesting too deep for the parser itself is bad_json too."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ServiceError(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                           code="bad_json") from None
    check_json(value)
    return value


class StrictJSON:
    """The `json_module` of the app's Request class (app.py): request.get_json() parses
    with load_json."""
    loads = staticmethod(load_json)
    dumps = staticmethod(json.dumps)
