"""Building a bundle's TensorRT engine on the device that will run it: :func:`build_engine`.

One mechanism, ONNX Runtime's TensorRT execution provider with its EP-context model (no
``tensorrt`` Python API, no torch): a session is created on the bundle's ONNX graph with
``trt_dump_ep_context_model``, FP16 enabled, and one optimisation profile over the batches and
window lengths in use. ONNX Runtime builds the engine while the session is created and writes
two files into an empty folder of a staged copy of the bundle: the engine, and a small context
model (one ``EPContext`` node naming the engine file, ``trt_ep_context_embed_mode`` 0). The
runtime later opens a session on that context model, so it runs exactly this engine and never
builds one.

- fp16 needs a float graph (FP32 or FP16 bundle): TensorRT lowers it to FP16 itself, with
  ``trt_layer_norm_fp32_fallback`` keeping layer normalisation's reductions in FP32.
- int8 needs a static QDQ graph with zero points 0 (TensorRT's explicit quantization takes the
  graph's own scales, and symmetric INT8 only); FP16 stays enabled so the layers left in float
  run in FP16. TensorRT has no blockwise (MatMulNBits) or dynamic INT8.

Before it is added, the engine runs the bundle's reference windows through the runtime's own
path (a session on the context model) and must match the stored outputs within
:func:`~edgeser.engines.record.tolerances`; the figures go into the record. Adding it is
atomic: the bundle is staged as a sibling copy (unchanged files hard-linked), the engine folder
and a new manifest (every file hashed) are added, and the copy replaces the bundle by renames,
so readers see the old or the new bundle, never a mix. A lock under ``edgeser_home()`` lets one
process build at a time per bundle; a process that waited for another's build uses its engine.

``session_factory`` (default :func:`edgeser.inference.create_session`) is how tests build on a
CPU; ``local`` and ``available`` describe the device and ONNX Runtime's providers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from edgeser.contract import ENGINE_PRECISIONS, OUTPUT_NAMES
from edgeser.engines import onnxwire
from edgeser.engines.record import (CONTEXT_MODEL_NAME, MAX_BATCH, EngineError, EngineRecord,
                                    Parity, Profile, choose, engine_folder, optimization_profile,
                                    same_target, tolerances)
from edgeser.errors import BundleError, EdgeserError
from edgeser.gpu import GpuInfo, local_gpu_info

__all__ = ["BUILD_HINT", "BundleFacts", "EngineBuild", "build_engine", "build_options",
           "check_can_build", "engine_precision", "runtime_options"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
ENGINE_PROVIDERS = (TENSORRT, CUDA, CPU)
BUILD_HINT = ("`pip install onnxruntime-gpu tensorrt` (on a Jetson: JetPack's TensorRT and the "
              "Jetson Zoo build of onnxruntime-gpu)")
# TensorRT's timing cache (kernel timings per GPU): shared by every build on this machine, so a
# second engine for another bundle or precision builds faster. It never holds engines.
TIMING_CACHE_DIR = "trt-timing-cache"
# Operators of INT8 graphs made for ONNX Runtime's CPU kernels that TensorRT cannot take: no
# fp16 engine from them, and no int8 one either.
RUNTIME_INT8_OPS = ("MatMulNBits", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul",
                    "QLinearConv", "QAttention", "QGemm")


# ---------------------------------------------------------------- the bundle, as builds see it


def _plain(value: Any) -> Any:
    """JSON containers of a manifest (read-only mappings, tuples) as dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class BundleFacts:
    """What engines need of a loaded bundle. :meth:`of` is the one place that reads a manifest
    (and :func:`_publish` the one that writes one)."""

    path: Path
    graph: Path  # the full ONNX graph
    method: str  # quantization method: none, fp16, static-qdq, dynamic, matmul-nbits
    recipe: str  # what the quantization is called, for sentences
    model: str  # what `edgeser export --model` takes to remake the bundle
    window_s: float
    min_samples: int
    reference_file: str
    reference_count: int
    reference_atol: float
    files: Mapping = field(default_factory=dict, hash=False)  # name -> sha256
    records: tuple = ()  # the usable EngineRecords
    entries: tuple = ()  # every engine entry as JSON (usable or not)

    @classmethod
    def of(cls, bundle: Any) -> "BundleFacts":
        m = bundle.manifest  # an edgeser.bundle.Manifest
        quant, ref = m.quantization, m.reference_windows
        entries, records = [], []
        for entry in m.engines:
            if isinstance(entry, EngineRecord):
                records.append(entry)
                entries.append(entry.to_json())
                continue
            entries.append(_plain(entry))
            record, _problems = EngineRecord.from_json(entries[-1])
            if record is not None:
                records.append(record)
        return cls(path=Path(bundle.path), graph=Path(bundle.graph_path("full")),
                   method=quant.method, recipe=quant.describe(),
                   model=m.source.model or m.model_id, window_s=float(m.window_s),
                   min_samples=int(m.min_samples), reference_file=ref.file,
                   reference_count=int(ref.count), reference_atol=float(ref.atol),
                   files=MappingProxyType({name: entry.sha256 for name, entry in m.files.items()}),
                   records=tuple(records), entries=tuple(entries))

    @property
    def engine_precision(self) -> str:
        """The engine this bundle's graph makes: int8 from a static QDQ graph, else fp16."""
        return "int8" if self.method == "static-qdq" else "fp16"

    def reference(self) -> list[dict[str, np.ndarray]]:
        """``[{"input": x, "logits": y, "embedding": e}, ...]`` from the reference file."""
        keys = ("input",) + OUTPUT_NAMES
        try:
            with np.load(self.path / self.reference_file, allow_pickle=False) as data:
                return [{k: np.asarray(data[f"{k}_{i}"]) for k in keys}
                        for i in range(self.reference_count)]
        except Exception as err:  # zip/npz/key errors vary by NumPy version
            raise BundleError(f"model bundle {self.path}: {self.reference_file} cannot be read "
                              f"({err}).") from None


