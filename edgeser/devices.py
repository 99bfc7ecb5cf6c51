"""Device profiles for ``--device``: which ONNX Runtime providers run a model, and on what board.

A profile names the execution providers ONNX Runtime tries, in priority order, with one options
dict per provider; ONNX Runtime gives each graph node to the first provider that can take it, so
every profile ends with ``CPUExecutionProvider`` (nodes TensorRT cannot take run on CUDA, then
CPU, inside the same session).

- ``cpu``: CPU only.
- ``cuda``: CUDA, then CPU.
- ``tensorrt``: TensorRT, then CUDA, then CPU. Sessions run the bundle's TensorRT engine for
  this GPU through its context model (:func:`edgeser.engines.prepare` chooses it, or builds it
  once into the bundle); the providers never build engines of their own.
- ``jetson``: the TensorRT profile on a detected NVIDIA Jetson, with the board's state
  (:class:`JetsonInfo`: L4T release, power mode, CPU and GPU clocks) for every report line,
  since a Jetson's speed depends on its power mode as much as on the model.

:func:`resolve_device` turns ``--device`` (or ``auto``) into a :class:`Device`. A profile whose
first provider this onnxruntime lacks is refused with one sentence (:class:`DeviceError`), or,
with ``fallback=True``, replaced by the next one down ``jetson -> tensorrt -> cuda -> cpu`` and
the substitution recorded in :attr:`Device.fallback`. ``auto`` (:func:`default_device`) walks
down the same chain silently: it asked only for the best that runs here.

Conventions: ``root`` and ``run`` are injectable (fake file-system roots and a fake
``subprocess.run`` in tests), as in :mod:`edgeser.gpu`; every board probe is best effort, and
what cannot be read is ``None`` (or an empty tuple), never an exception. Frequencies carry their
unit in the name (``_khz`` as cpufreq reports them, ``_hz`` as devfreq does). onnxruntime is
imported inside functions only. Standard library otherwise.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edgeser.errors import DeviceError
from edgeser.gpu import _read_text

__all__ = [
    "DEVICES",
    "Device",
    "JetsonInfo",
    "default_device",
    "detect_jetson",
    "resolve_device",
]

DEVICES = ("cpu", "cuda", "tensorrt", "jetson")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROFILE_PROVIDERS = {
    "cpu": (CPU,),
    "cuda": (CUDA, CPU),
    "tensorrt": (TENSORRT, CUDA, CPU),
    "jetson": (TENSORRT, CUDA, CPU),
}
# What to install for each profile's first provider, for the refusal sentence.
INSTALL_HINTS = {
    "cuda": "install onnxruntime-gpu",
    "tensorrt": "install onnxruntime-gpu and TensorRT",
    "jetson": "install the JetPack build of onnxruntime-gpu (NVIDIA's Jetson Zoo)",
}
# --fallback walks down this chain from the requested profile.
FALLBACK_CHAIN = ("jetson", "tensorrt", "cuda", "cpu")

NO_JETSON = "no Jetson detected (no /etc/nv_tegra_release or NVIDIA Jetson device tree)"
NVPMODEL_QUERY = ("nvpmodel", "-q")
# Seconds `nvpmodel -q` may take before the status file is read instead.
NVPMODEL_TIMEOUT_S = 5
# Words in a devfreq node's name that mark a Jetson's integrated GPU: "gpu" (Nano, JetPack 6
# Orin), ga10b (Orin), gv11b (Xavier), gp10b (TX2).
GPU_DEVFREQ_WORDS = ("gpu", "ga10b", "gv11b", "gp10b")


# ---------------------------------------------------------------- Jetson


@dataclass(frozen=True)
class JetsonInfo:
    """A Jetson board and its state when probed; ``None`` (or ``()``) where a probe found nothing.

    ``power_mode`` is ``"NAME (id)"`` like ``"15W (0)"``, ``"NAME"`` when nvpmodel gave no id, or
    ``"mode id"`` when the id has no name in ``/etc/nvpmodel.conf``. CPU clocks are per online
    core in cpu order (kHz); GPU clocks are the iGPU's devfreq node (Hz).
    """

    model: str
    soc: str | None = None
    l4t_release: str | None = None
    power_mode: str | None = None
    cpu_freq_khz: tuple[int, ...] = ()
    cpu_max_freq_khz: tuple[int, ...] = ()
    gpu_freq_hz: int | None = None
    gpu_max_freq_hz: int | None = None

    def describe(self) -> str:
        """``NVIDIA Jetson Orin Nano Developer Kit, L4T R36.3.0, power mode 15W (0), CPU
        1510 MHz x6 (max 1510 MHz), GPU 625 MHz (max 625 MHz)``."""
        l4t = f"L4T {self.l4t_release}" if self.l4t_release else "L4T unknown"
        mode = f"power mode {self.power_mode}" if self.power_mode else "power mode unknown"
        return ", ".join((self.model, l4t, mode, self._cpu_clocks(), self._gpu_clock()))

    def _cpu_clocks(self) -> str:
        if not self.cpu_freq_khz:
            return "CPU clock unknown"
        low, high = (round(f / 1000) for f in (min(self.cpu_freq_khz), max(self.cpu_freq_khz)))
        clocks = f"{low} MHz" if low == high else f"{low}-{high} MHz"
        text = f"CPU {clocks} x{len(self.cpu_freq_khz)}"
        if self.cpu_max_freq_khz:
            text += f" (max {round(max(self.cpu_max_freq_khz) / 1000)} MHz)"
        return text

    def _gpu_clock(self) -> str:
        if self.gpu_freq_hz is None:
            return "GPU clock unknown"
        text = f"GPU {round(self.gpu_freq_hz / 1e6)} MHz"
        if self.gpu_max_freq_hz is not None:
            text += f" (max {round(self.gpu_max_freq_hz / 1e6)} MHz)"
        return text


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a permission error on a parent directory
        return False


def _device_tree_strings(path: Path) -> list[str]:
    """The NUL-separated strings of a device-tree property (empty when unreadable)."""
    text = _read_text(path)
    if text is None:
        return []
    return [part.strip() for part in text.split("\x00") if part.strip()]


def _int_file(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def _l4t_release(text: str | None) -> str | None:
    """``# R36 (release), REVISION: 3.0, ...`` -> ``R36.3.0``."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)", text or "")
    return f"R{match.group(1)}.{match.group(2)}" if match else None


