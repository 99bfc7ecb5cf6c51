"""``edgeser export``: checkpoint -> verified FP32 ONNX bundle.

resolve source -> read weights safely -> build the family's module and load every weight ->
evaluation windows -> PyTorch reference outputs -> ONNX export -> parity gate -> reference
windows -> bundle written atomically (nothing at the destination unless every step passed).
"""

from __future__ import annotations

import datetime
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeser import __version__, bundle, contract, targets, vad
from edgeser import frontend as fe
from edgeser.errors import ExportError
from edgeser.export import (checkpoint, eval_audio, families, onnx_export, parity, preprocessing,
                            prototypes, quantize, recipe_search, sensitivity)
from edgeser.export import tensorrt as engines
from edgeser.export import source as sources
from edgeser.export import weights
from edgeser.export import distill_record

# Emotion: utterance-length windows (the models were trained on utterances of a few seconds);
# a 1 s hop gives a value per second. Laughter: bouts last 0.5-2 s, so 1 s windows with a
# 0.2 s hop place event edges to a fifth of a second. Both are whole model frames (320 samples),
# as every stored window and hop is (0.25 s would be 12.5 frames).
WINDOWS_S = {"laughter": (1.0, 0.2)}
DEFAULT_WINDOW_S = (3.0, 1.0)
# Below this RMS level (raw audio) a window is reported as silent instead of scored.
SILENCE_DBFS = -55.0
DEFAULT_OPERATING_POINTS = {"default": 0.5}
# How closely a device must reproduce the stored reference outputs (edgeser verify): FP32
# kernels agree to rounding; INT8 and FP16 kernels differ between CPUs in their float parts.
REFERENCE_WINDOWS_ATOL = {"none": parity.FP32_ATOL, "int8": 1e-3, "fp16": 1e-2}
QUANTIZE = tuple(REFERENCE_WINDOWS_ATOL)
CALIBRATION_WINDOWS = 64


@dataclass(frozen=True)
class ExportOptions:
    model: str
    revision: str | None = None
    out: Path | None = None
    task: str | None = None
    layers: int | None = None
    quantize: str = "int8"
    recipe: str | None = None  # a preset of edgeser.export.quantize.RECIPES
    calibration: Path | None = None
    calibration_windows: int = CALIBRATION_WINDOWS
    allow_degraded: bool = False
    operating_points: tuple = ()  # ((name, threshold), ...)
    prototypes: Path | None = None
    eval_audio: Path | None = None
    eval_windows: int = 200
    window_s: float | None = None
    hop_s: float | None = None
    overwrite: bool = False
    engine: str | None = None  # "tensorrt": also build this device's engine
    # Without --recipe, INT8 candidates are tried fastest first for this target (auto: timed here).
    target: str = targets.AUTO
    # Defaults the bundle gives detect and serve: voice activity gating (min_speech None: the
    # task's default, edgeser.vad.default_min_speech) and noise suppression.
    vad: bool = False
    min_speech: float | None = None
    denoise: bool = False


@dataclass(frozen=True)
class ExportResult:
    bundle: Path
    model_id: str
    task: str
    family: str
    labels: tuple
    file_bytes: dict
    parity: dict
    eval_audio: str
    quantization: dict


class Progress:
    """What the pipeline reports; the CLI draws it, the API default is silent."""

    def start(self, description: str, total: int | None = None) -> None:
        """A new step begins (``total`` units when it can be counted)."""

    def advance(self, units: int = 1) -> None:
        """Units of the current step are done."""


@dataclass
class _Context:
    options: ExportOptions
    progress: Progress
    label: str = ""
    tools: dict = field(default_factory=dict)


