"""Where bundles live by default: :func:`edgeser_home` and :func:`default_bundle_dir`."""

from __future__ import annotations

import os
from pathlib import Path

from edgeser.errors import BundleError


def edgeser_home() -> Path:
    """``$EDGESER_HOME``, else ``$XDG_CACHE_HOME/edgeser``, else ``~/.cache/edgeser``."""
    home = os.environ.get("EDGESER_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "edgeser"
    return Path.home() / ".cache" / "edgeser"


def _bad_id(text: str, max_slashes: int) -> bool:
    parts = text.split("/")
    return (
        len(parts) > max_slashes + 1
        or any(part.strip() in ("", ".") for part in parts)
        or ".." in text
        or any(ch in text for ch in "\\\x00")
    )


def default_bundle_dir(model_id: str, revision: str | None = None) -> Path:
    """Where the bundle for ``model_id`` at ``revision`` lives by default:
    ``edgeser_home()/bundles/<org>--<name>@<revision or main>``."""
    if not isinstance(model_id, str) or _bad_id(model_id, 1):
        raise BundleError(
            f"model id {model_id!r} cannot name a bundle directory: use 'org/name' or a plain "
            "name, without '..' or other path separators."
        )
    if revision is not None and (not isinstance(revision, str) or _bad_id(revision, 0)):
        raise BundleError(
            f"revision {revision!r} cannot name a bundle directory: use a commit hash or a "
            "branch or tag name without '/', '\\' or '..'."
        )
    name = f"{model_id.replace('/', '--')}@{revision or 'main'}"
    return edgeser_home() / "bundles" / name
