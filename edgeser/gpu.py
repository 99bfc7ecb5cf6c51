"""What NVIDIA GPU, CUDA and TensorRT this device has, for choosing and refusing TensorRT engines.

A TensorRT engine (``.plan``) runs only where it was built: same TensorRT version, a compatible
CUDA, the same GPU. :func:`local_gpu_info` describes the device it runs on; every probe is
best effort, and what cannot be found is ``None`` (never an exception).

Sources, in order:

- dGPU: ``nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader``
  (first GPU; engines are built for GPU 0).
- Jetson: ``/proc/device-tree/model`` (a NUL-terminated string such as
  ``NVIDIA Jetson AGX Orin Developer Kit``) and ``/etc/nv_tegra_release`` (L4T release).
- CUDA: ``/usr/local/cuda/version.json`` (``{"cuda": {"version": "12.6.68"}}``) or the older
  ``version.txt`` (``CUDA Version 10.2.89``); else the pip CUDA runtime wheel's version.
- TensorRT: the ``tensorrt`` distribution's metadata or module ``__version__`` (imported here
  only, never at module level), else ``/usr/include/*/NvInferVersion.h``.

``root`` and ``run`` are injectable so tests describe fake devices. Standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

NVIDIA_SMI = ("nvidia-smi", "--query-gpu=name,compute_cap,driver_version",
              "--format=csv,noheader")
# Seconds nvidia-smi may take (it can stall while a driver initialises); then "no GPU".
NVIDIA_SMI_TIMEOUT_S = 15
# Compute capability of Jetson modules by the words in their device-tree model, most specific
# first (nvidia-smi on Jetson often reports no compute capability).
JETSON_COMPUTE_CAPABILITY = (
    ("orin", "8.7"),
    ("xavier", "7.2"),
    ("tx2", "6.2"),
    ("tx1", "5.3"),
    ("nano", "5.3"),
)
# Distribution names that install the ``tensorrt`` Python module (pip wheels).
TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
CUDA_RUNTIME_DISTRIBUTIONS = ("nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime-cu12",
                              "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu11")


@dataclass(frozen=True)
class GpuInfo:
    """This device's NVIDIA GPU and toolchain; ``None`` where a probe found nothing.

    ``name`` is what nvidia-smi reports, ``jetson_model`` the Jetson board (device tree),
    ``compute_capability`` like ``"8.7"``, ``cuda`` and ``tensorrt`` version strings.
    """

    name: str | None = None
    compute_capability: str | None = None
    cuda: str | None = None
    tensorrt: str | None = None
    jetson_model: str | None = None

    @property
    def device_name(self) -> str | None:
        """The name engines are keyed by: the Jetson board (more specific than nvidia-smi's
        ``Orin (nvgpu)``), else the dGPU name."""
        return self.jetson_model or self.name

    @property
    def has_gpu(self) -> bool:
        return self.device_name is not None

    def describe(self) -> str:
        """``TensorRT 10.3.0, CUDA 12.6 on NVIDIA H100 80GB HBM3`` (with 'no ...' parts)."""
        trt = f"TensorRT {self.tensorrt}" if self.tensorrt else "no TensorRT"
        cuda = f"CUDA {self.cuda}" if self.cuda else "no known CUDA"
        gpu = f"on {self.device_name}" if self.device_name else "and no NVIDIA GPU"
        return f"{trt}, {cuda} {gpu}"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _clean(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") or value.upper() in ("N/A", "NA") else value


def _nvidia_smi(run: Callable) -> tuple[str | None, str | None]:
    """``(name, compute capability)`` of the first GPU nvidia-smi lists, or Nones."""
    try:
        result = run(list(NVIDIA_SMI), capture_output=True, text=True, check=False,
                     timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None, None
    if getattr(result, "returncode", 1) != 0:
        return None, None
    stdout = getattr(result, "stdout", "") or ""
    if isinstance(stdout, bytes):
        stdout = stdout.decode("utf-8", errors="replace")
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None, None
    fields = [part.strip() for part in lines[0].split(",")]
    name = _clean(fields[0]) if fields else None
    capability = _clean(fields[1]) if len(fields) > 1 else None
    if capability is not None and not re.fullmatch(r"\d+\.\d+", capability):
        capability = None
    return name, capability


def _jetson(root: Path) -> str | None:
    """The Jetson board name, or None on anything else."""
    model = _read_text(root / "proc" / "device-tree" / "model")
    if model is not None:
        model = model.replace("\x00", "").strip()
        if "jetson" in model.lower():
            return model
    release = _read_text(root / "etc" / "nv_tegra_release")
    if release is None:
        return None
    # "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, ..."
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
    l4t = f" (L4T R{match.group(1)}.{match.group(2)})" if match else ""
    return f"NVIDIA Jetson{l4t}"


def _jetson_capability(model: str) -> str | None:
    lowered = model.lower()
    return next((cc for word, cc in JETSON_COMPUTE_CAPABILITY if word in lowered), None)


def _cuda_from_files(root: Path) -> str | None:
    cuda = root / "usr" / "local" / "cuda"
    text = _read_text(cuda / "version.json")
    if text is not None:
        try:
            version = json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            version = None
        if isinstance(version, str) and re.match(r"\d+\.\d+", version):
            return version.strip()
    text = _read_text(cuda / "version.txt")
    match = re.search(r"CUDA Version\s+(\d+\.\d+(?:\.\d+)?)", text or "")
    return match.group(1) if match else None


def _distribution_version(names: tuple) -> str | None:
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken installation's metadata: keep probing
            continue
    return None


def _python_cuda_version() -> str | None:
    """The CUDA runtime a pip TensorRT links against (its wheel's version), if installed."""
    return _distribution_version(CUDA_RUNTIME_DISTRIBUTIONS)


def _python_tensorrt_version() -> str | None:
    """The ``tensorrt`` Python package's version: distribution metadata (cheap), else the
    module's ``__version__`` (Jetson's apt package has no pip metadata)."""
    version = _distribution_version(TENSORRT_DISTRIBUTIONS)
    if version:
        return version
    try:
        import tensorrt  # noqa: PLC0415 - only here; the runtime never imports it at load
    except Exception:  # ImportError, or a binding whose native libraries fail to load
        return None
    version = getattr(tensorrt, "__version__", None)
    return version if isinstance(version, str) and version else None


def _tensorrt_from_headers(root: Path) -> str | None:
    """``major.minor.patch`` from NvInferVersion.h (plain numbers, or TensorRT 10.11+'s
    ``#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE`` indirection)."""
    include = root / "usr" / "include"
    candidates = sorted(include.glob("*/NvInferVersion.h")) + [include / "NvInferVersion.h"]
    for header in candidates:
        text = _read_text(header)
        if text is None:
            continue
        defines = dict(re.findall(r"^\s*#\s*define\s+(\w+)\s+(\w+)", text, re.MULTILINE))

        def resolve(name: str) -> str | None:
            value = defines.get(name)
            for _ in range(4):
                if value is None or value.isdigit():
                    return value
                value = defines.get(value)
            return None

        parts = [resolve(f"NV_TENSORRT_{p}") for p in ("MAJOR", "MINOR", "PATCH")]
        if parts[0] is not None and parts[1] is not None:
            return ".".join(p for p in parts if p is not None)
    return None


def local_gpu_info(root: Path = Path("/"), run: Callable = subprocess.run) -> GpuInfo:
    """Describe this device's NVIDIA GPU, CUDA and TensorRT (see the module docs); never raises
    for a missing or failing probe."""
    root = Path(root)
    name, capability = _nvidia_smi(run)
    jetson = _jetson(root)
    if jetson is not None and capability is None:
        capability = _jetson_capability(jetson)
    cuda = _cuda_from_files(root) or _python_cuda_version()
    tensorrt = _python_tensorrt_version() or _tensorrt_from_headers(root)
    return GpuInfo(name=name, compute_capability=capability, cuda=cuda, tensorrt=tensorrt,
                   jetson_model=jetson)
