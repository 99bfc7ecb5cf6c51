"""The models of an evaluation, and which one each compressed model is compared against.

A bundle records where it came from: the checkpoint's weight hashes (``source.weights``) and,
for a distilled student, its teacher's (``distillation.teacher.weights``). Among the models of
one run, a student's reference is the model exported from its teacher, and a quantized (INT8,
FP16) model's reference is the FP32 export of the same checkpoint. ``--reference-model`` names
the reference of every other model instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edgeser import bundle as bundles
from edgeser.errors import EvaluationError


@dataclass(frozen=True)
class ModelInfo:
    name: str  # short and unique within the run (the bundle folder's name)
    bundle: str
    model_id: str
    task: str
    labels: tuple[str, ...]
    precision: str
    quantization: str
    distilled_from: str | None  # the teacher checkpoint, for a student
    window_s: float
    hop_s: float
    reference: str | None = None  # the name of the model it is compared against
    reference_why: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "bundle": self.bundle, "model_id": self.model_id,
                "task": self.task, "labels": list(self.labels), "precision": self.precision,
                "quantization": self.quantization, "distilled_from": self.distilled_from,
                "window_s": self.window_s, "hop_s": self.hop_s, "reference": self.reference,
                "reference_why": self.reference_why}


def _weights(entries) -> frozenset:
    return frozenset((w.file, w.sha256) for w in entries)


def _teacher_weights(b: bundles.Bundle) -> frozenset:
    distillation = b.manifest.distillation
    teacher = distillation.get("teacher") if distillation else None
    weights = teacher.get("weights") if teacher else None
    return frozenset((w["file"], w["sha256"]) for w in weights or ())


def _teacher_name(b: bundles.Bundle) -> str | None:
    distillation = b.manifest.distillation
    teacher = distillation.get("teacher") if distillation else None
    return teacher.get("model") if teacher else None


def unique_names(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for path in paths:
        base = path.name or str(path)
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def describe(loaded: Sequence[bundles.Bundle], reference: int | None = None) -> list[ModelInfo]:
    """One :class:`ModelInfo` per bundle, with its reference resolved; ``reference`` is the
    index of the ``--reference-model`` bundle among them."""
    names = unique_names([b.path for b in loaded])
    out = []
    for i, b in enumerate(loaded):
        m = b.manifest
        ref, why = _reference(loaded, names, i, reference)
        out.append(ModelInfo(names[i], str(b.path), m.model_id, m.task, m.labels,
                             m.quantization.precision, m.quantization.describe(),
                             _teacher_name(b), m.window_s, m.hop_s, ref, why))
    tasks = {info.task for info in out}
    if len(tasks) > 1:
        raise EvaluationError(f"the models are for different tasks ({', '.join(sorted(tasks))}); "
                              "evaluate one task per run.")
    return out


def _reference(loaded: Sequence[bundles.Bundle], names: list[str], i: int,
               given: int | None) -> tuple[str | None, str | None]:
    if given is not None:
        return (None, None) if i == given else (names[given], "given with --reference-model")
    me = loaded[i]
    teacher = _teacher_weights(me)
    others = [j for j in range(len(loaded)) if j != i]
    # FP32 candidates first, so a student of an FP32 teacher is compared with FP32.
    others.sort(key=lambda j: loaded[j].manifest.quantization.precision != "fp32")
    if teacher:
        for j in others:
            if loaded[j].manifest.distillation is None \
                    and _weights(loaded[j].manifest.source.weights) == teacher:
                return names[j], "its distillation teacher"
    mine = _weights(me.manifest.source.weights)
    if me.manifest.quantization.precision != "fp32" and mine:
        for j in others:
            other = loaded[j].manifest
            if other.quantization.precision == "fp32" and other.distillation is None \
                    and _weights(other.source.weights) == mine:
                return names[j], "the FP32 export of its checkpoint"
    return None, None
