"""Thin 1:1 layer over the compiled ``edgeser._native`` module: loading, a version check, a check
of the header's rate against :mod:`edgeser.contract`, and one status check.

When the module is missing (a source checkout that was never built) the frontend falls back to
the NumPy reference and says so loudly; with EDGESER_REQUIRE_NATIVE=1 the absence is an error.
A module that is present but was compiled from another version of the C sources than the
package around it (a stale build left behind by an upgrade), or from a header whose
EDGESER_TARGET_RATE_HZ is not the contract's SAMPLE_RATE_HZ, is an ImportError, never a fallback.

Whether the module loaded is decided here, once: ``NATIVE``. The frontend picks its backend from
it at import (``_native_backend`` or ``reference``) and no function consults it afterwards.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

from edgeser import contract
from edgeser.errors import FrontendError

try:
    from edgeser._native import ffi, lib  # type: ignore[import-not-found]
except ImportError as exc:  # pragma: no cover - exercised by the base-install smoke test
    if os.environ.get("EDGESER_REQUIRE_NATIVE") == "1":
        raise ImportError(
            "EDGESER_REQUIRE_NATIVE=1 but the compiled frontend edgeser._native is missing; "
            "reinstall edgeser with a C compiler available"
        ) from exc
    ffi = lib = None
    _message = (
        "edgeser: the compiled frontend (edgeser._native) is missing; using the NumPy reference "
        "frontend, which is much slower. Reinstall with a C compiler to fix this."
    )
    warnings.warn(_message, RuntimeWarning, stacklevel=2)
    print(_message, file=sys.stderr)

NATIVE = lib is not None


def expected_version() -> tuple[str, str] | None:
    """The version the compiled module must have, and where that expectation comes from.

    The installed distribution's version (setup.py derives it from the C header's
    EDGESER_VERSION_MAJOR/MINOR/PATCH, so a matching build agrees by construction); when edgeser
    is not installed (a source tree on sys.path), the version in the source tree's header; when
    neither is found, None: nothing to check against.
    """
    from importlib import metadata

    try:
        return metadata.version("edgeser"), "the installed edgeser package"
    except metadata.PackageNotFoundError:
        pass
    from edgeser._version import HEADER, header_version

    try:
        return header_version(HEADER), f"the source tree's {HEADER.name}"
    except (OSError, ValueError):
        return None


def check_version(compiled: tuple[int, int, int], expected: tuple[str, str] | None) -> None:
    """Raise ImportError when ``compiled`` (major, minor, patch of the compiled module) differs
    from the ``expected`` version of :func:`expected_version`. An expectation that is absent or
    does not start with MAJOR.MINOR.PATCH is not checked."""
    if expected is None:
        return
    version, source = expected
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        return
    if tuple(int(part) for part in match.groups()) != tuple(compiled):
        have = ".".join(str(part) for part in compiled)
        raise ImportError(
            f"the compiled frontend edgeser._native is version {have} but {source} is version "
            f"{version}, so the two come from different builds: reinstall with `pip install "
            f"--force-reinstall --no-deps edgeser` (or, in a source checkout, rebuild it with "
            f"`pip install -e . --no-deps`)"
        )


def check_target_rate(compiled_hz: int, contract_hz: int) -> None:
    """Raise ImportError when the compiled header's EDGESER_TARGET_RATE_HZ (``compiled_hz``)
    differs from :data:`edgeser.contract.SAMPLE_RATE_HZ` (``contract_hz``)."""
    if int(compiled_hz) != int(contract_hz):
        raise ImportError(
            f"the compiled frontend edgeser._native resamples to {compiled_hz} Hz "
            f"(EDGESER_TARGET_RATE_HZ) but edgeser.contract.SAMPLE_RATE_HZ is {contract_hz} Hz, "
            f"so native/include/edgeser/frontend.h and edgeser/contract.py disagree: make them "
            f"equal and rebuild with `pip install -e . --no-deps`"
        )


if NATIVE:
    check_version(
        (lib.EDGESER_VERSION_MAJOR, lib.EDGESER_VERSION_MINOR, lib.EDGESER_VERSION_PATCH),
        expected_version(),
    )
    check_target_rate(lib.EDGESER_TARGET_RATE_HZ, contract.SAMPLE_RATE_HZ)


def check(status: int, what: str) -> None:
    """Raise FrontendError for a non-OK status of the call described by ``what``."""
    if status != 0:
        reason = ffi.string(lib.edgeser_strerror(status)).decode("ascii", "replace")
        raise FrontendError(f"{what} failed: {reason}")
