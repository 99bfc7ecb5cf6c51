"""Held-out fidelity of a student against its teacher, and how much the teacher's outputs move.

Per kind of output (what the bundle gives):
- regression: CCC and max abs error per output;
- classes: CCC and max abs error of each class probability, top-1 agreement, max probability
  error; laughter adds the decisions at the operating point (window precision and recall of the
  student against the teacher's decisions) and the events ``detect`` would report (merge gap
  0.5 s), matched by overlap;
- embedding models: the scores a prototype bundle gives are cosine similarities to class means,
  so the student is judged on cosine similarities to the centroids of the held-out files (CCC),
  and on the cosine between its embedding and the teacher's.

``faithful``: every CCC above is at least ``min_ccc``. The teacher's spread (std per output on
the held-out audio) is reported beside it; an output whose std is below :data:`NEAR_CONSTANT_STD`
(times the output's magnitude when that exceeds 1) barely moves, and agreement on it proves
nothing.
"""

from __future__ import annotations

import math

import numpy as np

from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.events import EventSettings, EventTracker
from edgeser.export import parity
from edgeser.results import WindowResult

NEAR_CONSTANT_STD = 0.01
EVENT_MERGE_GAP_S = 0.5


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _centroid_scores(embedding: np.ndarray, files: np.ndarray) -> np.ndarray:
    unit = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
    centroids = np.stack([unit[files == f].mean(0) for f in np.unique(files)])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return unit @ centroids.T


def teacher_spread(kind: str, labels: list, logits: np.ndarray, embedding: np.ndarray,
                   files: np.ndarray) -> dict:
    """Std (and mean) per output of the teacher on the held-out windows; ``near_constant`` lists
    the outputs that barely move."""
    if kind == "similarity":
        scores = _centroid_scores(embedding, files)
        std = float(scores.std()) if scores.size else 0.0
        near = std < NEAR_CONSTANT_STD
        return {"measure": "cosine similarity to held-out file centroids",
                "outputs": {"prototype-scores": {"std": std, "mean": float(scores.mean())}},
                "near_constant": ["prototype-scores"] if near else []}
    values = parity.softmax(logits) if kind == "class-logits" else logits
    outputs, near = {}, []
    for k, label in enumerate(labels):
        column = values[:, k]
        std, mean = float(column.std()), float(column.mean())
        outputs[label] = {"std": std, "mean": mean}
        if std < NEAR_CONSTANT_STD * max(1.0, abs(mean)):
            near.append(label)
    return {"measure": "class probability" if kind == "class-logits" else "regression value",
            "outputs": outputs, "near_constant": near}


def _events(probabilities: np.ndarray, refs: np.ndarray, threshold: float) -> list:
    """(file, start, stop) of the events detect would report from these windows."""
    events = []
    gap = round(EVENT_MERGE_GAP_S * SAMPLE_RATE_HZ)
    for f in np.unique(refs[:, 0]):
        rows = np.flatnonzero(refs[:, 0] == f)
        rows = rows[np.argsort(refs[rows, 1], kind="stable")]
        tracker = EventTracker(EventSettings("positive", threshold, 0, gap))
        for k, r in enumerate(rows):
            start, length = int(refs[r, 1]), int(refs[r, 2])
            window = WindowResult(k, start, start + length, 0.0, False,
                                  {"positive": float(probabilities[r])})
            events += [(int(f), e.start, e.stop) for e in tracker.add(window)]
        events += [(int(f), e.start, e.stop) for e in tracker.finish()]
    return events


def _overlap_share(a: list, b: list):
    """Share of events in ``a`` that overlap an event of ``b`` in the same file."""
    if not a:
        return None
    hits = sum(1 for f, s, e in a if any(g == f and s < e2 and s2 < e for g, s2, e2 in b))
    return hits / len(a)


def laughter_decisions(teacher_p: np.ndarray, student_p: np.ndarray, refs: np.ndarray,
                       threshold: float) -> dict:
    t, s = teacher_p >= threshold, student_p >= threshold
    precision = float((t & s).sum() / s.sum()) if s.any() else None
    recall = float((t & s).sum() / t.sum()) if t.any() else None
    t_events, s_events = _events(teacher_p, refs, threshold), _events(student_p, refs, threshold)
    return {
        "threshold": threshold,
        "teacher_positive_windows": int(t.sum()), "student_positive_windows": int(s.sum()),
        "window_precision": precision, "window_recall": recall,
        "teacher_events": len(t_events), "student_events": len(s_events),
        "event_precision": _overlap_share(s_events, t_events),
        "event_recall": _overlap_share(t_events, s_events),
        "meaning": "the student's decisions scored against the teacher's at the operating point "
                   "(1.0 = no change)",
    }


def fidelity(kind: str, labels: list, teacher_logits: np.ndarray, teacher_embedding: np.ndarray,
             student_logits: np.ndarray, student_embedding: np.ndarray, refs: np.ndarray, *,
             laughter: dict | None = None) -> dict:
    """Student-vs-teacher metrics on the held-out windows; ``ccc`` maps each judged output to
    its CCC (what ``min_ccc`` is compared with)."""
    out: dict = {"windows": int(len(teacher_logits))}
    cccs: dict = {}
    if kind == "similarity":
        files = refs[:, 0]
        t_scores = _centroid_scores(teacher_embedding, files)
        s_scores = _centroid_scores(student_embedding, files)
        cccs["prototype-scores"] = parity.ccc(t_scores.ravel(), s_scores.ravel())
        cos = np.sum(teacher_embedding * student_embedding, 1) / np.maximum(
            np.linalg.norm(teacher_embedding, axis=1) * np.linalg.norm(student_embedding, axis=1),
            1e-12)
        out["embedding_cosine_mean"] = float(cos.mean())
        out["embedding_cosine_min"] = float(cos.min())
        out["outputs"] = {"prototype-scores": {
            "ccc": cccs["prototype-scores"],
            "max_abs_error": float(np.max(np.abs(t_scores - s_scores)))}}
    else:
        if kind == "class-logits":
            t_values, s_values = parity.softmax(teacher_logits), parity.softmax(student_logits)
            out["top1_agreement"] = float(np.mean(t_values.argmax(1) == s_values.argmax(1)))
            out["max_prob_error"] = float(np.max(np.abs(t_values - s_values)))
            out["mean_prob_error"] = float(np.mean(np.abs(t_values - s_values)))
        else:
            t_values, s_values = teacher_logits, student_logits
        out["outputs"] = {}
        for k, label in enumerate(labels):
            cccs[label] = parity.ccc(t_values[:, k], s_values[:, k])
            out["outputs"][label] = {
                "ccc": cccs[label],
                "max_abs_error": float(np.max(np.abs(t_values[:, k] - s_values[:, k])))}
        if laughter is not None:
            k = labels.index(laughter["positive_label"])
            out["laughter"] = laughter_decisions(t_values[:, k], s_values[:, k], refs,
                                                 laughter["threshold"])
    out["ccc_min"] = float(min(cccs.values()))
    return _clean(out)


def verdict(metrics: dict, min_ccc: float) -> list:
    """What falls below ``min_ccc``, one phrase each (empty: faithful)."""
    return [f"CCC {label} {m['ccc']:.3f} < {min_ccc:g}"
            for label, m in metrics["outputs"].items()
            if m["ccc"] is None or m["ccc"] < min_ccc]


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    return _finite(value)
