"""The manifest as typed, frozen values: :class:`Manifest` (``from_json`` / ``to_json``) and the
loaded :class:`Bundle`.

The export builds a :class:`Manifest`; the runtime reads its attributes, never raw keys.
``Manifest.from_json`` validates first (:func:`edgeser.bundle.schema.validate_manifest`, every
problem collected before one BundleError is raised) and reads schema-1 manifests through
:func:`edgeser.bundle.schema.upgrade`; ``to_json`` writes the current schema. Runtime only:
numpy and the standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from edgeser.bundle.schema import FORMAT, SCHEMA_VERSION, upgrade, validate_manifest
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.engines.record import EngineRecord
from edgeser.errors import BundleError


def _frozen(value: Any) -> Any:
    """JSON containers made immutable (lists -> tuples, objects -> read-only mappings)."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """The JSON form of :func:`_frozen` values."""
    if isinstance(value, (dict, MappingProxyType)):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(v) for v in value]
    return value


_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class Logits:
    """The ``logits`` output: raw head outputs of ``kind`` (regression values, class logits with
    softmax applied by the runtime, or prototype similarities)."""

    kind: str
    size: int
    meaning: str


@dataclass(frozen=True)
class Embedding:
    """The ``embedding`` output: the pooled vector."""

    size: int
    meaning: str


@dataclass(frozen=True)
class Normalization:
    """What the runtime does to each window before the graph: ``per-window`` normalisation
    (zero mean, unit variance) or ``none`` (raw samples), and where that setting came from."""

    mode: str
    origin: str = ""

    @property
    def per_window(self) -> bool:
        return self.mode == "per-window"


@dataclass(frozen=True)
class Prototypes:
    labels: tuple[str, ...]
    vectors: tuple[tuple[float, ...], ...]

    def array(self) -> np.ndarray:
        """float32 ``[n_prototypes, dim]``."""
        return np.asarray(self.vectors, dtype=np.float32)


@dataclass(frozen=True)
class Graph:
    """One ONNX graph of the bundle; ``role`` ``full`` maps ``input_values`` to both outputs."""

    file: str
    role: str
    opset: int
    inputs: Mapping = field(default_factory=lambda: _EMPTY, hash=False)
    outputs: Mapping = field(default_factory=lambda: _EMPTY, hash=False)


@dataclass(frozen=True)
class ReferenceWindows:
    """Prepared input windows with their expected outputs, for ``edgeser verify``."""

    file: str
    count: int
    atol: float


@dataclass(frozen=True)
class Quantization:
    """How the graph's precision was reduced. ``preset`` is what ``--recipe`` takes to reproduce
    the bundle (None for FP32 and FP16 bundles, and for schema-1 bundles that did not record
    it); ``details`` are the resolved parameters (ops, per-channel, calibration, nodes kept
    float, ...)."""

    precision: str  # fp32, fp16 or int8
    method: str
    preset: str | None = None
    details: Mapping = field(default_factory=lambda: _EMPTY, hash=False)

    def describe(self) -> str:
        return self.preset or self.details.get("recipe") or self.precision

    @property
    def batch_independent(self) -> bool:
        """False for dynamic INT8, whose activation scales are computed per call over the whole
        batch: the runtime then runs such a graph one window per call."""
        return self.method != "dynamic"

    @property
    def selection(self) -> Mapping | None:
        """How an INT8 recipe was chosen (``--target``): the machine class, every candidate
        tried with its latency and gate verdict, and the one kept; None when ``--recipe``
        named it."""
        return self.details.get("selection")


@dataclass(frozen=True)
class Pruning:
    layers_kept: int
    layers_in_checkpoint: int


@dataclass(frozen=True)
class WeightHash:
    file: str
    sha256: str


@dataclass(frozen=True)
class Source:
    """Where the checkpoint came from: a hub id (with revision and commit) or a local path."""

    model: str
    kind: str
    revision: str | None
    commit: str | None
    architecture: str
    family: str
    weights: tuple[WeightHash, ...] = ()


@dataclass(frozen=True)
class FidelityGate:
    """The export's fidelity verdict on a quantized graph against the original model.

    ``degraded`` is a bundle written with ``--allow-degraded`` although it failed the gate;
    ``failures`` name each metric below its threshold. FP32 bundles pass by construction (they
    are written only when they match PyTorch within the FP32 tolerance)."""

    passed: bool
    failures: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        return not self.passed

    def describe(self) -> str:
        return "passed" if self.passed else f"degraded ({'; '.join(self.failures)})"


@dataclass(frozen=True)
class VoiceActivityGate:
    """Voice activity gating a bundle runs by default (``vad`` in the manifest; absent in bundles
    made before it, which do not gate): ``enabled`` runs the VAD on every stream, and windows
    whose speech fraction is below ``min_speech`` are reported as non-speech, not scored (None:
    the runtime's default for the task, :func:`edgeser.vad.default_min_speech`)."""

    enabled: bool = False
    min_speech: float | None = None


@dataclass(frozen=True)
class OperatingPointOrigin:
    """Where an operating point's threshold came from: the ``rule`` that chose it (e.g.
    ``precision>=0.95``) on labelled audio (``labels_file``, its sha256, how many files and
    windows, how many of them laughter), the metrics ``measured`` at the chosen threshold, and
    what chose it when (``edgeser eval --write-operating-points``)."""

    rule: str
    labels_file: str
    labels_sha256: str
    files: int
    windows: int
    positive_windows: int
    measured: Mapping = field(default_factory=lambda: _EMPTY, hash=False)
    created_utc: str = ""
    tool: str = ""
    denoised: bool = False  # chosen on denoised audio (edgeser.frontend.denoise)

    @classmethod
    def from_json(cls, obj: Mapping) -> "OperatingPointOrigin":
        return cls(obj["rule"], obj["labels_file"], obj["labels_sha256"], int(obj["files"]),
                   int(obj["windows"]), int(obj["positive_windows"]),
                   _frozen(obj.get("measured") or {}), obj["created_utc"], obj["tool"],
                   bool(obj.get("denoised", False)))

    def to_json(self) -> dict:
        return {"rule": self.rule, "labels_file": self.labels_file,
                "labels_sha256": self.labels_sha256, "files": self.files,
                "windows": self.windows, "positive_windows": self.positive_windows,
                "measured": _thawed(self.measured), "created_utc": self.created_utc,
                "tool": self.tool, "denoised": self.denoised}


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """Everything ``manifest.json`` says. ``files`` is filled when the bundle is staged."""

    model_id: str
    task: str
    labels: tuple[str, ...]
    logits: Logits
    embedding: Embedding
    normalization: Normalization
    window_s: float
    hop_s: float
    min_samples: int
    silence_dbfs: float
    graphs: tuple[Graph, ...]
    reference_windows: ReferenceWindows
    quantization: Quantization
    source: Source
    created_utc: str
    sample_rate_hz: int = SAMPLE_RATE_HZ
    operating_points: Mapping = field(default_factory=lambda: _EMPTY, hash=False)  # name -> threshold
    # name -> OperatingPointOrigin, for points chosen on labelled audio (absent: given by hand)
    operating_point_origins: Mapping = field(default_factory=lambda: _EMPTY, hash=False)
    default_operating_point: str | None = None
    positive_label: str | None = None
    prototypes: Prototypes | None = None
    engines: tuple[EngineRecord, ...] = ()  # TensorRT engines built on devices
    pruning: Pruning | None = None
    # A distilled student: its teacher, training and held-out fidelity (see edgeser distill).
    distillation: Mapping | None = field(default=None, hash=False)
    parity: Mapping = field(default_factory=lambda: _EMPTY, hash=False)  # metrics measured at export
    vad: VoiceActivityGate = VoiceActivityGate()
    denoise: bool = False  # run the noise suppressor before windowing by default
    tools: Mapping = field(default_factory=lambda: _EMPTY, hash=False)  # tool -> version
    files: Mapping = field(default_factory=lambda: _EMPTY, hash=False)  # name -> FileEntry

    # -- derived ---------------------------------------------------------------------------

    @property
    def gate(self) -> FidelityGate:
        """The fidelity gate's verdict at export (see :class:`FidelityGate`)."""
        gate = self.parity.get("gate")
        if gate is None:
            return FidelityGate(True)
        return FidelityGate(bool(gate["passed"]), tuple(gate["failures"]))

    def graph(self, role: str = "full") -> Graph | None:
        return next((g for g in self.graphs if g.role == role), None)

    def with_files(self, files: Mapping[str, FileEntry]) -> "Manifest":
        return replace(self, files=MappingProxyType(dict(files)))

    # -- JSON ------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, obj: Any, where: str = "model bundle") -> "Manifest":
        """The manifest of a parsed ``manifest.json``; one BundleError naming ``where`` and every
        problem when it is not valid (schema-1 manifests are read through :func:`upgrade`)."""
        problems = validate_manifest(obj)
        if problems:
            raise BundleError(f"{where} has an invalid manifest: {'; '.join(problems)}.")
        m = upgrade(obj)
        outputs = m["outputs"]
        protos = m["prototypes"]
        quant = m["quantization"]
        pruning = m["pruning"]
        src = m["source"]
        ref = m["reference_windows"]
        return cls(
            model_id=m["model_id"], task=m["task"], labels=tuple(m["labels"]),
            logits=Logits(outputs["logits"]["kind"], int(outputs["logits"]["size"]),
                          outputs["logits"]["meaning"]),
            embedding=Embedding(int(outputs["embedding"]["size"]), outputs["embedding"]["meaning"]),
            normalization=Normalization(m["normalization"]["mode"],
                                        m["normalization"].get("origin", "")),
            window_s=float(m["window_s"]), hop_s=float(m["hop_s"]),
            min_samples=int(m["min_samples"]), silence_dbfs=float(m["silence_dbfs"]),
            graphs=tuple(Graph(g["file"], g["role"], int(g["opset"]), _frozen(g["inputs"]),
                               _frozen(g["outputs"])) for g in m["graphs"]),
            reference_windows=ReferenceWindows(ref["file"], int(ref["count"]), float(ref["atol"])),
            quantization=Quantization(
                quant["precision"], quant["method"], quant.get("preset"),
                _frozen({k: v for k, v in quant.items()
                         if k not in ("precision", "method", "preset")})),
            source=Source(src["model"], src["kind"], src.get("revision"), src.get("commit"),
                          src["architecture"], src["family"],
                          tuple(WeightHash(w["file"], w["sha256"]) for w in src["weights"])),
            created_utc=m["created_utc"], sample_rate_hz=int(m["sample_rate_hz"]),
            operating_points=MappingProxyType({k: float(v) for k, v in
                                               m["operating_points"].items()}),
            operating_point_origins=MappingProxyType({
                k: OperatingPointOrigin.from_json(v)
                for k, v in (m.get("operating_point_origins") or {}).items()}),
            default_operating_point=m["default_operating_point"],
            positive_label=m["positive_label"],
            prototypes=None if protos is None else Prototypes(
                tuple(protos["labels"]), tuple(tuple(float(x) for x in row)
                                               for row in protos["vectors"])),
            engines=tuple(EngineRecord.from_json(e)[0] for e in m["engines"]),
            pruning=None if pruning is None else Pruning(int(pruning["layers_kept"]),
                                                         int(pruning["layers_in_checkpoint"])),
            distillation=_frozen(m.get("distillation")),
            parity=_frozen(m["parity"]), tools=_frozen(m["tools"]),
            vad=_vad_gate(m.get("vad")), denoise=bool(m.get("denoise", False)),
            files=MappingProxyType({name: FileEntry(e["sha256"], int(e["bytes"]))
                                    for name, e in m["files"].items()}),
        )

    def to_json(self) -> dict:
        """The current schema's JSON object (strict JSON: no NaN or Infinity)."""
        doc = {
            "schema_version": SCHEMA_VERSION, "format": FORMAT,
            "model_id": self.model_id, "task": self.task, "labels": list(self.labels),
            "outputs": {
                "logits": {"kind": self.logits.kind, "size": self.logits.size,
                           "meaning": self.logits.meaning},
                "embedding": {"size": self.embedding.size, "meaning": self.embedding.meaning},
            },
            "sample_rate_hz": self.sample_rate_hz,
            "normalization": {"mode": self.normalization.mode,
                              "origin": self.normalization.origin},
            "window_s": self.window_s, "hop_s": self.hop_s, "min_samples": self.min_samples,
            "silence_dbfs": self.silence_dbfs,
            "operating_points": dict(self.operating_points),
            "operating_point_origins": {k: v.to_json() for k, v in
                                        sorted(self.operating_point_origins.items())},
            "default_operating_point": self.default_operating_point,
            "positive_label": self.positive_label,
            "prototypes": None if self.prototypes is None else {
                "labels": list(self.prototypes.labels),
                "vectors": [list(row) for row in self.prototypes.vectors]},
            "graphs": [{"file": g.file, "role": g.role, "opset": g.opset,
                        "inputs": _thawed(g.inputs), "outputs": _thawed(g.outputs)}
                       for g in self.graphs],
            "engines": [e.to_json() for e in self.engines],
            "quantization": {"precision": self.quantization.precision,
                             "method": self.quantization.method,
                             "preset": self.quantization.preset,
                             **_thawed(self.quantization.details)},
            "pruning": None if self.pruning is None else {
                "layers_kept": self.pruning.layers_kept,
                "layers_in_checkpoint": self.pruning.layers_in_checkpoint},
            "distillation": _thawed(self.distillation),
            "source": {"model": self.source.model, "kind": self.source.kind,
                       "revision": self.source.revision, "commit": self.source.commit,
                       "architecture": self.source.architecture, "family": self.source.family,
                       "weights": [{"file": w.file, "sha256": w.sha256}
                                   for w in self.source.weights]},
            "parity": _thawed(self.parity),
            "vad": {"enabled": self.vad.enabled, "min_speech": self.vad.min_speech},
            "denoise": self.denoise,
            "reference_windows": {"file": self.reference_windows.file,
                                  "count": self.reference_windows.count,
                                  "atol": self.reference_windows.atol},
            "tools": _thawed(self.tools),
            "created_utc": self.created_utc,
            "files": {name: {"sha256": e.sha256, "bytes": e.bytes}
                      for name, e in sorted(self.files.items())},
        }
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _vad_gate(obj: Any) -> VoiceActivityGate:
    if obj is None:
        return VoiceActivityGate()
    min_speech = obj.get("min_speech")
    return VoiceActivityGate(bool(obj.get("enabled", False)),
                             None if min_speech is None else float(min_speech))


# --------------------------------------------------------------------------------------------
# The loaded bundle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A validated bundle on disk: its directory and its :class:`Manifest`."""

    path: Path
    manifest: Manifest = field(hash=False, repr=False)

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def window_s(self) -> float:
        return self.manifest.window_s

    @property
    def hop_s(self) -> float:
        return self.manifest.hop_s

    @property
    def min_samples(self) -> int:
        return self.manifest.min_samples

    @property
    def silence_dbfs(self) -> float:
        return self.manifest.silence_dbfs

    @property
    def operating_points(self) -> dict[str, float]:
        return dict(self.manifest.operating_points)

    @property
    def default_operating_point(self) -> str | None:
        return self.manifest.default_operating_point

    @property
    def positive_label(self) -> str | None:
        return self.manifest.positive_label

    @property
    def prototypes(self) -> np.ndarray | None:
        """Prototype vectors, float32 ``[n_prototypes, dim]``, or None."""
        protos = self.manifest.prototypes
        return None if protos is None else protos.array()

    @property
    def gate(self) -> FidelityGate:
        """The fidelity gate's verdict at export (see :class:`FidelityGate`)."""
        return self.manifest.gate

    def graph_path(self, role: str = "full") -> Path:
        """The ONNX file of the graph with ``role``; BundleError when the bundle has none."""
        graph = self.manifest.graph(role)
        if graph is None:
            raise BundleError(f"model bundle {self.path} has no graph with role {role!r}.")
        return self.path / graph.file