def _check_options(o: ExportOptions) -> None:
    if o.quantize not in QUANTIZE:
        raise ExportError(f"--quantize {o.quantize} is not one of {', '.join(QUANTIZE)}.")
    if o.recipe is not None and o.recipe not in quantize.RECIPES:
        raise ExportError(f"unknown recipe {o.recipe!r}; choose one of {', '.join(quantize.RECIPES)}.")
    if o.task is not None and o.task not in contract.TASKS:
        raise ExportError(f"unknown task {o.task!r}; choose one of {', '.join(contract.TASKS)}.")
    for name, threshold in o.operating_points:
        if not 0.0 < threshold < 1.0:
            raise ExportError(f"operating point {name}={threshold} must be a threshold between 0 and 1.")
    if o.eval_windows < 1:
        raise ExportError("--eval-windows must be at least 1.")
    if o.min_speech is not None and not 0.0 <= o.min_speech <= 1.0:
        raise ExportError(f"--min-speech {o.min_speech} must be a fraction from 0 to 1.")
    targets.check(o.target)
    if o.engine not in (None, "tensorrt"):
        raise ExportError(f"--engine {o.engine} is not available; the engine is tensorrt.")
    # TensorRT has no blockwise or dynamic INT8: without --recipe an engine export uses the
    # static preset; an explicit non-static recipe is a contradiction.
    if (o.engine and o.quantize == "int8" and o.recipe is not None
            and quantize.RECIPES[o.recipe]().method != "static-qdq"):
        raise ExportError(f"--engine tensorrt needs a static INT8 recipe; {o.recipe} is not one.")


# What each task's logits must be; a --task that contradicts the checkpoint's head is refused.
_TASK_LOGITS = {"emotion-dimensional": "regression", "emotion-categorical": "class-logits",
                "laughter": "class-logits", "emotion-prototypes": "similarity"}


def _check_task(built, label: str) -> None:
    wanted = _TASK_LOGITS[built.task]
    if built.logits_kind != wanted:
        raise ExportError(
            f"{label}: task {built.task} needs {wanted} outputs, but this checkpoint's head "
            f"gives {built.logits_kind}."
        )


def _laughter_fields(built, points: tuple) -> dict:
    if built.logits_kind != "class-logits" or len(built.labels) != 2:
        raise ExportError(
            f"laughter needs a two-class classifier; this checkpoint has {len(built.labels)} "
            f"{built.logits_kind} outputs."
        )
    positive = next((label for label in built.labels if "laugh" in label.lower()), built.labels[1])
    operating = dict(DEFAULT_OPERATING_POINTS)
    operating.update(dict(points))
    return {"operating_points": operating, "default_operating_point": "default",
            "positive_label": positive}


