"""Checks of values read from JSON manifests, shared by the bundle schema and the engine records.
Standard library only."""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (JSON has no NaN; a manifest must not either)."""
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def file_name_problem(name: Any) -> str | None:
    """Why ``name`` is not a safe relative POSIX file name inside a bundle, or None."""
    if not isinstance(name, str) or name == "":
        return "is not a file name"
    if "\\" in name or "\x00" in name:
        return "contains a backslash or NUL"
    pure = PurePosixPath(name)
    if pure.is_absolute() or re.match(r"[A-Za-z]:", name):
        return "is absolute"
    if ".." in pure.parts:
        return "escapes the bundle"
    if str(pure) != name or "." in name.split("/"):
        return "is not a normalised relative name"
    return None
