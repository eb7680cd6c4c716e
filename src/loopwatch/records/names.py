"""The one rule for model names: a name is one plain segment of a URL path.

A model's name is part of its URLs (``/v1/models/{name}/predict``), so it must be a
segment that every client sends as it is: not ``.`` or ``..``, which clients that
normalise URLs (RFC 3986, section 5.2.4) remove together with the segment before
them, and nothing that is a separator (``/``, ``\\``), an escape (``%``) or a
control character anywhere. The rule is ASCII letters and digits, then also ``.``,
``_`` and ``-``, at most 100 characters. The first character must be a letter or
digit: a name never starts with a dot (no dot segment, no hidden file), nor with
``-`` (which a command line would read as an option). Non-ASCII letters are left
out on purpose: two names that look the same must be the same name.

Names stored before this rule that break it stay usable from the library and the
CLI (which read them from the store as they are), are reported when the service
starts, and can be renamed (``loopwatch models rename``). The service refuses them
in every route.
"""

from __future__ import annotations

import re
from typing import Any

from loopwatch.errors import InvalidInput, echo

MAX_NAME_LENGTH = 100
#: The rule as a regular expression (also what the API description shows).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = (
    "1-100 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
    "(one plain URL path segment)"
)


def is_model_name(name: Any) -> bool:
    """Whether ``name`` follows the rule (see the module docstring)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_model_name(name: Any, *, what: str = "model name") -> str:
    """``name`` when it follows the rule, else :class:`InvalidInput` (repeating at most 100
    characters of it)."""
    if not is_model_name(name):
        raise InvalidInput(f"{what} {echo(name)} is not allowed: a model name is {NAME_RULE}")
    return str(name)
