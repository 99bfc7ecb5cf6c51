"""The numbers an evaluation reports, each a small pure function of arrays.

- regression: the concordance correlation coefficient (CCC; population moments, as the
  emotion literature and the audeering model card compute it);
- classes: unweighted accuracy (mean recall over the true classes present), accuracy, macro F1
  (over the classes present in the truth or the predictions) and the confusion matrix (rows:
  truth, columns: prediction);
- laughter: binary decisions (accuracy, precision, recall, F1, false positives, false
  negatives) per window, and per event (a predicted event is right when it overlaps a labelled
  segment; a segment is found when an event overlaps it).

An undefined value (no positives, constant outputs) is None, never a made-up 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def ccc(truth: Sequence[float], pred: Sequence[float]) -> float | None:
    """Lin's concordance correlation coefficient; None for fewer than two pairs or when both
    are constant."""
    x = np.asarray(truth, np.float64)
    y = np.asarray(pred, np.float64)
    if len(x) != len(y):
        raise ValueError("truth and predictions differ in length")
    if len(x) < 2:
        return None
    mx, my = x.mean(), y.mean()
    denom = x.var() + y.var() + (mx - my) ** 2
    if denom == 0:
        return None
    return float(2 * np.mean((x - mx) * (y - my)) / denom)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class ClassScores:
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: truth, columns: prediction
    unweighted_accuracy: float | None
    accuracy: float | None
    macro_f1: float | None
    count: int

    def to_json(self) -> dict:
        return {"labels": list(self.labels), "confusion": [list(r) for r in self.confusion],
                "unweighted_accuracy": self.unweighted_accuracy, "accuracy": self.accuracy,
                "macro_f1": self.macro_f1, "count": self.count}


def class_scores(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> ClassScores:
    """Scores of predicted classes against true ones, both drawn from ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        matrix[index[t], index[p]] += 1
    n = int(matrix.sum())
    true_count = matrix.sum(axis=1)
    pred_count = matrix.sum(axis=0)
    hits = np.diag(matrix)
    present = true_count > 0
    recalls = hits[present] / true_count[present]
    f1s = []
    for k in np.nonzero(present | (pred_count > 0))[0]:
        f1s.append(_f1(_ratio(hits[k], pred_count[k]) or 0.0, _ratio(hits[k], true_count[k]) or 0.0))
    return ClassScores(
        tuple(labels), tuple(tuple(int(v) for v in row) for row in matrix),
        float(recalls.mean()) if present.any() else None, _ratio(hits.sum(), n),
        float(np.mean(f1s)) if f1s else None, n)


@dataclass(frozen=True)
class Decisions:
    """Binary decisions against the truth."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def count(self) -> int:
        return self.true_positives + self.false_positives + self.false_negatives \
            + self.true_negatives

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.true_positives + self.true_negatives, self.count)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "precision": self.precision, "recall": self.recall,
                "f1": self.f1, "false_positives": self.false_positives,
                "false_negatives": self.false_negatives, "true_positives": self.true_positives,
                "true_negatives": self.true_negatives}


def decisions(truth: Sequence[bool], pred: Sequence[bool]) -> Decisions:
    t = np.asarray(truth, bool)
    p = np.asarray(pred, bool)
    if t.shape != p.shape:
        raise ValueError("truth and predictions differ in length")
    return Decisions(int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p)),
                     int(np.sum(~t & ~p)))


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True)
class EventScores:
    events: int  # predicted
    correct_events: int  # predicted events overlapping a labelled segment
    segments: int  # labelled
    found_segments: int  # labelled segments some event overlaps

    @property
    def precision(self) -> float | None:
        return _ratio(self.correct_events, self.events)

    @property
    def recall(self) -> float | None:
        return _ratio(self.found_segments, self.segments)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    def __add__(self, other: "EventScores") -> "EventScores":
        return EventScores(self.events + other.events,
                           self.correct_events + other.correct_events,
                           self.segments + other.segments,
                           self.found_segments + other.found_segments)

    def to_json(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "events": self.events, "segments": self.segments}


def event_scores(segments: Sequence[tuple[float, float]],
                 events: Sequence[tuple[float, float]]) -> EventScores:
    """Event-level matching in one file (times in seconds)."""
    correct = sum(any(_overlaps(e, s) for s in segments) for e in events)
    found = sum(any(_overlaps(s, e) for e in events) for s in segments)
    return EventScores(len(events), correct, len(segments), found)


def window_truth(starts_s: Sequence[float], ends_s: Sequence[float],
                 segments: Sequence[tuple[float, float]]) -> np.ndarray:
    """A window is labelled laughter when labelled segments cover at least half of it."""
    out = np.zeros(len(starts_s), dtype=bool)
    for i, (a, b) in enumerate(zip(starts_s, ends_s)):
        covered = sum(max(0.0, min(b, s[1]) - max(a, s[0])) for s in segments)
        out[i] = covered >= (b - a) / 2
    return out


def spread(values: np.ndarray) -> float:
    """Standard deviation over the first axis, averaged over the rest (population)."""
    values = np.asarray(values, np.float64)
    return float(np.mean(values.std(axis=0))) if values.size else math.nan