def engine_precision(bundle: Any) -> str:
    """``int8`` for a bundle whose graph is static INT8 (QDQ), else ``fp16``."""
    return BundleFacts.of(bundle).engine_precision


def _publish(stage: Any, bundle: Any, facts: BundleFacts, record: EngineRecord) -> Any:
    """Commit the staged copy with ``record`` in place of this GPU's engine of the same
    precision: the one place that writes a manifest."""
    doc = bundle.manifest.to_json()
    doc.pop("files", None)  # the stage hashes every file it holds
    kept = [e for e in facts.entries if not same_target(e, record.gpu, record.precision)]
    doc["engines"] = kept + [record.to_json()]
    return stage.commit(doc)


# ---------------------------------------------------------------- can this device build?


def _available_providers() -> list[str]:
    try:
        import onnxruntime
    except Exception as err:  # not installed, or its native library fails to load
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise EngineError(f"ONNX Runtime cannot be loaded ({first}); install {BUILD_HINT}.",
                          "ONNX Runtime cannot be loaded") from None
    return list(onnxruntime.get_available_providers())


def _ort_version() -> str:
    try:
        import onnxruntime
    except Exception:
        return "unknown"
    return str(getattr(onnxruntime, "__version__", "unknown"))


def check_can_build(local: GpuInfo | None = None,
                    available: Sequence[str] | None = None) -> GpuInfo:
    """Fail fast (:class:`EngineError`, one sentence) unless this device can build a TensorRT
    engine: ONNX Runtime's TensorRT provider, an NVIDIA GPU, TensorRT. Returns the device."""
    available = list(_available_providers() if available is None else available)
    local = local_gpu_info() if local is None else local
    if TENSORRT not in available:
        listed = ", ".join(available) or "none"
        raise EngineError(
            f"building a TensorRT engine needs ONNX Runtime's {TENSORRT}, which this onnxruntime "
            f"({_ort_version()}, providers: {listed}) lacks; install {BUILD_HINT} on the device "
            "that will run the engine.",
            f"this onnxruntime has no {TENSORRT}")
    if not local.has_gpu:
        raise EngineError(
            "TensorRT engines are built on the device that runs them, and this machine has no "
            "NVIDIA GPU (nvidia-smi finds none and it is not a Jetson); build the engine there "
            "with `edgeser engine build BUNDLE`.",
            "this machine has no NVIDIA GPU")
    if not local.tensorrt:
        raise EngineError(
            f"building a TensorRT engine needs TensorRT, which is not installed here (this "
            f"device has {local.describe()}); install {BUILD_HINT}.",
            "TensorRT is not installed here")
    return local


# ---------------------------------------------------------------- precision rules


def _export_hint(facts: BundleFacts, quantize: str) -> str:
    return f"`edgeser export --model {facts.model} --quantize {quantize}`"


