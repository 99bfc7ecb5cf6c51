"""Evaluation of models on the user's labelled audio (``edgeser eval``): what quantization,
distillation, denoising and real rooms do to them, in numbers and pictures.

::

    from edgeser.evaluation import EvalRequest, evaluate, write_report
    evaluation = evaluate(EvalRequest(models=("bundles/msp-dim", "bundles/msp-dim-s4"),
                                      labels="clips.csv", perturb=("noise:20,10,0", "phone")))
    write_report("report", evaluation)

Modules, one concern each: :mod:`~.labels` (the CSV), :mod:`~.perturb` (noise, rooms, phone
lines), :mod:`~.runner` (detection over every condition), :mod:`~.metrics` (CCC, accuracy, F1,
decisions, events), :mod:`~.scores` (the report's numbers), :mod:`~.thresholds` and
:mod:`~.operating` (laughter thresholds and operating points), :mod:`~.models` (which model is
compared with which), :mod:`~.bias` (neutral synthetic speech), :mod:`~.embeddings` (export and
2-D projection), :mod:`~.report` (markdown + JSON, written atomically) and :mod:`~.plots`
(matplotlib, the ``plots`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgeser.errors import EvaluationError
from edgeser.evaluation.report import Evaluation, write_report

__all__ = ["EvalRequest", "Evaluation", "evaluate", "write_report"]

DENOISE_CHOICES = {"raw": ("raw",), "denoised": ("denoised",), "both": ("raw", "denoised")}


@dataclass(frozen=True)
class EvalRequest:
    """What ``edgeser eval`` was asked (see ``edgeser eval --help`` for each field)."""

    models: tuple[str, ...]
    labels: str
    reference: str | None = None
    perturb: tuple[str, ...] = ()
    noise_files: tuple[str, ...] = ()
    denoise: str = "raw"
    thresholds: str | None = None
    operating_points: str | None = None  # NAME=RULE,...
    class_column: str = "class"
    stability: bool = True
    bias: bool = True
    embeddings: bool = False
    seed: int = 0
    max_files: int | None = None
    threads: int | None = None
    extra: dict = field(default_factory=dict, hash=False)  # DetectionOptions fields


def evaluate(request: EvalRequest, *, progress=None,
             warn: Callable[[str], None] = lambda message: None) -> Evaluation:
    """Run the request; write the operating points it asks for. Raises EdgeserError (one
    sentence) for what stops the whole run; file problems are collected in the report."""
    import edgeser
    from edgeser import bundle as bundles
    from edgeser.detector import DetectionOptions, Detector
    from edgeser.evaluation import labels as labels_mod
    from edgeser.evaluation import models as models_mod
    from edgeser.evaluation import operating, perturb, scores, thresholds
    from edgeser.evaluation.report import projections
    from edgeser.evaluation.runner import Settings, run

    if request.denoise not in DENOISE_CHOICES:
        raise EvaluationError(f"--denoise {request.denoise}: use raw, denoised or both.")
    paths = list(dict.fromkeys(request.models))
    reference = None
    if request.reference is not None:
        if request.reference not in paths:
            paths.append(request.reference)
        reference = paths.index(request.reference)
    loaded = [bundles.load(p) for p in paths]
    infos = models_mod.describe(loaded, reference)
    task = infos[0].task
    rules = thresholds.parse_rules(request.operating_points) if request.operating_points else ()
    if rules and task != "laughter":
        raise EvaluationError("--write-operating-points applies to laughter models.")
    grid = thresholds.parse_grid(request.thresholds or thresholds.DEFAULT_GRID)
    noise_files = [Path(p) for p in request.noise_files]
    conditions = perturb.parse_perturbations(request.perturb, noise_files)
    dims = tuple(dict.fromkeys(d for m in infos for d in m.labels)) \
        if task == "emotion-dimensional" else ()
    class_column = request.class_column if task != "laughter" else None
    label_set = labels_mod.read_labels(request.labels, dims, class_column)
    for bad in label_set.bad_rows:
        warn(f"{label_set.path}: {bad}; left out.")
    if task == "laughter" and not label_set.has_segments:
        raise EvaluationError(f"labels file {label_set.path} has no start,end columns, which "
                              "laughter models are scored against.")
    if not label_set.files:
        raise EvaluationError(f"labels file {label_set.path} lists no usable file.")
    options = DetectionOptions(**{"threads": request.threads, "denoise": False, **request.extra})
    detectors = {info.name: Detector(b, options) for info, b in zip(infos, loaded)}
    settings = Settings(tuple(conditions), DENOISE_CHOICES[request.denoise], grid,
                        request.stability, request.bias, request.embeddings, request.seed,
                        request.max_files)
    data = run(label_set, infos, detectors, settings, progress=progress, warn=warn)
    document = scores.build(data)
    document["tool"] = f"edgeser {edgeser.__version__}"
    document["operating_points"] = []
    for info in infos:
        if rules:
            document["operating_points"] += operating.choose_and_write(
                info, data, rules, f"edgeser eval {edgeser.__version__}")
    return Evaluation(document, projections(data) if request.embeddings else {})
