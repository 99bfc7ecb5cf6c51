"""The engine record (:class:`EngineRecord`), the optimisation profile, the parity tolerances and
whether a record fits this device.

A bundle's ``"engines"`` list holds one record per TensorRT engine::

    {"file": "engines/h100-80gb-hbm3.fp16/TensorrtExecutionProvider_..._sm90.engine",
     "context_model": "engines/h100-80gb-hbm3.fp16/context.onnx",
     "precision": "fp16", "tensorrt": "10.3.0", "cuda": "12.6", "onnxruntime": "1.20.1",
     "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
     "profile": {"input": "input_values", "batch": [1, 4, 8], "samples": [400, 48000, 48000]},
     "parity": {"windows": 3, "max_abs_error": {"logits": 0.0011, "embedding": 0.0032},
                "tolerance": {"logits": 0.05, "embedding": 0.05}}}

``file`` is the serialized engine, ``context_model`` the ONNX model ONNX Runtime's TensorRT
provider wrote beside it (an ``EPContext`` node naming the engine file); both lie in one folder
of the bundle and are hashed like every other file. An engine runs only where it was built:
same TensorRT major.minor, same CUDA major, same GPU (name and compute capability).

Standard library only (this module is imported by the manifest's validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Mapping

from edgeser.contract import (ENGINE_PRECISIONS, INPUT_NAME, MIN_WINDOW_SAMPLES, OUTPUT_NAMES,
                              SAMPLE_RATE_HZ)
from edgeser.errors import EdgeserError
from edgeser.gpu import GpuInfo
from edgeser.jsonchecks import file_name_problem as _name_problem
from edgeser.jsonchecks import is_int as _is_int
from edgeser.jsonchecks import is_number as _is_number
from edgeser.jsonchecks import is_text as _is_text

# Where engines live inside a bundle: one folder per GPU and precision, holding the context
# model under this name and the engine file ONNX Runtime named.
ENGINES_DIR = "engines"
CONTEXT_MODEL_NAME = "context.onnx"
# The optimisation profile's largest batch: detect's default batch (8 windows), and the largest
# batch `edgeser bench` tries.
MAX_BATCH = 8

# How closely an engine must reproduce the bundle's reference outputs (max abs error per output
# over the reference windows). The tolerance of an output is the largest of: the absolute floor
# below, the relative share below times the largest |expected value| of that output (embeddings
# of large wav2vec2 models have outlier dimensions of tens), and the bundle's own reference atol
# (what two CPUs may differ by on the same graph).
#
# fp16: FP16 keeps 11 significant bits (unit roundoff 4.9e-4); TensorRT accumulates GEMMs in
# FP32 but stores activations in FP16 through 12-24 residual blocks, which moves encoder outputs
# by 1e-3 to 1e-2 of their scale. 2 % of the scale, and 5e-2 absolute for outputs in [0, 1]
# (the dimensional emotion heads), leaves room for that, while a broken engine (a wrong profile,
# an FP16 overflow in a normalisation, a wrong input) is off by the output's own scale.
# int8: the engine and the bundle's reference use the same calibrated scales, but TensorRT fuses
# quantize/dequantize into its kernels, runs the layers left in float in FP16 and rounds
# requantization ties its own way; a flipped int8 step moves a value by one scale step, and
# such steps add up over the layers, so twice the fp16 tolerance.
ENGINE_ATOL = MappingProxyType({"fp16": 5e-2, "int8": 1e-1})
ENGINE_RTOL = MappingProxyType({"fp16": 2e-2, "int8": 4e-2})

__all__ = [
    "CONTEXT_MODEL_NAME", "ENGINES_DIR", "ENGINE_ATOL", "ENGINE_RTOL", "MAX_BATCH", "EngineError",
    "EngineRecord", "Parity", "Profile", "choose", "engine_compatibility", "engine_folder",
    "gpu_slug", "normalise_gpu_name", "optimization_profile", "same_target", "tolerances",
]


class EngineError(EdgeserError):
    """An engine that cannot be built, chosen or run here. ``str(err)`` is the one-sentence
    message; ``reason`` is the short clause a ``--fallback`` note quotes."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------- the record