def check_graph(facts: BundleFacts, precision: str, scan: onnxwire.GraphScan) -> None:
    """Refuse (one sentence naming the export that makes a suitable bundle) a graph the engine
    of ``precision`` cannot be built from."""
    where = f"model bundle {facts.path}"
    runtime_int8 = scan.uses(*RUNTIME_INT8_OPS)
    qdq = scan.uses(*onnxwire.QDQ_OPS)
    if precision == "fp16":
        if runtime_int8 or qdq or facts.method not in ("none", "fp16"):
            what = ", ".join(runtime_int8 or qdq) or facts.method
            raise EngineError(
                f"{where}: an fp16 engine is built from an FP32 or FP16 graph, but this bundle's "
                f"graph is INT8 ({facts.recipe}: {what}); export a float bundle with "
                f"{_export_hint(facts, 'none')} (or --quantize fp16) and build its engine with "
                "`edgeser engine build BUNDLE`.",
                "the bundle's graph is INT8, not a float graph an fp16 engine is built from")
        return
    symmetric = (f"`edgeser export --model {facts.model} --quantize int8 --recipe "
                 "static-symmetric` (a static INT8 graph with symmetric activations)")
    if runtime_int8 or facts.method != "static-qdq" or not qdq:
        what = ", ".join(runtime_int8) or facts.recipe
        raise EngineError(
            f"{where}: an int8 engine is built from a static INT8 (QDQ) graph with zero points "
            f"0, but this bundle's graph is {what}; export one with {symmetric}, or build an "
            "fp16 engine with `edgeser engine build BUNDLE --precision fp16`.",
            "the bundle's graph is not static symmetric INT8")
    if scan.unsigned_zero_points or scan.nonzero_zero_points:
        offending = scan.unsigned_zero_points or scan.nonzero_zero_points
        kind = "uint8" if scan.unsigned_zero_points else "non-zero zero points"
        raise EngineError(
            f"{where}: TensorRT takes only symmetric signed INT8 (zero points 0), but "
            f"{len(offending)} quantize/dequantize nodes of {facts.graph.name} have {kind} "
            f"(first: {offending[0]}); export a symmetric one with {symmetric}.",
            "the bundle's INT8 graph is not symmetric")


# ---------------------------------------------------------------- provider options


def runtime_options() -> dict:
    """TensorRT provider options of a session on a context model: the engine is loaded, never
    built (no engine cache, no context dump)."""
    return {"device_id": 0}


def build_options(profile: Profile, context_model: Path, timing_cache: Path | None) -> dict:
    """TensorRT provider options that build an engine (fp16 or int8: the graph decides) with
    ``profile`` and write it with its context model at ``context_model`` (the engine goes beside it:
    ``trt_engine_cache_path`` is relative to the context model's folder, and left empty)."""
    low, opt, high = profile.ort_shapes()
    options = {
        "device_id": 0,
        # fp16, and for int8 too: QDQ graphs are explicitly quantized (TensorRT takes the
        # graph's scales; trt_int8_enable is for calibration tables), and the layers left in
        # float then run in FP16.
        "trt_fp16_enable": True,
        "trt_layer_norm_fp32_fallback": True,
        "trt_profile_min_shapes": low,
        "trt_profile_opt_shapes": opt,
        "trt_profile_max_shapes": high,
        "trt_engine_cache_enable": True,
        "trt_dump_ep_context_model": True,
        "trt_ep_context_file_path": str(context_model),
        "trt_ep_context_embed_mode": 0,
    }
    if timing_cache is not None:
        options.update(trt_timing_cache_enable=True, trt_timing_cache_path=str(timing_cache))
    return options


def _timing_cache() -> Path | None:
    from edgeser.bundle import edgeser_home

    path = edgeser_home() / TIMING_CACHE_DIR
    try:  # ONNX Runtime creates only the last level of a cache path
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class EngineBuild:
    """What :func:`build_engine` did: the record, the bundle directory, and whether an engine
    was built (False: another process's build, waited for, is used)."""

    record: EngineRecord
    bundle: Path
    built: bool


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def _build_lock(bundle_dir: Path) -> Iterator[None]:
    """One build per bundle at a time (an advisory lock under ``edgeser_home()/locks``); where
    locks are not available the build runs unlocked."""
    try:
        import fcntl
        from edgeser.bundle import edgeser_home

        key = hashlib.sha256(str(bundle_dir.resolve()).encode("utf-8", "surrogateescape"))
        path = edgeser_home() / "locks" / f"engine-{key.hexdigest()[:24]}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def _carry(facts: BundleFacts, names: list[str], stage: Path) -> dict[str, tuple]:
    """Hard-link (else copy) the bundle files ``names`` into the stage; returns their stat keys
    to check, before the commit, that none changed meanwhile."""
    keys = {}
    for name in names:
        src, dst = facts.path / name, stage / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        keys[name] = _stat_key(src)
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(src, dst)
    return keys


