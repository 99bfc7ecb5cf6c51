"""From the graph's raw outputs to per-label scores, and per-file summaries of them.

The bundle's ``outputs.logits.kind`` says what the logits are: ``regression`` values are reported
as they are, ``class-logits`` get a softmax here (the graph leaves it to the runtime, as the
checkpoints' heads do), ``similarity`` is already the cosine similarity to each class prototype.
"""

from __future__ import annotations

import numpy as np

from edgeser.results import Summary

__all__ = ["Scorer", "SummaryAccumulator"]


class Scorer:
    """Turns a batch of logits into ``(scores, top_label)`` per window."""

    def __init__(self, labels: tuple[str, ...], kind: str):
        self.labels = labels
        self.kind = kind

    @property
    def has_top_label(self) -> bool:
        return self.kind != "regression"

    def __call__(self, logits: np.ndarray) -> list[tuple[dict[str, float], str | None]]:
        values = np.asarray(logits, dtype=np.float64)
        if self.kind == "class-logits":
            shifted = values - values.max(axis=1, keepdims=True)  # exp cannot overflow
            exp = np.exp(shifted)
            values = exp / exp.sum(axis=1, keepdims=True)
        out = []
        for row in values:
            scores = {label: float(v) for label, v in zip(self.labels, row)}
            top = self.labels[int(np.argmax(row))] if self.has_top_label else None
            out.append((scores, top))
        return out


class SummaryAccumulator:
    """Running per-file summary: constant memory however many windows pass through it."""

    def __init__(self, scorer: Scorer):
        self._scorer = scorer
        self._sums = np.zeros(len(scorer.labels), dtype=np.float64)
        self.windows = 0
        self.voiced = 0
        self.events = 0
        self.event_samples = 0

    def add_window(self, scores: dict[str, float] | None) -> None:
        self.windows += 1
        if scores is not None:
            self.voiced += 1
            self._sums += [scores[label] for label in self._scorer.labels]

    def add_event(self, start: int, stop: int) -> None:
        self.events += 1
        self.event_samples += stop - start

    def summary(self) -> Summary:
        if not self.voiced:
            return Summary(self.windows, 0, None, None, self.events, self.event_samples / 16000)
        means = self._sums / self.voiced
        scores = {label: float(v) for label, v in zip(self._scorer.labels, means)}
        top = self._scorer.labels[int(np.argmax(means))] if self._scorer.has_top_label else None
        return Summary(self.windows, self.voiced, scores, top, self.events,
                       self.event_samples / 16000)
