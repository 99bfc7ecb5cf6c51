"""Reading a checkpoint directory safely: config, and weights as a plain tensor state dict.

Model files are untrusted: safetensors is preferred; a pickled ``pytorch_model.bin`` is read only
with ``torch.load(weights_only=True)``, which refuses anything but tensors and containers; no
code from the checkpoint ever runs (no ``trust_remote_code``, no custom classes).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from edgeser.errors import ExportError
from edgeser.export.source import sha256_file

# Weight normalisation of the positional conv, as saved by older and newer PyTorch.
_WEIGHT_NORM_RENAMES = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}


@dataclass(frozen=True)
class WeightFile:
    name: str
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    config: dict
    state_dict: dict  # name -> torch.Tensor, weight-norm keys in the parametrizations form
    weights: tuple[WeightFile, ...]


def read_json_object(path: Path, label: str) -> dict:
    """A checkpoint's JSON file that must hold an object; one sentence naming it otherwise."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{label}: {path.name} is not valid JSON ({err}).") from None
    if not isinstance(value, dict):
        raise ExportError(f"{label}: {path.name} does not hold a JSON object.")
    return value


def read_config(directory: Path, label: str) -> dict:
    path = directory / "config.json"
    if not path.is_file():
        raise ExportError(f"{label}: has no config.json; is this a transformers checkpoint?")
    return read_json_object(path, label)


def _weight_files(directory: Path, label: str) -> list[Path]:
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    if shards:
        return shards
    pickled = directory / "pytorch_model.bin"
    if pickled.is_file():
        return [pickled]
    raise ExportError(
        f"{label}: has no weights (model.safetensors or pytorch_model.bin)."
    )


def _load_file(path: Path, label: str) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ExportError(f"{label}: {path.name} is not a valid safetensors file ({err}).") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unpickling refused"
        raise ExportError(
            f"{label}: {path.name} holds more than plain tensors and was refused unopened "
            f"(weights-only loading: {first})."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ExportError(f"{label}: {path.name} cannot be read as a PyTorch state dict ({err}).") from None
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ExportError(f"{label}: {path.name} is not a state dict of tensors.")
    return loaded


def canonical_key(key: str) -> str:
    for old, new in _WEIGHT_NORM_RENAMES.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def read(directory: Path, label: str) -> Checkpoint:
    """Config and weights of a checkpoint directory (``label`` names it in messages)."""
    config = read_config(directory, label)
    state: dict = {}
    files = []
    for path in _weight_files(directory, label):
        files.append(WeightFile(path.name, sha256_file(path)))
        for key, tensor in _load_file(path, label).items():
            state[canonical_key(key)] = tensor
    return Checkpoint(config, state, tuple(files))
