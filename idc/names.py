"""The one rule for names that become path components (run, test sets, networks, datasets, tables,
training image stems).

Letters, digits, ``-``, ``_`` and ``.``, not starting with ``.``: such a name can never be ``..``,
an absolute path, a hidden file, or contain a separator, a newline or the braces Snakemake reads as
wildcards. The pattern is anchored with ``\\A`` and ``\\Z`` because ``$`` also matches before a
trailing newline (``"x\\n"`` passes ``^x$``), which is why the JSON schema's equivalent pattern is
not relied on alone.
"""

from __future__ import annotations

import re

__all__ = ["NAME_PATTERN", "NAME_RULE", "check_name", "name_problem"]

NAME_PATTERN = re.compile(r"\A[A-Za-z0-9_-][A-Za-z0-9_.-]*\Z")
NAME_RULE = "letters, digits, '-', '_' and '.' only, not starting with '.'"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a path component, or None when it can."""
    if not isinstance(name, str):
        return f"{name!r} is not a string"
    if not NAME_PATTERN.match(name):
        return f"{name!r} is not a valid name ({NAME_RULE})"
    return None


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it may be a path component; else ValueError ``"<what>: <why>"``."""
    problem = name_problem(name)
    if problem:
        raise ValueError(f"{what}: {problem}")
    return name  # type: ignore[return-value]