@dataclass(frozen=True)
class Profile:
    """The engine's one optimisation profile for ``input_values [batch, samples]``: ``[min, opt,
    max]`` of each dimension."""

    input: str
    batch: tuple[int, int, int]
    samples: tuple[int, int, int]

    def takes(self, batch: int, samples: int) -> bool:
        return (self.batch[0] <= batch <= self.batch[2]
                and self.samples[0] <= samples <= self.samples[2])

    def ort_shapes(self) -> tuple[str, str, str]:
        """``("input_values:1x400", "input_values:4x48000", "input_values:8x48000")``: the
        profile in the form of ONNX Runtime's ``trt_profile_min/opt/max_shapes``."""
        return tuple(f"{self.input}:{b}x{s}" for b, s in zip(self.batch, self.samples))

    def describe(self) -> str:
        lo, hi = self.samples[0], self.samples[2]
        return (f"batches of {self.batch[0]} to {self.batch[2]} windows of {lo} to {hi} samples "
                f"({lo / SAMPLE_RATE_HZ:g} to {hi / SAMPLE_RATE_HZ:g} s)")

    def to_json(self) -> dict:
        return {"input": self.input, "batch": list(self.batch), "samples": list(self.samples)}


@dataclass(frozen=True)
class Parity:
    """The engine against the bundle's reference windows, measured when it was built: the
    largest absolute error and the tolerance, per output."""

    windows: int
    max_abs_error: Mapping[str, float] = field(hash=False)
    tolerance: Mapping[str, float] = field(hash=False)

    @property
    def passed(self) -> bool:
        return all(self.max_abs_error[name] <= self.tolerance[name] for name in OUTPUT_NAMES)

    def failures(self) -> list[str]:
        return [f"{name} max abs error {self.max_abs_error[name]:.3g} exceeds its tolerance "
                f"{self.tolerance[name]:.3g}" for name in OUTPUT_NAMES
                if not self.max_abs_error[name] <= self.tolerance[name]]

    def describe(self) -> str:
        return ", ".join(f"{name} {self.max_abs_error[name]:.2g} (tolerance "
                         f"{self.tolerance[name]:.2g})" for name in OUTPUT_NAMES)

    def to_json(self) -> dict:
        return {"windows": self.windows,
                "max_abs_error": {name: self.max_abs_error[name] for name in OUTPUT_NAMES},
                "tolerance": {name: self.tolerance[name] for name in OUTPUT_NAMES}}


@dataclass(frozen=True)
class EngineRecord:
    """One TensorRT engine of a bundle (see the module docs for the JSON form). Build one with
    :func:`edgeser.engines.build_engine`; read one with :meth:`from_json`."""

    file: str  # the serialized engine, relative POSIX name inside the bundle
    context_model: str  # the EP-context ONNX model that names ``file``; same folder
    precision: str  # fp16 or int8
    tensorrt: str  # TensorRT version that built it
    cuda: str  # CUDA version (major.minor) of the device that built it
    onnxruntime: str  # ONNX Runtime version that built it
    gpu: str  # the GPU (or Jetson board) it was built on
    compute_capability: str  # like "9.0"; "unknown" where the device did not say
    profile: Profile
    parity: Parity

    @property
    def folder(self) -> str:
        return str(PurePosixPath(self.context_model).parent)

    def files(self) -> tuple[str, str]:
        return self.context_model, self.file

    def describe(self) -> str:
        """``fp16 engine for NVIDIA H100 80GB HBM3 (TensorRT 10.3.0, CUDA 12.6)``."""
        return (f"{self.precision} engine for {self.gpu} (TensorRT {self.tensorrt}, CUDA "
                f"{self.cuda})")

    def to_json(self) -> dict:
        return {"file": self.file, "context_model": self.context_model,
                "precision": self.precision, "tensorrt": self.tensorrt, "cuda": self.cuda,
                "onnxruntime": self.onnxruntime, "gpu": self.gpu,
                "compute_capability": self.compute_capability,
                "profile": self.profile.to_json(), "parity": self.parity.to_json()}

    @classmethod
    def from_json(cls, obj: Any, where: str = "engine") -> tuple["EngineRecord | None", list[str]]:
        """``(record, [])`` for a valid JSON record, else ``(None, problems)``: every problem,
        each a short phrase naming the field as ``{where}.field`` (``where`` like
        ``engines[0]``). Whether the files are listed in the manifest is the manifest's check."""
        if not isinstance(obj, Mapping):
            return None, [f"{where} must be an object"]
        problems: list[str] = []
        names = [_check_name(f"{where}.{key}", obj.get(key), problems)
                 for key in ("file", "context_model")]
        if all(names):
            file, context = (PurePosixPath(n) for n in names)
            if file == context:
                problems.append(f"{where}.file and {where}.context_model must differ")
            elif file.parent != context.parent:
                problems.append(f"{where}.file must lie in the folder of {where}.context_model "
                                "(ONNX Runtime reads the engine beside its context model)")
            if context.suffix != ".onnx":
                problems.append(f"{where}.context_model must be an .onnx file")
        if obj.get("precision") not in ENGINE_PRECISIONS:
            problems.append(f"{where}.precision must be one of {', '.join(ENGINE_PRECISIONS)}")
        for key in ("tensorrt", "cuda", "onnxruntime", "gpu", "compute_capability"):
            if not _is_text(obj.get(key)):
                problems.append(f"{where}.{key} must be a non-empty string")
        profile = _profile_from_json(obj.get("profile"), f"{where}.profile", problems)
        parity = _parity_from_json(obj.get("parity"), f"{where}.parity", problems)
        if problems:
            return None, problems
        return cls(file=obj["file"], context_model=obj["context_model"],
                   precision=obj["precision"], tensorrt=obj["tensorrt"], cuda=obj["cuda"],
                   onnxruntime=obj["onnxruntime"], gpu=obj["gpu"],
                   compute_capability=obj["compute_capability"], profile=profile,
                   parity=parity), []


