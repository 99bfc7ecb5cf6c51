"""Writing operating points into an existing laughter bundle: :func:`write_operating_points`.

Operating points are decisions about a model, not part of it: they live in ``manifest.json``
alone, which the hashes in ``files`` do not cover. So the bundle's files are rehashed first (a
bundle that fails its check is left alone), then a new manifest, validated like any other, is
written beside the old one, fsynced and renamed over it: a reader sees the old manifest or the
new one, and every hash stays valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from edgeser.atomic import atomic_text
from edgeser.bundle.loading import load
from edgeser.bundle.manifest import Bundle, Manifest, OperatingPointOrigin
from edgeser.bundle.schema import MANIFEST, validate_manifest
from edgeser.errors import BundleError


def write_operating_points(path: str | os.PathLike,
                           points: Mapping[str, tuple[float, OperatingPointOrigin | None]],
                           *, default: str | None = None) -> Bundle:
    """Add (or replace) the named operating points ``{name: (threshold, origin)}`` of the laughter
    bundle at ``path``, and make ``default`` the default one when given. Returns the bundle as
    now on disk; raises BundleError (nothing written) when the bundle fails its check, is not a
    laughter bundle, or a threshold is not a probability in (0, 1)."""
    bundle = load(path, rehash=True)
    m = bundle.manifest
    if m.task != "laughter":
        raise BundleError(f"model bundle {bundle.path} holds a model for {m.task}; operating "
                          "points apply to laughter bundles.")
    thresholds = dict(m.operating_points)
    origins = dict(m.operating_point_origins)
    for name, (threshold, origin) in points.items():
        thresholds[name] = float(threshold)
        if origin is None:
            origins.pop(name, None)
        else:
            origins[name] = origin
    updated = dataclasses.replace(
        m, operating_points=MappingProxyType(thresholds),
        operating_point_origins=MappingProxyType(origins),
        default_operating_point=default or m.default_operating_point)
    doc = updated.to_json()
    problems = validate_manifest(doc)
    if problems:
        raise BundleError(f"cannot write operating points into model bundle {bundle.path}: "
                          f"{'; '.join(problems)}.")
    final = Manifest.from_json(doc)
    target = Path(bundle.path) / MANIFEST
    try:
        with atomic_text(target) as out:
            out.write(final.dumps())
    except OSError as err:
        raise BundleError(f"cannot write {target}: {err.strerror or err}.") from None
    with contextlib.suppress(OSError):  # the rename is durable once the folder is synced
        fd = os.open(bundle.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return Bundle(path=bundle.path, manifest=final)
