"""Hashing and the stamp.

The full sha256 pass over a bundle's files runs once; a *stamp* keyed by each file's size, mtime
and inode (under :func:`~edgeser.bundle.locations.edgeser_home`) lets later loads skip it. The
stamp is a cache: one that cannot be read or written just means hashing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Mapping

from edgeser.bundle.locations import edgeser_home

_CHUNK_BYTES = 1 << 20
_STAMP_VERSION = 1


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents (module-level so tests can count calls)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _stamp_path(real_root: Path) -> Path:
    key = hashlib.sha256(str(real_root).encode("utf-8", "surrogateescape")).hexdigest()
    return edgeser_home() / "stamps" / f"{key}.json"


def _read_stamp(real_root: Path) -> dict[str, dict]:
    """``{name: {"key": [...], "sha256": ...}}`` from the stamp, or {} when absent or unusable."""
    try:
        data = json.loads(_stamp_path(real_root).read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError):
        return {}
    ok = (
        isinstance(data, dict)
        and data.get("stamp") == _STAMP_VERSION
        and data.get("bundle") == str(real_root)
        and isinstance(data.get("files"), dict)
    )
    return data["files"] if ok else {}


def _write_stamp(real_root: Path, files: dict[str, dict]) -> None:
    """Write the stamp atomically; a cache that cannot be written just means no stamp."""
    data = {"stamp": _STAMP_VERSION, "bundle": str(real_root), "files": files}
    tmp = None
    try:
        target = _stamp_path(real_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(6)}")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, target)
    except (OSError, RuntimeError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _stamp_entries(root: Path, files: Mapping[str, Mapping]) -> dict[str, dict]:
    entries = {}
    for name, entry in files.items():
        with contextlib.suppress(OSError):
            entries[name] = {"key": _stat_key(os.stat(root / name)), "sha256": entry["sha256"]}
    return entries