def _check_name(where: str, name: Any, problems: list[str]) -> str | None:
    why = _name_problem(name)
    if why:
        problems.append(f"{where} {name!r} {why}")
        return None
    return name


def _profile_from_json(obj: Any, where: str, problems: list[str]) -> Profile | None:
    """``{"input": name, "batch": [min, opt, max], "samples": [min, opt, max]}``."""
    if not isinstance(obj, Mapping):
        problems.append(f"{where} must be an object")
        return None
    before = len(problems)
    if obj.get("input") != INPUT_NAME:
        problems.append(f"{where}.input must be {INPUT_NAME!r}")
    dims = {}
    for key in ("batch", "samples"):
        value = obj.get(key)
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and all(_is_int(d) for d in value) and 1 <= value[0] <= value[1] <= value[2]):
            problems.append(f"{where}.{key} must be [min, opt, max] integers, 1 <= min <= opt "
                            "<= max")
        else:
            dims[key] = tuple(value)
    if len(problems) > before:
        return None
    return Profile(INPUT_NAME, dims["batch"], dims["samples"])


def _parity_from_json(obj: Any, where: str, problems: list[str]) -> Parity | None:
    """``{"windows": n, "max_abs_error": {output: e}, "tolerance": {output: t}}`` with every
    error within its tolerance (a record whose engine failed parity is never written)."""
    if not isinstance(obj, Mapping):
        problems.append(f"{where} must be an object")
        return None
    before = len(problems)
    if not (_is_int(obj.get("windows")) and obj["windows"] >= 1):
        problems.append(f"{where}.windows must be a positive integer")
    values = {}
    for key in ("max_abs_error", "tolerance"):
        table = obj.get(key)
        if not (isinstance(table, Mapping) and all(
                _is_number(table.get(name)) and table[name] >= 0 for name in OUTPUT_NAMES)):
            problems.append(f"{where}.{key} must give a number >= 0 for "
                            f"{' and '.join(OUTPUT_NAMES)}")
        else:
            values[key] = MappingProxyType({name: float(table[name]) for name in OUTPUT_NAMES})
    if len(problems) > before:
        return None
    parity = Parity(obj["windows"], values["max_abs_error"], values["tolerance"])
    problems.extend(f"{where}: {failure}" for failure in parity.failures())
    return parity if parity.passed else None


# ---------------------------------------------------------------- profile and tolerances


