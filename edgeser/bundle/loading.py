"""Reading a bundle: :func:`load`.

:func:`load` validates the manifest, refuses names that are absolute or escape the bundle (``..``,
or a symlink resolving outside it), and checks sizes and sha256 hashes, skipping the hashes the
stamp still vouches for (see :mod:`edgeser.bundle.hashing`). ``load(..., rehash=True)`` always
rehashes. Last, every graph's external-data references must stay inside the bundle and be listed
(see :mod:`edgeser.bundle.onnx_refs`).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping

from edgeser.bundle import hashing
from edgeser.bundle.manifest import Bundle, Manifest
from edgeser.bundle.schema import MANIFEST, SCHEMA_VERSION, _is_int, _too_new
from edgeser.bundle.onnx_refs import check_external_data
from edgeser.errors import BundleError


def _read_manifest(root: Path) -> Any:
    if not root.exists():
        raise BundleError(f"model bundle {root} does not exist.")
    if not root.is_dir():
        raise BundleError(f"model bundle {root} is not a directory.")
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"model bundle {root} has no {MANIFEST}.") from None
    except OSError as err:
        problem = f"cannot read {MANIFEST} ({err.strerror})"
        raise BundleError(f"model bundle {root}: {problem}.") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"model bundle {root}: {MANIFEST} is not UTF-8 text.") from None
    except json.JSONDecodeError as err:
        raise BundleError(
            f"model bundle {root}: {MANIFEST} is not valid JSON "
            f"({err.msg} at line {err.lineno}, column {err.colno})."
        ) from None


def _check_manifest(root: Path, manifest: Any) -> Manifest:
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if _is_int(version) and version > SCHEMA_VERSION:
        raise BundleError(f"model bundle {root}: {_too_new(version)}.")
    return Manifest.from_json(manifest, f"model bundle {root}")


def _stat_listed(real_root: Path, root: Path, name: str, entry: Mapping) -> tuple[Any, Any]:
    """``(problem, None)``, or ``(None, (resolved path, stat))`` for one listed file."""
    path = root / name
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return f"{name} cannot be resolved (symlink loop?)", None
    if not resolved.is_relative_to(real_root):
        return f"{name} resolves outside the bundle", None
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        return f"{name} is missing", None
    except OSError as err:
        return f"{name} cannot be read ({err.strerror})", None
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file", None
    if st.st_size != entry["bytes"]:
        return f"{name} has {st.st_size} bytes where the manifest says {entry['bytes']}", None
    return None, (resolved, st)


def _hash_listed(
    path: Path, name: str, st: os.stat_result, expected: str
) -> tuple[str | None, bool]:
    """``(problem, stable)``: hash one file; ``stable`` when it did not change while hashed."""
    try:
        digest = hashing._sha256_file(path)
        stable = hashing._stat_key(os.stat(path)) == hashing._stat_key(st)
    except OSError as err:
        return f"{name} cannot be read ({err.strerror})", False
    if digest != expected:
        return f"{name}: sha256 mismatch (the file changed since the bundle was written)", False
    return None, stable


def _check_listed_files(root: Path, files: Mapping[str, Mapping], rehash: bool) -> None:
    """Sizes, containment and hashes of every listed file; hashes skipped where the stamp is
    still valid. Raises one BundleError listing every problem."""
    real_root = root.resolve()
    stamp = {} if rehash else hashing._read_stamp(real_root)
    problems: list[str] = []
    fresh: dict[str, dict] = {}
    hashed = False
    for name, entry in files.items():
        problem, found = _stat_listed(real_root, root, name, entry)
        if problem is None:
            resolved, st = found
            known = stamp.get(name)
            key = hashing._stat_key(st)
            if isinstance(known, dict) and known == {"key": key, "sha256": entry["sha256"]}:
                fresh[name] = known
                continue
            hashed = True
            problem, stable = _hash_listed(resolved, name, st, entry["sha256"])
            if problem is None and stable:
                fresh[name] = {"key": key, "sha256": entry["sha256"]}
        if problem is not None:
            problems.append(problem)
    if problems:
        raise BundleError(f"model bundle {root}: {'; '.join(problems)}.")
    if hashed:
        hashing._write_stamp(real_root, fresh)


def load(path: str | os.PathLike, *, rehash: bool = False) -> Bundle:
    """Open the bundle directory ``path``: validate its manifest and check its files.

    Hashes are checked in full on first use and remembered in a stamp (see module docs);
    ``rehash=True`` ignores the stamp. Raises BundleError naming the bundle and the problem(s).
    """
    root = Path(path)
    raw = _read_manifest(root)
    manifest = _check_manifest(root, raw)
    _check_listed_files(root, raw["files"], rehash)
    # External data (see edgeser.bundle.onnx_refs): ONNX Runtime reads any file a graph's tensors
    # name, so every graph is scanned here, before any session exists, and after the checks above
    # (the graph is then a regular file inside the bundle). The scan runs on every load, not only
    # when hashes are rechecked: stage_bundle's commit writes the stamp itself, so a staged
    # bundle's first load never rehashes, and the listed files can change with the manifest alone.
    # It is cheap (payloads are skipped by offset), and its result is remembered per process under
    # the same (size, mtime, inode) key the stamp trusts; the policy itself is rechecked each time.
    for graph in manifest.graphs:
        check_external_data(root, graph.file, raw["files"])
    return Bundle(path=root.absolute(), manifest=manifest)
