"""Thin 1:1 layer over the compiled ``edgeser._native`` module: loading, and one status check.

When the module is missing (a source checkout that was never built) the frontend falls back to
the NumPy reference and says so loudly; with EDGESER_REQUIRE_NATIVE=1 the absence is an error.
"""

from __future__ import annotations

import os
import sys
import warnings

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


def check(status: int, what: str) -> None:
    """Raise FrontendError for a non-OK status of the call described by ``what``."""
    if status != 0:
        reason = ffi.string(lib.edgeser_strerror(status)).decode("ascii", "replace")
        raise FrontendError(f"{what} failed: {reason}")