def _power_mode_from_nvpmodel(run: Callable) -> str | None:
    """``NAME (id)`` from ``nvpmodel -q`` (``NV Power Mode: 15W`` then the id on its own line);
    None when nvpmodel is absent, fails, hangs or prints something else."""
    try:
        result = run(list(NVPMODEL_QUERY), capture_output=True, text=True, check=False,
                     timeout=NVPMODEL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if getattr(result, "returncode", 1) != 0:
        return None
    stdout = getattr(result, "stdout", "") or ""
    if isinstance(stdout, bytes):
        stdout = stdout.decode("utf-8", errors="replace")
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        match = re.match(r"NV Power Mode\s*:\s*(\S.*)$", line)
        if match:
            name = match.group(1).strip()
            following = lines[i + 1] if i + 1 < len(lines) else ""
            return f"{name} ({int(following)})" if following.isdigit() else name
    return None


def _power_mode_names(root: Path) -> dict[int, str]:
    """``{id: name}`` from ``/etc/nvpmodel.conf`` lines like ``< POWER_MODEL ID=0 NAME=15W >``."""
    text = _read_text(root / "etc" / "nvpmodel.conf") or ""
    pattern = r"<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)"
    return {int(mode_id): name for mode_id, name in re.findall(pattern, text)}


def _power_mode_from_status(root: Path) -> str | None:
    """``NAME (id)`` from ``/var/lib/nvpmodel/status`` (``pmode:0001 fmode:quiet``), named
    through ``/etc/nvpmodel.conf``."""
    text = _read_text(root / "var" / "lib" / "nvpmodel" / "status")
    match = re.search(r"pmode\s*:\s*(\d+)", text or "")
    if not match:
        return None
    mode_id = int(match.group(1))
    name = _power_mode_names(root).get(mode_id)
    return f"{name} ({mode_id})" if name else f"mode {mode_id}"


def _online_cpus(root: Path) -> list[Path]:
    """``cpuN`` directories in N order, without cores whose ``online`` file says 0 (cpu0
    usually has no such file: it cannot go offline)."""
    base = root / "sys" / "devices" / "system" / "cpu"
    try:
        cpus = [p for p in base.glob("cpu*") if re.fullmatch(r"cpu\d+", p.name)]
    except OSError:
        return []
    cpus.sort(key=lambda p: int(p.name[3:]))
    return [p for p in cpus if (_read_text(p / "online") or "1").strip() != "0"]


def _cpu_freqs_khz(cpus: list[Path], name: str) -> tuple[int, ...]:
    freqs = (_int_file(cpu / "cpufreq" / name) for cpu in cpus)
    return tuple(f for f in freqs if f is not None)


def _gpu_devfreq(root: Path) -> tuple[int | None, int | None]:
    """``(cur_freq, max_freq)`` in Hz of the first devfreq node named like a Jetson iGPU."""
    base = root / "sys" / "class" / "devfreq"
    try:
        nodes = sorted(base.iterdir())
    except OSError:
        return None, None
    for node in nodes:
        names = (node.name + " " + (_read_text(node / "name") or "")).lower()
        if not any(word in names for word in GPU_DEVFREQ_WORDS):
            continue
        current = _int_file(node / "cur_freq")
        if current is not None:
            return current, _int_file(node / "max_freq")
    return None, None


def detect_jetson(root: Path = Path("/"), run: Callable = subprocess.run) -> JetsonInfo | None:
    """This board as a :class:`JetsonInfo`, or None when it is not a Jetson.

    A Jetson has ``/etc/nv_tegra_release``, or ``nvidia,tegra`` in its device-tree
    ``compatible``, or a device-tree ``model`` starting ``NVIDIA Jetson``. ``nvpmodel -q`` runs
    only on a Jetson; where it is absent, fails or hangs, the power mode comes from nvpmodel's
    status file. Never raises for a missing, unreadable or garbled file.
    """
    root = Path(root)
    tree = root / "proc" / "device-tree"
    release_path = root / "etc" / "nv_tegra_release"
    models = _device_tree_strings(tree / "model")
    compatible = _device_tree_strings(tree / "compatible")
    model = models[0] if models else None
    is_jetson = (
        _exists(release_path)
        or any(entry.startswith("nvidia,tegra") for entry in compatible)
        or (model is not None and model.startswith("NVIDIA Jetson"))
    )
    if not is_jetson:
        return None
    soc = next((entry.split(",", 1)[1] for entry in compatible
                if entry.startswith("nvidia,tegra")), None)
    cpus = _online_cpus(root)
    gpu_freq_hz, gpu_max_freq_hz = _gpu_devfreq(root)
    return JetsonInfo(
        model=model or (f"NVIDIA Jetson ({soc})" if soc else "NVIDIA Jetson"),
        soc=soc,
        l4t_release=_l4t_release(_read_text(release_path)),
        power_mode=_power_mode_from_nvpmodel(run) or _power_mode_from_status(root),
        cpu_freq_khz=_cpu_freqs_khz(cpus, "scaling_cur_freq"),
        cpu_max_freq_khz=_cpu_freqs_khz(cpus, "scaling_max_freq"),
        gpu_freq_hz=gpu_freq_hz,
        gpu_max_freq_hz=gpu_max_freq_hz,
    )


# ---------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Device:
    """A resolved ``--device``: the providers and per-provider options a session is built with.

    ``providers`` and ``provider_options`` have the same length and end with the CPU provider.
    ``fallback`` is None, or one sentence saying what was asked for and what runs instead.
    ``jetson`` describes the board whenever it is a Jetson, whatever the profile.
    """

    requested: str
    name: str
    providers: tuple[str, ...]
    # Dicts are unhashable: leave them out of the hash so a Device can still key a dict.
    provider_options: tuple[dict, ...] = field(hash=False)
    fallback: str | None = None
    jetson: JetsonInfo | None = None

    def label(self) -> str:
        """``tensorrt (TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider)``,
        plus `` [fallback: jetson requested]`` when another profile runs than was asked for."""
        text = f"{self.name} ({', '.join(self.providers)})"
        return text + (f" [fallback: {self.requested} requested]" if self.fallback else "")

    def session_providers(self) -> list[tuple[str, dict]]:
        """``[(provider, options), ...]`` for ``onnxruntime.InferenceSession(providers=...)``;
        the dicts are copies, so a session cannot change this Device."""
        return [(p, dict(o)) for p, o in zip(self.providers, self.provider_options)]


def default_device(available: Sequence[str], jetson: JetsonInfo | None) -> str:
    """What ``auto`` means: ``jetson`` on a Jetson, ``cuda`` where ONNX Runtime has CUDA, else
    ``cpu``. (Not ``tensorrt`` on other machines; and ``auto`` runs an engine only where the
    bundle already has one for this device: it never builds one, see
    :func:`edgeser.engines.prepare`.)"""
    if jetson is not None:
        return "jetson"
    return "cuda" if CUDA in available else "cpu"


def _options(name: str) -> dict[str, dict]:
    if name in ("tensorrt", "jetson"):
        # The session loads an engine's context model: nothing to build, nothing to cache.
        return {TENSORRT: {"device_id": 0}, CUDA: {"device_id": 0}, CPU: {}}
    if name == "cuda":
        return {CUDA: {"device_id": 0}, CPU: {}}
    return {CPU: {}}


def _missing(name: str, available: Sequence[str], jetson: JetsonInfo | None) -> str | None:
    """Why profile ``name`` cannot run here (a clause), or None when it can. The CPU provider
    is built into every onnxruntime, so ``cpu`` can always run."""
    if name == "jetson" and jetson is None:
        return NO_JETSON
    first = PROFILE_PROVIDERS[name][0]
    if first != CPU and first not in available:
        return f"ONNX Runtime here has no {first}"
    return None


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except Exception:  # not installed, or its native library fails to load
        return None
    return getattr(onnxruntime, "__version__", None)


def _refusal(name: str, reason: str, available: Sequence[str]) -> str:
    if reason == NO_JETSON:
        return (f"jetson needs an NVIDIA Jetson, but {NO_JETSON}; use --device cuda, tensorrt or "
                "cpu, or add --fallback to run on what is there.")
    first = PROFILE_PROVIDERS[name][0]
    version = _ort_version()
    listed = ", ".join(available) or "none"
    this = f"this onnxruntime ({version}, providers: {listed})" if version else (
        f"this onnxruntime (providers: {listed})")
    return (f"{name} needs ONNX Runtime's {first}, which {this} lacks; {INSTALL_HINTS[name]}, "
            "or add --fallback to run on what is there.")


def _available_providers() -> list[str]:
    try:
        import onnxruntime
    except Exception as err:  # not installed, or its native library fails to load
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DeviceError(f"ONNX Runtime cannot be loaded ({first_line}); install onnxruntime."
                          ) from None
    return list(onnxruntime.get_available_providers())


def resolve_device(requested: str | None, *, fallback: bool = False,
                   available: Sequence[str] | None = None, root: Path = Path("/"),
                   run: Callable = subprocess.run) -> Device:
    """The :class:`Device` for ``--device requested`` (None or ``auto``: :func:`default_device`).

    ``available`` is ONNX Runtime's provider list (default: this onnxruntime's). Raises
    :class:`DeviceError` for an unknown name or precision, and for a profile that cannot run
    here unless ``fallback``, which walks ``jetson -> tensorrt -> cuda -> cpu`` to the first
    that can (``auto`` walks it too, without a fallback note). Providers of the chosen profile
    that are not available are dropped (TensorRT without CUDA keeps TensorRT and CPU).
    Which file a TensorRT session runs is :func:`edgeser.engines.prepare`'s choice.
    """
    wanted = "auto" if requested is None else str(requested).strip().lower()
    if wanted not in DEVICES + ("auto",):
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)} "
                          "(or auto).")
    available = list(_available_providers() if available is None else available)
    jetson = detect_jetson(root, run)
    name = default_device(available, jetson) if wanted == "auto" else wanted

    note = None
    reason = _missing(name, available, jetson)
    if reason is not None:
        if not fallback and wanted != "auto":
            raise DeviceError(_refusal(name, reason, available))
        chain = FALLBACK_CHAIN[FALLBACK_CHAIN.index(name) + 1:]
        runs = next(d for d in chain if _missing(d, available, jetson) is None)
        # auto promised only "the best that runs here" (a Jetson whose onnxruntime is the
        # CPU-only wheel, say), so walking down is no fallback from a request.
        if wanted != "auto":
            note = (f"{name} was asked for but {reason}; running on {runs} "
                    f"({', '.join(_runnable(runs, available))})")
        name = runs

    providers = _runnable(name, available)
    options = _options(name)
    return Device(
        requested=wanted,
        name=name,
        providers=providers,
        provider_options=tuple(options[p] for p in providers),
        fallback=note,
        jetson=jetson,
    )


def _runnable(name: str, available: Sequence[str]) -> tuple[str, ...]:
    """The profile's providers that ``available`` has; CPU always (built into onnxruntime)."""
    return tuple(p for p in PROFILE_PROVIDERS[name] if p == CPU or p in available)
