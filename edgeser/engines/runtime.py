"""Running a bundle's engine: :func:`prepare` (what ``detect`` and ``bench`` run on a device) and
:func:`check_engines` (``edgeser verify``).

With ``--device tensorrt`` or ``jetson``, the session runs the bundle's engine for this GPU: the
record of this GPU and precision (fp16, or int8 for a static INT8 bundle) that fits this
device's TensorRT, CUDA and GPU, through its context model with the providers TensorRT, CUDA,
CPU (CUDA and CPU only for nodes outside the engine). Everything is decided from the manifest
and the small context model before a session exists, so a foreign engine is refused before
TensorRT deserialises it:

- a fitting engine: its context model is checked (one ``EPContext`` node naming the recorded
  engine file, beside it) and run;
- an engine of this GPU that no longer fits (TensorRT, CUDA or driver upgraded): refused with
  the ``edgeser engine build`` command that replaces it;
- none for this GPU: built now, once (one line on stderr says so; it takes minutes), unless
  the device was ``auto``, which never builds and quietly runs the ONNX graph on CUDA or CPU.

With ``fallback``, a refusal or a failed build runs the ONNX graph on CUDA (else CPU) instead,
and the device's ``fallback`` note says why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np

from edgeser.contract import OUTPUT_NAMES
from edgeser.engines import build as _build
from edgeser.engines import onnxwire
from edgeser.engines.build import (ENGINE_PROVIDERS, TENSORRT, BundleFacts, build_engine,
                                   runtime_options)
from edgeser.engines.record import (EngineError, EngineRecord, Profile, choose,
                                    engine_compatibility, optimization_profile)
from edgeser.errors import BundleError
from edgeser.gpu import GpuInfo, local_gpu_info

__all__ = ["ENGINE_DEVICES", "EngineCheck", "EngineChoice", "check_context_model",
           "check_engines", "prepare"]

# Device profiles that run engines.
ENGINE_DEVICES = ("tensorrt", "jetson")


def _say(message: str) -> None:
    print(f"edgeser: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EngineChoice:
    """What a session runs: the providers (``device``, whose ``fallback`` says when something
    else runs than was asked for), the ONNX file (an engine's context model, or the bundle's
    graph), its precision, and the engine's record (None for the ONNX graph). ``built`` when
    the engine was built for this run."""

    device: Any  # edgeser.devices.Device
    graph: Path
    precision: str
    record: EngineRecord | None = None
    built: bool = False

    @property
    def bytes(self) -> int:
        """Size of what runs: the engine file, or the ONNX graph."""
        path = self.graph.parent / PurePosixPath(self.record.file).name if self.record \
            else self.graph
        try:
            return path.stat().st_size
        except OSError:
            return 0


def _onnx(bundle: Any, device: Any) -> EngineChoice:
    return EngineChoice(device=device, graph=Path(bundle.graph_path("full")),
                        precision=bundle.manifest.quantization.precision)


def check_context_model(bundle_path: Path, record: EngineRecord) -> Path:
    """The context model of ``record``, after checking it runs exactly the recorded engine: one
    ``EPContext`` node (embed mode 0) naming ``record.file`` beside it, no external data. Only
    the small context model is read, never the engine. Raises :class:`EngineError`."""
    context = Path(bundle_path) / record.context_model
    where = f"model bundle {bundle_path}: engine context model {record.context_model}"
    try:
        scan = onnxwire.scan_onnx(context)
    except (OSError, onnxwire.OnnxReadError) as err:
        problem = getattr(err, "strerror", None) or str(err)
        raise EngineError(f"{where} cannot be read ({problem}).",
                          "its engine's context model cannot be read") from None
    engine = PurePosixPath(record.file).name
    names = [node.cache_context for node in scan.ep_context]
    if len(names) != 1 or names[0] != engine or scan.external_data:
        raise EngineError(f"{where} does not run the recorded engine {record.file} alone (it "
                          f"names {names or 'no engine'}); rebuild it with `edgeser engine build "
                          f"{bundle_path} --precision {record.precision}`.",
                          "its engine's context model does not name the recorded engine")
    return context


def _refusal(bundle_path: Path, record: EngineRecord, local: GpuInfo, problems: list[str]
             ) -> EngineError:
    return EngineError(
        f"model bundle {bundle_path}: its {record.describe()} does not fit this device, which "
        f"has {local.describe()} ({'; '.join(problems)}); build one for this device with "
        f"`edgeser engine build {bundle_path} --precision {record.precision}`, or add "
        "--fallback to run the ONNX graph.",
        f"its {record.precision} engine does not fit this device ({'; '.join(problems)})")


def _check_shapes(bundle_path: Path, precision: str, profile: Profile, batch: int | None,
                  samples: int | None) -> None:
    if batch is None and samples is None:
        return
    if profile.takes(batch or profile.batch[0], samples or profile.samples[2]):
        return
    asked = " and ".join(part for part in (
        f"batches of {batch}" if batch is not None else "",
        f"windows of {samples} samples" if samples is not None else "") if part)
    raise EngineError(
        f"model bundle {bundle_path}: its {precision} engine takes "
        f"{profile.describe()}, not {asked}; use a smaller --batch-size or --window, or run the "
        "ONNX graph (--device cuda).", "the run's shapes are outside the engine's profile")


def _fallback(bundle: Any, device: Any, reason: str, *, quiet: bool,
              available: Sequence[str] | None) -> EngineChoice:
    """The ONNX graph on CUDA (else CPU), with a note naming why, unless ``quiet``."""
    from edgeser import devices

    onnx_device = devices.resolve_device("cuda", fallback=True, available=available)
    asked = device.requested if device.requested != "auto" else device.name
    note = None if quiet else (
        f"{asked} was asked for but {reason}; running the ONNX graph on "
        f"{onnx_device.name} ({', '.join(onnx_device.providers)})")
    return _onnx(bundle, replace(onnx_device, requested=device.requested, fallback=note,
                                 jetson=device.jetson))


def prepare(bundle: Any, device: Any, *, fallback: bool = False, batch: int | None = None,
            samples: int | None = None, local: GpuInfo | None = None,
            available: Sequence[str] | None = None, session_factory: Callable | None = None,
            say: Callable[[str], None] = _say) -> EngineChoice:
    """What a session on ``device`` (a :class:`edgeser.devices.Device`) runs for the loaded
    ``bundle`` (see the module docs). ``batch`` and ``samples`` are the largest the run will
    use; an engine whose profile does not take them is refused (never a fallback: that is a
    usage problem). Raises :class:`EngineError` (one sentence) unless ``fallback``."""
    if device.name not in ENGINE_DEVICES:
        return _onnx(bundle, device)
    local = local_gpu_info() if local is None else local
    facts = BundleFacts.of(bundle)
    precision = facts.engine_precision
    auto = device.requested == "auto"
    record, stale = choose(facts.records, local, precision)
    if record is None and auto:  # auto runs what is there; it never spends minutes building
        return _fallback(bundle, device, "", quiet=True, available=available)
    # Before any build: the profile an engine built now would have (a window shorter than
    # the minimum input has none; the build then says so).
    try:
        profile = record.profile if record is not None else optimization_profile(
            facts.window_s, facts.min_samples)
    except ValueError:
        profile = None
    if profile is not None:
        _check_shapes(bundle.path, precision, profile, batch, samples)
    built = False
    try:
        if record is None and stale:
            stale_record, problems = stale[0]
            raise _refusal(bundle.path, stale_record, local, problems)
        if record is None:
            result = build_engine(
                bundle.path, precision, local=local, available=available,
                session_factory=session_factory, rebuild=False,
                announce=lambda p, gpu: say(f"building the {p} TensorRT engine for {gpu} into "
                                            f"{bundle.path} (this takes minutes, once; later "
                                            "runs load it)"))
            record, built = result.record, result.built
        context = check_context_model(bundle.path, record)
    except (EngineError, BundleError) as err:  # BundleError: the bundle could not take it
        if not (fallback or auto):
            raise
        reason = getattr(err, "reason", None) or (
            f"its engine could not be added ({str(err).rstrip('.')})")
        return _fallback(bundle, device, reason, quiet=auto and not fallback,
                         available=available)
    _check_shapes(bundle.path, precision, record.profile, batch, samples)
    options = dict(zip(ENGINE_PROVIDERS, (runtime_options(), {"device_id": 0}, {})))
    engine_device = replace(device, provider_options=tuple(
        dict(options.get(p, {})) for p in device.providers))
    return EngineChoice(device=engine_device, graph=context, precision=record.precision,
                        record=record, built=built)


# ---------------------------------------------------------------- edgeser verify


@dataclass(frozen=True)
class EngineCheck:
    """One line of ``edgeser verify`` about one engine; ``ok`` is False only for an engine that
    fits this device and fails its reference windows (or cannot run)."""

    line: str
    ok: bool = True


def _run_reference(bundle: Any, facts: BundleFacts, record: EngineRecord,
                   session_factory: Callable | None) -> EngineCheck:
    from edgeser.inference import Session, SessionSettings

    name = f"engine {record.file} ({record.describe()})"
    try:
        context = check_context_model(bundle.path, record)
        session = Session(bundle, SessionSettings(
            threads=1, providers=ENGINE_PROVIDERS,
            provider_options=(runtime_options(), {"device_id": 0}, {})),
            graph=context, session_factory=session_factory)
        errors = {out: 0.0 for out in OUTPUT_NAMES}
        windows = facts.reference()
        for window in windows:
            for out, got in zip(OUTPUT_NAMES, session.run(window["input"])):
                want = np.asarray(window[out], dtype=np.float64)
                got = np.asarray(got, dtype=np.float64)
                error = float(np.max(np.abs(got - want))) if got.shape == want.shape \
                    else float("inf")
                errors[out] = max(errors[out], error if np.isfinite(error) else float("inf"))
    except (EngineError, BundleError) as err:
        return EngineCheck(f"{name}: FAILED: {err}", ok=False)
    tolerance = record.parity.tolerance
    shown = ", ".join(f"{out} max abs error {errors[out]:.3g} (tolerance {tolerance[out]:.3g})"
                      for out in OUTPUT_NAMES)
    ok = all(errors[out] <= tolerance[out] for out in OUTPUT_NAMES)
    return EngineCheck(f"{name}: {len(windows)} windows, {shown}: {'OK' if ok else 'FAILED'}",
                       ok=ok)


def check_engines(bundle: Any, *, local: GpuInfo | None = None,
                  available: Sequence[str] | None = None,
                  session_factory: Callable | None = None) -> list[EngineCheck]:
    """One :class:`EngineCheck` per engine entry of the loaded ``bundle``: an engine that fits
    this device runs the reference windows; others say why they were not checked here. Probes
    the device only when the bundle has engines."""
    facts = BundleFacts.of(bundle)
    if not facts.entries:
        return []
    local = local_gpu_info() if local is None else local
    if available is None:
        try:
            available = _build._available_providers()
        except EngineError:  # no usable onnxruntime: nothing can be checked here
            available = []
    checks = []
    for i, entry in enumerate(facts.entries):
        record, problems = EngineRecord.from_json(entry, f"engines[{i}]")
        if record is None:
            checks.append(EngineCheck(f"engine {entry.get('file', i)}: not runnable by this "
                                      f"edgeser ({'; '.join(problems)}); build one with "
                                      f"`edgeser engine build {bundle.path}`"))
            continue
        name = f"engine {record.file} ({record.describe()})"
        if not local.has_gpu or not local.tensorrt or TENSORRT not in available:
            checks.append(EngineCheck(f"{name}: not checked here (no TensorRT/GPU here)"))
            continue
        problems = engine_compatibility(record, local)
        if problems:
            checks.append(EngineCheck(f"{name}: not checked here, not for this device "
                                      f"({'; '.join(problems)})"))
            continue
        checks.append(_run_reference(bundle, facts, record, session_factory))
    return checks
