"""TensorRT engines in a bundle: whether one fits this device, and reading it only if it does.

A manifest's ``"engines"`` list holds one record per ``.plan`` file::

    {"file": "model.h100-80gb-hbm3.fp16.plan", "precision": "fp16", "tensorrt": "10.3.0",
     "cuda": "12.6", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
     "profile": {"input": "input_values", "batch": [1, 4, 8], "samples": [400, 48000, 48000]}}

A plan is tied to the TensorRT version, CUDA major version and GPU it was built with; TensorRT's
own refusal of a foreign plan is a crash or a cryptic log line, so :func:`read_engine` compares
the record with :func:`edgeser.gpu.local_gpu_info` first and refuses with one sentence before
the plan is opened. Runtime module: standard library only, no TensorRT import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from edgeser.errors import BundleError
from edgeser.gpu import GpuInfo, local_gpu_info


def _major_minor(version: str | None) -> tuple[int, ...] | None:
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(n) for n in numbers[:2]) if len(numbers) >= 2 else None


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def normalise_gpu_name(name: str | None) -> str:
    """``"NVIDIA  H100 80GB HBM3"`` -> ``"h100 80gb hbm3"``: case, punctuation, spacing and the
    vendor prefix do not make two GPUs different."""
    words = re.findall(r"[a-z0-9]+", (name or "").lower())
    if len(words) > 1 and words[0] == "nvidia":
        words = words[1:]
    return " ".join(words)


def _known(value: Any) -> bool:
    return isinstance(value, str) and value.strip() not in ("", "unknown")


def engine_compatibility(record: Mapping, local: GpuInfo) -> list[str]:
    """Why the engine described by ``record`` cannot run on the device ``local`` describes;
    an empty list when it can. Checks: a GPU and TensorRT here, TensorRT major.minor, CUDA
    major (skipped where either side does not know its CUDA), GPU name (normalised) and
    compute capability (where both are known)."""
    problems: list[str] = []
    if not local.has_gpu:
        problems.append("this device has no NVIDIA GPU")
    if not local.tensorrt:
        problems.append("TensorRT is not installed here")
    built_trt, here_trt = record.get("tensorrt"), local.tensorrt
    if here_trt and _major_minor(built_trt) != _major_minor(here_trt):
        problems.append(f"TensorRT {built_trt} built it, this device has TensorRT {here_trt}")
    built_cuda, here_cuda = record.get("cuda"), local.cuda
    if _known(built_cuda) and _known(here_cuda) and _major(built_cuda) != _major(here_cuda):
        problems.append(f"it needs CUDA {_major(built_cuda)}.x, this device has CUDA {here_cuda}")
    built_gpu, here_gpu = record.get("gpu"), local.device_name
    if here_gpu and normalise_gpu_name(built_gpu) != normalise_gpu_name(here_gpu):
        problems.append(f"it was built for {built_gpu}, this device is {here_gpu}")
    built_cc, here_cc = record.get("compute_capability"), local.compute_capability
    if local.has_gpu and _known(built_cc) and _known(here_cc) and built_cc != here_cc:
        problems.append(f"it needs compute capability {built_cc}, this GPU has {here_cc}")
    return problems


def _remedy(manifest: Mapping, record: Mapping) -> str:
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    model = source.get("model") or manifest.get("model_id") or "MODEL"
    precision = record.get("precision") or "fp16"
    return f"edgeser export --model {model} --quantize {precision} --engine tensorrt"


def _built_for(record: Mapping) -> str:
    return (f"TensorRT {record.get('tensorrt')}, CUDA {record.get('cuda')} on "
            f"{record.get('gpu')}")


def refusal(bundle_path: Path, manifest: Mapping, record: Mapping, local: GpuInfo,
            problems: list[str]) -> str:
    """The one-sentence refusal for an engine that does not fit this device."""
    return (
        f"model bundle {bundle_path}: engine {record.get('file')} was built for "
        f"{_built_for(record)} but this device has {local.describe()} "
        f"({'; '.join(problems)}); build one here with "
        f"`{_remedy(manifest, record)}`, or run the ONNX graph."
    )


def read_engine(bundle: Any, record: Mapping, local: GpuInfo | None = None) -> bytes:
    """The serialized plan of the engine ``record`` (an entry of ``bundle.manifest["engines"]``).

    Refuses (BundleError, one sentence naming the file, what it was built for, what this device
    has and the export command that builds a fitting one) BEFORE the file is opened; only a
    compatible engine's bytes are read. ``local`` defaults to :func:`local_gpu_info`.
    """
    local = local_gpu_info() if local is None else local
    problems = engine_compatibility(record, local)
    if problems:
        raise BundleError(refusal(bundle.path, bundle.manifest, record, local, problems))
    path = Path(bundle.path) / record["file"]
    try:
        return path.read_bytes()
    except OSError as err:
        raise BundleError(
            f"model bundle {bundle.path}: engine {record['file']} cannot be read "
            f"({err.strerror or err})."
        ) from None


def engine_status(record: Mapping, local: GpuInfo) -> str:
    """One line for ``edgeser verify``: compatible, not checked, or refused with the problems."""
    name = record.get("file")
    if not local.has_gpu or not local.tensorrt:
        return f"engine {name}: not checked: no TensorRT/GPU here"
    problems = engine_compatibility(record, local)
    if problems:
        return f"engine {name}: refused on this device: {'; '.join(problems)}"
    return f"engine {name}: compatible with this device"


def engine_statuses(manifest: Mapping, local: GpuInfo | None = None) -> list[str]:
    """:func:`engine_status` for every engine of a manifest (probes the device only if any)."""
    records = [r for r in manifest.get("engines") or [] if isinstance(r, dict)]
    if not records:
        return []
    local = local_gpu_info() if local is None else local
    return [engine_status(record, local) for record in records]