def _unchanged(facts: BundleFacts, keys: dict[str, tuple]) -> None:
    changed = [name for name, key in keys.items() if _stat_key(facts.path / name) != key]
    if changed:
        raise BundleError(f"model bundle {facts.path}: {', '.join(changed)} changed while the "
                          "engine was built; nothing was added (run the build again).")


def _built_engine(folder: Path, context: Path, facts: BundleFacts) -> Path:
    """The engine file ONNX Runtime wrote: the one the context model's ``EPContext`` node
    names, beside it. Anything else it left in the folder (profile files) is removed."""
    where = f"model bundle {facts.path}"
    if not context.is_file():
        raise EngineError(f"{where}: ONNX Runtime wrote no TensorRT context model (is this "
                          "onnxruntime older than 1.18?); nothing was added.",
                          "ONNX Runtime wrote no TensorRT context model")
    try:
        scan = onnxwire.scan_onnx(context)
    except (OSError, onnxwire.OnnxReadError) as err:
        raise EngineError(f"{where}: the TensorRT context model ONNX Runtime wrote cannot be "
                          f"read ({err}); nothing was added.", "no readable context model"
                          ) from None
    nodes = scan.ep_context
    if len(nodes) != 1:
        what = ("took none of the graph" if not nodes
                else f"split the graph into {len(nodes)} engines")
        raise EngineError(f"{where}: TensorRT {what}, and edgeser runs one engine per graph; "
                          "nothing was added.", f"TensorRT {what}")
    name = nodes[0].cache_context
    engine = folder / name if name else None
    if (nodes[0].embed_mode != 0 or not name or "/" in name or "\\" in name or name in (".", "..")
            or not engine.is_file()):
        raise EngineError(f"{where}: the context model names no engine file beside it "
                          f"({name!r}); nothing was added.", "the context model names no engine")
    for path in folder.iterdir():
        if path not in (context, engine):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return engine


def _parity(bundle: Any, facts: BundleFacts, context: Path, precision: str,
            session_factory: Callable | None) -> Parity:
    """The engine's outputs on the reference windows, through the runtime's own path."""
    from edgeser.inference import Session, SessionSettings

    settings = SessionSettings(threads=1, providers=ENGINE_PROVIDERS,
                               provider_options=(runtime_options(), {"device_id": 0}, {}))
    windows = facts.reference()
    session = Session(bundle, settings, graph=context, session_factory=session_factory)
    errors = {name: 0.0 for name in OUTPUT_NAMES}
    scale = {name: 0.0 for name in OUTPUT_NAMES}
    for window in windows:
        for name, got in zip(OUTPUT_NAMES, session.run(window["input"])):
            want = np.asarray(window[name], dtype=np.float64)
            got = np.asarray(got, dtype=np.float64)
            if got.shape != want.shape:
                raise EngineError(
                    f"model bundle {facts.path}: the {precision} engine gives {name} of shape "
                    f"{got.shape} where the reference has {want.shape}; nothing was added.",
                    f"the engine's {name} has the wrong shape")
            error = float(np.max(np.abs(got - want))) if want.size else 0.0
            errors[name] = max(errors[name], error if np.isfinite(error) else float("inf"))
            scale[name] = max(scale[name], float(np.max(np.abs(want))) if want.size else 0.0)
    limits = tolerances(precision, scale, facts.reference_atol)
    return Parity(len(windows), MappingProxyType(errors), MappingProxyType(limits))


def _make_session(graph: Path, options: dict, session_factory: Callable | None) -> Any:
    import onnxruntime as ort

    from edgeser.inference import create_session

    so = ort.SessionOptions()
    # Basic graph rewrites only (constant folding keeps DequantizeLinear): TensorRT gets the
    # graph as exported.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    factory = session_factory or create_session
    return factory(str(graph), so, list(ENGINE_PROVIDERS), [options, {"device_id": 0}, {}])