def _torch_forward(module):
    import torch

    def forward(batch: np.ndarray):
        with torch.inference_mode():
            logits, embedding = module(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        return logits.numpy(), embedding.numpy()

    return forward


def _onnx_forward(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(batch: np.ndarray):
        logits, embedding = session.run(list(contract.OUTPUT_NAMES), {
            contract.INPUT_NAME: np.ascontiguousarray(batch, np.float32)})
        return logits, embedding

    return forward


def _counting(forward, progress: Progress):
    def wrapped(batch):
        result = forward(batch)
        progress.advance(len(batch))
        return result

    return wrapped


def _reference_windows(eval_set) -> list:
    """A full window of evaluation audio, a one-second excerpt, and one second of silence."""
    first = eval_set.windows[0]
    later = eval_set.windows[len(eval_set) // 2]
    second = contract.SAMPLE_RATE_HZ
    return [first, later[: min(len(later), second)], np.zeros(second, np.float32)]


def _tool_versions() -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"edgeser": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}


def _calibration(options, window_s, hop_s, prepare, progress):
    progress.start("preparing calibration audio")
    if options.calibration is not None:
        calibration = eval_audio.from_directory(options.calibration, window_s, hop_s,
                                                options.calibration_windows, prepare)
    else:
        calibration = eval_audio.default(window_s, hop_s, options.calibration_windows,
                                         purpose="calibration", prepare=prepare)
    return calibration.full_length()


def _compress(options, fp32_graph, graph, eval_set, reference, labels, logits_kind,
              window_s, hop_s, prepare, label, progress, scratch):
    """Quantize the FP32 graph into ``graph``, measure parity against PyTorch FP32 and apply
    the gate; returns (the manifest's Quantization, metrics). The preset recorded is the one
    that made the graph (``--recipe`` reproduces the bundle). Without ``--recipe``, INT8
    candidates are tried fastest first for ``--target`` and every try is recorded."""

    def evaluate(path, name):
        progress.start(f"{name} parity", total=len(eval_set))
        candidate = parity.run(_counting(_onnx_forward(path), progress), eval_set.windows)
        found = parity.compare(reference, candidate, labels, logits_kind)
        return found, parity.gate_failures(found)

    preset = None
    selection = None
    if options.quantize == "fp16":
        recipe = quantize.Recipe.fp16()
    else:
        preset = options.recipe or quantize.DEFAULT_RECIPE
        recipe = quantize.RECIPES[preset]()
        if options.engine:
            recipe = engines.engine_recipe(recipe)  # TensorRT needs symmetric activations
    searching = options.quantize == "int8" and options.recipe is None and not options.engine
    calibration = None
    if searching or recipe.needs_calibration:
        calibration = _calibration(options, window_s, hop_s, prepare, progress)
    mixed = None
    if searching:
        selection = recipe_search.search(
            fp32_graph, graph, options.target, calibration.windows, evaluate,
            max(eval_set.windows, key=len), Path(scratch), progress,
            allow_degraded=options.allow_degraded)
        recipe, preset, kept = selection.recipe, selection.chosen, list(selection.kept)
        metrics = selection.chosen_metrics
        failures = parity.gate_failures(metrics)
    else:
        if preset == "static-mixed":
            progress.start("choosing layers to keep float (sensitivity)")
            mixed = sensitivity.search(fp32_graph, graph, recipe, calibration.windows, labels,
                                       logits_kind, _onnx_forward, progress=progress)
            recipe = mixed.recipe
            kept = quantize.matching_nodes(fp32_graph, recipe.float_nodes, recipe.ops)
        else:
            progress.start(f"quantizing ({recipe.name})")
            kept = quantize.quantize(fp32_graph, graph, recipe,
                                     calibration.windows if calibration else ())
        metrics, failures = evaluate(graph, recipe.name)
    metrics["candidate"] = f"onnxruntime-cpu-{options.quantize}"
    metrics["gate"] = {"ccc_min": parity.CCC_MIN, "agreement_min": parity.AGREEMENT_MIN,
                       "passed": not failures, "failures": failures,
                       "allowed_degraded": bool(failures and options.allow_degraded)}
    if failures and not options.allow_degraded:
        raise ExportError(
            f"{label}: the {options.quantize} graph ({recipe.name}) fails the fidelity gate "
            f"({'; '.join(failures)}); nothing was written (--allow-degraded writes it anyway)."
        )
    calibration_record = None
    if calibration is not None and recipe.needs_calibration:
        calibration_record = {"audio": calibration.description, "windows": len(calibration)}
    record = recipe.manifest(calibration_record, kept)
    weights = record.pop("weights")
    if selection is not None:
        record["selection"] = selection.record()
    if mixed is not None:
        record["mixed_precision"] = {
            "float_groups": list(mixed.float_groups), "target": sensitivity.TARGET_CCC
            if logits_kind != "class-logits" else sensitivity.TARGET_AGREEMENT,
            "calibration_score_all_int8": mixed.baseline_score,
            "calibration_score": mixed.final_score, "met_target": mixed.met_target,
            "sensitivity": mixed.sensitivity}
    method = record.pop("method")
    return bundle.Quantization(weights, method, preset, record), metrics


def export_model(options: ExportOptions, progress: Progress | None = None) -> ExportResult:
    """Export a checkpoint to a verified bundle; raises ExportError (one sentence) on failure."""
    progress = progress or Progress()
    _check_options(options)
    if options.engine:  # before the long steps: no TensorRT or GPU fails in seconds
        engines.check_available()

    progress.start("resolving the checkpoint")
    src = sources.resolve(options.model, options.revision)
    label = options.model
    progress.start("reading weights")
    ckpt = checkpoint.read(src.directory, label)
    # Every window the export feeds the model (evaluation, calibration, prototypes, reference)
    # is prepared as the checkpoint's feature extractor would, and as the runtime will.
    prep = preprocessing.read(src.directory, label)
    layers_in_checkpoint = int(ckpt.config.get("num_hidden_layers", 0))
    family, built = families.build(ckpt.config, label, task=options.task, layers=options.layers,
                                   state_dict=ckpt.state_dict)
    _check_task(built, label)
    weights.load(built, ckpt.state_dict, label, layers_kept=options.layers)
    # A distilled student's record, checked again: never called faithful on its word alone.
    distillation = distill_record.for_manifest(ckpt.config, ckpt.weights, label, options.layers)
    task = built.task
    if options.prototypes is not None and task != "emotion-prototypes":
        raise ExportError(f"--prototypes applies to embedding models; {label} is a {task} model.")

    window_s, hop_s = WINDOWS_S.get(task, DEFAULT_WINDOW_S)
    window_s, hop_s = options.window_s or window_s, options.hop_s or hop_s
    # Stored as the whole-frame lengths the runtime will use, so the manifest says what runs.
    window_s = fe.seconds_to_samples(window_s, "window") / fe.TARGET_RATE_HZ
    hop_s = fe.seconds_to_samples(hop_s, "hop") / fe.TARGET_RATE_HZ
    extra: dict = {"operating_points": {}, "default_operating_point": None,
                   "positive_label": None, "prototypes": None}
    if task == "laughter":
        extra.update(_laughter_fields(built, options.operating_points))
    elif options.operating_points:
        raise ExportError("--operating-point applies to laughter models only.")

    labels = list(built.labels)
    if task == "emotion-prototypes":
        if options.prototypes is None:
            raise ExportError(f"{label} is an embedding model; pass --prototypes CSV of labelled clips.")
        import torch

        progress.start("computing class prototypes")

        def embed(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return built.module.embed(torch.from_numpy(batch.astype(np.float32))).numpy()

        labels, vectors = prototypes.compute(options.prototypes, embed, window_s, hop_s,
                                             prep.window)
        built.module.prototypes = torch.from_numpy(vectors)
        extra["prototypes"] = {"labels": labels, "vectors": vectors.tolist()}

    progress.start("preparing evaluation audio")
    if options.eval_audio is not None:
        eval_set = eval_audio.from_directory(options.eval_audio, window_s, hop_s,
                                             options.eval_windows, prep.window)
    else:
        eval_set = eval_audio.default(window_s, hop_s, options.eval_windows, prepare=prep.window)

    progress.start("PyTorch FP32 reference", total=len(eval_set))
    reference = parity.run(_counting(_torch_forward(built.module), progress), eval_set.windows)

    dest = options.out or bundle.default_bundle_dir(src.model_id, src.revision or "local")
    with bundle.stage_bundle(Path(dest), overwrite=options.overwrite) as stage, \
            tempfile.TemporaryDirectory(prefix="edgeser-export-") as scratch:
        progress.start("exporting ONNX (opset 17)")
        graph = stage.path / "model.onnx"
        fp32_graph = graph if options.quantize == "none" else Path(scratch) / "fp32.onnx"
        onnx_export.export(built.module, fp32_graph)

        progress.start("ONNX Runtime FP32 parity", total=len(eval_set))
        candidate = parity.run(_counting(_onnx_forward(fp32_graph), progress), eval_set.windows)
        metrics = parity.compare(reference, candidate, labels, built.logits_kind)
        worst = max(metrics["logits_max_abs_error"], metrics["embedding_max_abs_error"])
        if worst > parity.FP32_ATOL:
            raise ExportError(
                f"{label}: the FP32 ONNX graph differs from PyTorch by {worst:.2e} (max abs), "
                f"more than {parity.FP32_ATOL:g}; nothing was written."
            )
        quantization = bundle.Quantization("fp32", "none", None, {"recipe": "fp32"})
        if options.quantize != "none":
            quantization, metrics = _compress(options, fp32_graph, graph, eval_set, reference,
                                               labels, built.logits_kind, window_s, hop_s,
                                               prep.window, label, progress, scratch)
        onnx_forward = _onnx_forward(graph)
        progress.start("writing the bundle")
        ref_windows = _reference_windows(eval_set)
        arrays = {}
        for i, window in enumerate(ref_windows):
            logits, embedding = onnx_forward(window[None, :])
            arrays.update({f"input_{i}": window[None, :].astype(np.float32),
                           f"logits_{i}": logits, f"embedding_{i}": embedding})
        np.savez(stage.path / "reference.npz", **arrays)
        sample_logits = arrays["logits_0"]
        manifest = bundle.Manifest(
            model_id=src.model_id, task=task, labels=tuple(labels),
            logits=bundle.Logits(built.logits_kind, int(sample_logits.shape[1]),
                                 built.logits_meaning),
            embedding=bundle.Embedding(int(arrays["embedding_0"].shape[1]),
                                       built.embedding_meaning),
            normalization=bundle.Normalization(prep.normalization_mode, prep.origin),
            window_s=window_s, hop_s=hop_s, min_samples=contract.MIN_WINDOW_SAMPLES,
            silence_dbfs=SILENCE_DBFS,
            operating_points=extra["operating_points"],
            default_operating_point=extra["default_operating_point"],
            positive_label=extra["positive_label"],
            prototypes=None if extra["prototypes"] is None else bundle.Prototypes(
                tuple(extra["prototypes"]["labels"]),
                tuple(tuple(row) for row in extra["prototypes"]["vectors"])),
            graphs=(bundle.Graph(
                "model.onnx", "full", contract.OPSET,
                {contract.INPUT_NAME: ["batch", "samples"]},
                {contract.LOGITS_NAME: ["batch", int(sample_logits.shape[1])],
                 contract.EMBEDDING_NAME: ["batch", int(arrays["embedding_0"].shape[1])]}),),
            engines=(),
            quantization=quantization,
            pruning=(bundle.Pruning(options.layers, layers_in_checkpoint)
                     if options.layers is not None else None),
            distillation=distillation,
            source=bundle.Source(
                model=options.model if src.kind == "hub" else str(src.directory),
                kind=src.kind, revision=src.revision, commit=src.commit,
                architecture=", ".join(ckpt.config.get("architectures") or []),
                family=family.name,
                weights=tuple(bundle.WeightHash(w.name, w.sha256) for w in ckpt.weights)),
            parity={"reference": "pytorch-fp32", "candidate": "onnxruntime-cpu-fp32",
                    "eval_audio": eval_set.description, **metrics},
            reference_windows=bundle.ReferenceWindows("reference.npz", len(ref_windows),
                                                      REFERENCE_WINDOWS_ATOL[options.quantize]),
            tools=_tool_versions(),
            vad=bundle.VoiceActivityGate(options.vad, vad.default_min_speech(task)
                                         if options.min_speech is None else options.min_speech),
            denoise=options.denoise,
            created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        written = stage.commit(manifest)
    if options.engine:  # from the written bundle, as `edgeser engine build` builds it
        progress.start("building the TensorRT engine (minutes)")
        engines.build_for_bundle(written.path)
        written = bundle.load(written.path)
    sizes = {name: entry.bytes for name, entry in written.manifest.files.items()}
    return ExportResult(written.path, src.model_id, task, family.name, tuple(labels), sizes,
                        written.manifest.parity, eval_set.description,
                        written.manifest.quantization)
