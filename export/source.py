"""Where a checkpoint comes from: a local directory, or a hub id resolved through
huggingface_hub's cache (the same code path online and with HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgeser.errors import ExportError

# Files an export needs; anything else in a hub repository (other frameworks' weights, ONNX
# files, training state) is never downloaded.
_HUB_PATTERNS = ["config.json", "preprocessor_config.json", "model.safetensors",
                 "model-*.safetensors", "model.safetensors.index.json", "pytorch_model.bin"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Source:
    """A checkpoint directory and what it is."""

    directory: Path
    kind: str  # "hub" or "local"
    model_id: str  # hub id, or the directory's name
    revision: str | None  # as asked for (hub only)
    commit: str | None  # resolved commit (hub only)


def resolve(model: str, revision: str | None = None) -> Source:
    """A local directory when ``model`` names one, else a hub id fetched through the cache."""
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ExportError(f"{model}: is not a checkpoint directory.")
        if revision is not None:
            raise ExportError(f"{model}: --revision applies to hub ids, not to a local directory.")
        return Source(path.resolve(), "local", path.resolve().name, None, None)
    if not _HUB_ID.match(model) or ".." in model:
        raise ExportError(
            f"{model}: is neither an existing directory nor a hub id of the form org/name."
        )
    return _from_hub(model, revision or "main")


def _from_hub(model_id: str, revision: str) -> Source:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
        )
    except ImportError:  # pragma: no cover - huggingface_hub comes with the export extra
        raise ExportError(
            "downloading from the hub needs huggingface_hub: pip install 'edgeser[export]'."
        ) from None
    try:
        directory = Path(snapshot_download(model_id, revision=revision,
                                           allow_patterns=_HUB_PATTERNS))
    except LocalEntryNotFoundError:
        raise ExportError(
            f"{model_id}: cannot reach the hub and revision {revision!r} is not in the local "
            "cache; connect to the hub once, or pass a local checkpoint directory."
        ) from None
    except RevisionNotFoundError:
        raise ExportError(f"{model_id}: the hub has no revision {revision!r}.") from None
    except GatedRepoError:
        raise ExportError(
            f"{model_id}: the repository is gated; accept its terms and log in (hf auth login)."
        ) from None
    except RepositoryNotFoundError:
        raise ExportError(f"{model_id}: no such model on the hub (or it is private).") from None
    except OSError as err:
        raise ExportError(f"{model_id}: download failed ({err}).") from None
    commit = directory.name if re.fullmatch(r"[0-9a-f]{40}", directory.name) else None
    _check_cache_hashes(directory, model_id)
    return Source(directory, "hub", model_id, revision, commit)


def _check_cache_hashes(directory: Path, model_id: str) -> None:
    """The hub cache names large (LFS) files by their sha256: check them against the content,
    so a corrupted or tampered cache is refused instead of exported."""
    for entry in directory.iterdir():
        if not entry.is_symlink():
            continue
        blob = Path(os.path.realpath(entry))
        if _SHA256_HEX.match(blob.name) and sha256_file(blob) != blob.name:
            raise ExportError(
                f"{model_id}: {entry.name} in the hub cache does not match its sha256; "
                "delete it from the cache and download again."
            )


def sha256_file(path: Path, block_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_bytes):
            digest.update(chunk)
    return digest.hexdigest()
