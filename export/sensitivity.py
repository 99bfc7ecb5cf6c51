"""Mixed precision chosen by measured sensitivity.

A static INT8 recipe is applied; if its outputs on the calibration windows fall short of a
target (stricter than the gate, so the held-out evaluation has margin), each group of layers is
tried in float in turn, ranked by how much that recovers, and groups are kept float in that
order until the target is met (at worst every group, which is the FP32 graph, so the search
always ends faithful). Sensitivity is measured on calibration audio only; the gate later judges
the result on the disjoint evaluation audio.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeser.export import parity
from edgeser.export.quantize import Recipe, matching_nodes, quantize

# Layer groups of wav2vec2 / HuBERT graphs as exported (node names carry module paths).
FEATURE_ENCODER = r"/feature_extractor/"
FEATURE_PROJECTION = r"/feature_projection/"
LAYER = r"/encoder/layers\.{}/"
TARGET_CCC = 0.995
TARGET_AGREEMENT = 0.99


@dataclass(frozen=True)
class Search:
    """The outcome: recipe used, groups kept float, and what each measurement gave."""

    recipe: Recipe
    float_groups: tuple
    baseline_score: float
    final_score: float
    sensitivity: dict  # group -> score with that group in float
    met_target: bool


def layer_groups(fp32: Path, ops: tuple) -> dict:
    """name -> regex for every group with quantizable nodes, in graph order."""
    groups = {"feature_encoder": FEATURE_ENCODER, "feature_projection": FEATURE_PROJECTION}
    layers = sorted({int(m.group(1)) for name in matching_nodes(fp32, (r"/encoder/layers\.\d+/",), ops)
                     for m in [re.search(r"/encoder/layers\.(\d+)/", name)] if m})
    groups.update({f"layer_{i}": LAYER.format(i) for i in layers})
    return {g: p for g, p in groups.items() if matching_nodes(fp32, (p,), ops)}


def score(metrics: dict) -> float:
    """One number for the gate's criteria: the worst CCC, or top-1 agreement for classes."""
    if "outputs" in metrics:
        return min(m["ccc"] for m in metrics["outputs"].values())
    return metrics["top1_agreement"]


def search(fp32: Path, out: Path, recipe: Recipe, calibration_windows, labels: list,
           logits_kind: str, forward_of, *, max_float_fraction: float = 1.0, progress=None) -> Search:
    """Quantize ``fp32`` into ``out`` with as few layer groups in float as meet the target.

    ``forward_of(path)`` returns a batch forward for a graph (as parity.run expects)."""
    target = TARGET_AGREEMENT if logits_kind == "class-logits" else TARGET_CCC
    reference = parity.run(forward_of(fp32), calibration_windows)
    groups = layer_groups(fp32, recipe.ops)
    with tempfile.TemporaryDirectory(prefix="edgeser-mixed-") as scratch:
        cache = Path(scratch) / "ranges.json"
        trial = Path(scratch) / "trial.onnx"

        def measure(candidate: Recipe) -> float:
            quantize(fp32, trial, candidate, calibration_windows, calibration_cache=cache)
            got = parity.run(forward_of(trial), calibration_windows)
            if progress is not None:
                progress.advance()
            return score(parity.compare(reference, got, labels, logits_kind))

        baseline = measure(recipe)
        chosen, sensitivity, current = [], {}, baseline
        if baseline < target:
            sensitivity = {g: measure(recipe.keeping_float(p)) for g, p in groups.items()}
            for group in sorted(sensitivity, key=sensitivity.get, reverse=True):
                if current >= target or len(chosen) >= max_float_fraction * len(groups):
                    break
                chosen.append(group)
                current = measure(recipe.keeping_float(*(groups[g] for g in chosen)))
        final = recipe.keeping_float(*(groups[g] for g in chosen)) if chosen else recipe
        quantize(fp32, out, final, calibration_windows, calibration_cache=cache)
    return Search(final, tuple(chosen), baseline, current, sensitivity, current >= target)