def build_engine(bundle_dir: str | os.PathLike, precision: str | None = None, *,
                 local: GpuInfo | None = None, available: Sequence[str] | None = None,
                 session_factory: Callable | None = None, max_batch: int = MAX_BATCH,
                 rebuild: bool = True,
                 announce: Callable[[str, str], None] | None = None) -> EngineBuild:
    """Build this device's TensorRT engine for the bundle at ``bundle_dir`` and add it (see the
    module docs); returns the :class:`EngineBuild`.

    ``precision`` defaults to the bundle's (int8 for a static INT8 bundle, else fp16). An
    engine of this GPU and precision already in the bundle is replaced; with ``rebuild=False``
    a fitting one is used instead of building. ``announce(precision, gpu)`` is called once the
    checks passed, just before the minutes of building start. Raises :class:`EngineError` (one
    sentence) when this device cannot build, the graph does not suit the precision, TensorRT
    fails or the engine misses the reference outputs, and BundleError for bundle problems; the
    bundle is then unchanged.
    """
    from edgeser import bundle as bundles

    if precision is not None and precision not in ENGINE_PRECISIONS:
        raise EngineError(f"engine precision {precision!r} is not one of "
                          f"{', '.join(ENGINE_PRECISIONS)}.", "unknown precision")
    local = check_can_build(local, available)
    bundle_dir = Path(bundle_dir)
    with _build_lock(bundle_dir):
        loaded = bundles.load(bundle_dir)
        precision = precision or BundleFacts.of(loaded).engine_precision
        if not rebuild:  # another process may have built it while this one waited
            fitting, _stale = choose(BundleFacts.of(loaded).records, local, precision)
            if fitting is not None:
                return EngineBuild(fitting, loaded.path, built=False)
        # Rehashed: the new manifest vouches for every file it carries over.
        loaded = bundles.load(bundle_dir, rehash=True)
        facts = BundleFacts.of(loaded)
        try:
            scan = onnxwire.scan_onnx(facts.graph)
        except (OSError, onnxwire.OnnxReadError) as err:
            raise BundleError(f"model bundle {facts.path}: {facts.graph.name} cannot be read as "
                              f"ONNX ({err}).") from None
        check_graph(facts, precision, scan)
        try:
            profile = optimization_profile(facts.window_s, facts.min_samples, max_batch)
        except ValueError as err:
            raise EngineError(f"model bundle {facts.path}: {err}.", str(err)) from None
        folder_name = engine_folder(local.device_name, precision)
        dropped = {name for entry in facts.entries
                   if same_target(entry, local.device_name, precision)
                   for name in (entry.get("file"), entry.get("context_model")) if name}
        dropped |= {name for name in facts.files
                    if PurePosixPath(name).parts[:2] == tuple(folder_name.split("/"))}
        with bundles.stage_bundle(loaded.path, overwrite=True) as stage:
            keys = _carry(facts, sorted(set(facts.files) - dropped), stage.path)
            folder = stage.path / folder_name
            folder.mkdir(parents=True)
            context = folder / CONTEXT_MODEL_NAME
            if announce is not None:
                announce(precision, local.device_name)
            try:
                session = _make_session(facts.graph,
                                        build_options(profile, context, _timing_cache()),
                                        session_factory)
                used = list(session.get_providers())
                del session
            except EdgeserError:
                raise
            except Exception as err:  # ONNX Runtime raises its own pybind exception types
                raise EngineError(
                    f"model bundle {facts.path}: TensorRT could not build a {precision} engine "
                    f"from {facts.graph.name} ({_first_line(err)}); nothing was added.",
                    f"TensorRT could not build the engine ({_first_line(err)})") from None
            if TENSORRT not in used:
                raise EngineError(
                    f"model bundle {facts.path}: ONNX Runtime did not use TensorRT (it ran on "
                    f"{', '.join(used) or 'nothing'}: are TensorRT's libraries on the library "
                    "path?); nothing was added.", "ONNX Runtime could not use TensorRT")
            engine = _built_engine(folder, context, facts)
            parity = _parity(loaded, facts, context, precision, session_factory)
            if not parity.passed:
                raise EngineError(
                    f"model bundle {facts.path}: the {precision} engine built here does not "
                    f"reproduce the bundle's reference windows ({'; '.join(parity.failures())}); "
                    "nothing was added.", "the engine missed the reference outputs")
            record = EngineRecord(
                file=f"{folder_name}/{engine.name}", context_model=f"{folder_name}/{context.name}",
                precision=precision, tensorrt=local.tensorrt, cuda=_major_minor(local.cuda),
                onnxruntime=_ort_version(), gpu=local.device_name,
                compute_capability=local.compute_capability or "unknown", profile=profile,
                parity=parity)
            _unchanged(facts, keys)
            published = _publish(stage, loaded, facts, record)
        return EngineBuild(record, Path(published.path), built=True)


def _major_minor(version: str | None) -> str:
    parts = (version or "").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) \
        else (version or "unknown")

