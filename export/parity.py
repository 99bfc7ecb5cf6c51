"""Parity between a reference model and a candidate, defined once and used by every compression.

Reference: the PyTorch FP32 model on the same normalised windows. Metrics per output in label
order: CCC and max abs error for regression and similarity outputs; top-1 agreement and max
probability error for classes; plus max abs error of the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# The FP32 ONNX graph must reproduce PyTorch to this max abs error on every output.
FP32_ATOL = 1e-4


def ccc(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (population moments)."""
    x = np.asarray(reference, np.float64)
    y = np.asarray(candidate, np.float64)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    denominator = vx + vy + (mx - my) ** 2
    if denominator == 0.0:
        return 1.0  # both constant and equal
    return float(2.0 * np.mean((x - mx) * (y - my)) / denominator)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Outputs:
    """Stacked outputs over the evaluation windows."""

    logits: np.ndarray  # [windows, n_outputs]
    embedding: np.ndarray  # [windows, hidden]


def run(forward: Callable, windows) -> Outputs:
    """Evaluate ``forward(batch [n, samples]) -> (logits, embedding)`` on every window, batching
    windows of equal length; results come back in window order."""
    logits: list = [None] * len(windows)
    embedding: list = [None] * len(windows)
    by_length: dict = {}
    for i, w in enumerate(windows):
        by_length.setdefault(len(w), []).append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), 8):
            chunk = indices[start : start + 8]
            out_logits, out_embedding = forward(np.stack([windows[i] for i in chunk]))
            for j, i in enumerate(chunk):
                logits[i], embedding[i] = out_logits[j], out_embedding[j]
    return Outputs(np.stack(logits).astype(np.float64), np.stack(embedding).astype(np.float64))


def compare(reference: Outputs, candidate: Outputs, labels: list, logits_kind: str) -> dict:
    """The parity metrics as stored in the manifest."""
    metrics: dict = {
        "windows": int(reference.logits.shape[0]),
        "logits_max_abs_error": float(np.max(np.abs(reference.logits - candidate.logits))),
        "embedding_max_abs_error": float(np.max(np.abs(reference.embedding - candidate.embedding))),
    }
    if logits_kind == "class-logits":
        p_ref, p_cand = softmax(reference.logits), softmax(candidate.logits)
        metrics["top1_agreement"] = float(np.mean(p_ref.argmax(-1) == p_cand.argmax(-1)))
        metrics["max_prob_error"] = float(np.max(np.abs(p_ref - p_cand)))
    else:
        metrics["outputs"] = {
            label: {
                "ccc": ccc(reference.logits[:, k], candidate.logits[:, k]),
                "max_abs_error": float(np.max(np.abs(reference.logits[:, k] - candidate.logits[:, k]))),
            }
            for k, label in enumerate(labels)
        }
    return metrics


# The fidelity gate every compressed bundle must pass (unless --allow-degraded).
CCC_MIN = 0.99
AGREEMENT_MIN = 0.98


def gate_failures(metrics: dict) -> list:
    """What falls short of the gate, one phrase each (empty when it passes)."""
    failures = [f"CCC {label} {m['ccc']:.4f} < {CCC_MIN}"
                for label, m in metrics.get("outputs", {}).items() if m["ccc"] < CCC_MIN]
    agreement = metrics.get("top1_agreement")
    if agreement is not None and agreement < AGREEMENT_MIN:
        failures.append(f"top-1 agreement {100 * agreement:.1f}% < {100 * AGREEMENT_MIN:.0f}%")
    return failures
