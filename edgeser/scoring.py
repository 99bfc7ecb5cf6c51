"""From the graph's raw outputs to per-label scores, and per-file summaries of them.

The bundle's ``outputs.logits.kind`` says what the logits are: ``regression`` values are reported
as they are, ``class-logits`` get a softmax here (the graph leaves it to the runtime, as the
checkpoints' heads do), ``similarity`` is already the cosine similarity to each class prototype.
"""

from __future__ import annotations

import numpy as np

from edgeser import frontend
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
    """Running per-file summary: constant memory however many windows pass through it. The
    counts and sums live in the native stream summary (``edgeser_summary`` through
    :class:`edgeser.frontend.StreamSummary`), the same code firmware runs."""

    def __init__(self, scorer: Scorer):
        self._scorer = scorer
        self._summary = frontend.StreamSummary(len(scorer.labels))

    @property
    def windows(self) -> int:
        return self._summary.totals().windows

    @property
    def voiced(self) -> int:
        return self._summary.totals().voiced

    @property
    def events(self) -> int:
        return self._summary.totals().events

    @property
    def event_samples(self) -> int:
        return self._summary.totals().event_samples

    def add_window(self, scores: dict[str, float] | None) -> None:
        self._summary.add_window(None if scores is None
                                 else [scores[label] for label in self._scorer.labels])

    def add_event(self, start: int, stop: int) -> None:
        self._summary.add_event(start, stop)

    def summary(self) -> Summary:
        t = self._summary.totals()
        if t.means is None:
            return Summary(t.windows, 0, None, None, t.events, t.event_s)
        scores = {label: float(v) for label, v in zip(self._scorer.labels, t.means)}
        top = self._scorer.labels[t.top] if self._scorer.has_top_label else None
        return Summary(t.windows, t.voiced, scores, top, t.events, t.event_s)