def optimization_profile(window_s: float, min_samples: int = MIN_WINDOW_SAMPLES,
                         max_batch: int = MAX_BATCH) -> Profile:
    """The engine's one optimisation profile: batch ``[1, max_batch // 2 or 1, max_batch]``,
    samples ``[min_samples, window, window]`` (full windows are the common case; audio shorter
    than a window runs as one shorter window, down to one model frame)."""
    window = int(round(window_s * SAMPLE_RATE_HZ))
    if not (_is_int(max_batch) and max_batch >= 1):
        raise ValueError(f"the engine's maximum batch must be a positive integer, not "
                         f"{max_batch!r}")
    if not (_is_int(min_samples) and 1 <= min_samples <= window):
        raise ValueError(f"a {window_s:g} s window ({window} samples) is shorter than the "
                         f"engine's minimum input of {min_samples} samples")
    return Profile(INPUT_NAME, (1, max(max_batch // 2, 1), max_batch),
                   (min_samples, window, window))


def tolerances(precision: str, expected: Mapping[str, float], bundle_atol: float) -> dict:
    """The tolerance of each output (see :data:`ENGINE_ATOL`): ``expected`` maps each output to
    the largest |value| of its reference outputs."""
    return {name: max(ENGINE_ATOL[precision], ENGINE_RTOL[precision] * float(expected[name]),
                      float(bundle_atol)) for name in OUTPUT_NAMES}


# ---------------------------------------------------------------- names


def normalise_gpu_name(name: str | None) -> str:
    """``"NVIDIA  H100 80GB HBM3"`` -> ``"h100 80gb hbm3"``: case, punctuation, spacing and the
    vendor prefix do not make two GPUs different."""
    words = re.findall(r"[a-z0-9]+", (name or "").lower())
    if len(words) > 1 and words[0] == "nvidia":
        words = words[1:]
    return " ".join(words)


def gpu_slug(gpu_name: str | None) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"h100-80gb-hbm3"`` (lowercase ASCII and dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", (gpu_name or "").lower()).strip("-")
    if slug.startswith("nvidia-") and len(slug) > len("nvidia-"):
        slug = slug[len("nvidia-"):]
    return slug or "gpu"


def engine_folder(gpu_name: str | None, precision: str) -> str:
    """``engines/<gpu-slug>.<precision>``: the bundle folder of one GPU's engine."""
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"engine precision {precision!r} is not one of "
                         f"{', '.join(ENGINE_PRECISIONS)}")
    return f"{ENGINES_DIR}/{gpu_slug(gpu_name)}.{precision}"


# ---------------------------------------------------------------- compatibility


def _major_minor(version: str | None) -> tuple[int, ...] | None:
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(n) for n in numbers[:2]) if len(numbers) >= 2 else None


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def _known(value: Any) -> bool:
    return isinstance(value, str) and value.strip() not in ("", "unknown")


def _value(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, Mapping) else getattr(record, key, None)


def engine_compatibility(record: EngineRecord | Mapping, local: GpuInfo) -> list[str]:
    """Why the engine ``record`` describes cannot run on the device ``local`` describes; an
    empty list when it can. Checks: a GPU and TensorRT here, TensorRT major.minor, CUDA major
    (skipped where either side does not know its CUDA), GPU name (normalised) and compute
    capability (where both are known). Decided from the record alone: nothing is read."""
    problems: list[str] = []
    if not local.has_gpu:
        problems.append("this device has no NVIDIA GPU")
    if not local.tensorrt:
        problems.append("TensorRT is not installed here")
    built_trt, here_trt = _value(record, "tensorrt"), local.tensorrt
    if here_trt and _major_minor(built_trt) != _major_minor(here_trt):
        problems.append(f"TensorRT {built_trt} built it, this device has TensorRT {here_trt}")
    built_cuda, here_cuda = _value(record, "cuda"), local.cuda
    if _known(built_cuda) and _known(here_cuda) and _major(built_cuda) != _major(here_cuda):
        problems.append(f"it needs CUDA {_major(built_cuda)}.x, this device has CUDA {here_cuda}")
    built_gpu, here_gpu = _value(record, "gpu"), local.device_name
    if here_gpu and normalise_gpu_name(built_gpu) != normalise_gpu_name(here_gpu):
        problems.append(f"it was built for {built_gpu}, this device is {here_gpu}")
    built_cc, here_cc = _value(record, "compute_capability"), local.compute_capability
    if local.has_gpu and _known(built_cc) and _known(here_cc) and built_cc != here_cc:
        problems.append(f"it needs compute capability {built_cc}, this GPU has {here_cc}")
    return problems


def same_target(record: EngineRecord | Mapping, gpu_name: str | None, precision: str) -> bool:
    """Whether ``record`` is the engine of GPU ``gpu_name`` at ``precision`` (one per bundle)."""
    return (_value(record, "precision") == precision and gpu_name is not None
            and normalise_gpu_name(_value(record, "gpu")) == normalise_gpu_name(gpu_name))


def choose(records, local: GpuInfo, precision: str
           ) -> tuple[EngineRecord | None, list[tuple[EngineRecord, list[str]]]]:
    """``(the record to run, stale)``: the first record of ``precision`` that fits ``local``
    (None when none does), and the records of this GPU and precision that do not fit, each with
    its problems (an engine built here before a TensorRT, CUDA or driver upgrade)."""
    stale = []
    for record in records:
        if record.precision != precision:
            continue
        problems = engine_compatibility(record, local)
        if not problems:
            return record, []
        if same_target(record, local.device_name, precision):
            stale.append((record, problems))
    return None, stale
