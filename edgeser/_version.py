"""The version's one source: ``EDGESER_VERSION_MAJOR/MINOR/PATCH`` in the C header.

Standard library only, and no imports from edgeser: setup.py runs this file by path to set the
distribution's version (so building never imports the package), and ``edgeser.__version__``
falls back to it when the distribution is not installed (a source tree on ``sys.path``).
``python edgeser/_version.py [HEADER]`` prints the version.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Where the header lies in a source tree (and in an sdist); a wheel does not ship it.
HEADER = Path(__file__).resolve().parent.parent / "native" / "include" / "edgeser" / "frontend.h"

_PARTS = ("MAJOR", "MINOR", "PATCH")
# "#define EDGESER_VERSION_MAJOR 0" alone on its line (native/Makefile reads the same lines). A
# plain decimal literal only: a leading zero would be octal in C; a suffix, an expression or a
# trailing comment is not read.
_DEFINE = re.compile(
    r"^[ \t]*#[ \t]*define[ \t]+EDGESER_VERSION_(MAJOR|MINOR|PATCH)[ \t]+(0|[1-9][0-9]*)[ \t]*$",
    re.MULTILINE,
)


def header_version(header: str | Path = HEADER) -> str:
    """``"MAJOR.MINOR.PATCH"`` from the header's three macros.

    Raises OSError when the header cannot be read and ValueError, naming the header and the
    macro, when a macro is missing, not a plain decimal literal, or defined twice.
    """
    text = Path(header).read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for part, value in _DEFINE.findall(text):
        if part in found:
            raise ValueError(f"{header}: EDGESER_VERSION_{part} is defined more than once")
        found[part] = value
    missing = [f"EDGESER_VERSION_{part}" for part in _PARTS if part not in found]
    if missing:
        raise ValueError(
            f"{header}: no version macro {', '.join(missing)} as a plain decimal literal "
            f"on its own line (like '#define EDGESER_VERSION_MAJOR 0'); the package version "
            f"is read from these lines"
        )
    return ".".join(found[part] for part in _PARTS)


if __name__ == "__main__":
    try:
        print(header_version(*sys.argv[1:2]))
    except (OSError, ValueError) as err:
        sys.exit(f"{sys.argv[0]}: {err}")
