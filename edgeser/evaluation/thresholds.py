"""Laughter decisions across thresholds, and operating points chosen from them by a stated rule.

For each threshold the windows are decided (a silent window is not laughter) and the events are
formed exactly as detection forms them (:class:`edgeser.events.EventTracker`, the native tracker,
with the detector's minimum duration and merge gap), then scored against the labelled segments
(:mod:`edgeser.evaluation.metrics`).

A rule is ``METRIC`` (the threshold that maximises it) or ``METRIC>=BOUND`` (among the thresholds
that reach the bound, the one with the best counterpart: recall for a precision bound, precision
for a recall bound, F1 otherwise). Metrics: ``precision``, ``recall``, ``f1``, ``accuracy``
(windows) and ``event-precision``, ``event-recall``, ``event-f1``. Ties go to the higher
threshold (fewer false alarms at equal merit).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import EvaluationError
from edgeser.evaluation.metrics import (Decisions, EventScores, decisions, event_scores,
                                        window_truth)
from edgeser.events import EventSettings, EventTracker
from edgeser.results import WindowResult

DEFAULT_GRID = "0.05:0.95:0.05"
METRICS = ("precision", "recall", "f1", "accuracy", "event-precision", "event-recall",
           "event-f1")
_COUNTERPART = {"precision": "recall", "recall": "precision", "event-precision": "event-recall",
                "event-recall": "event-precision"}
_RULE = re.compile(r"^\s*([a-z0-9-]+)\s*(?:>=\s*([0-9.]+))?\s*$")


def parse_grid(text: str) -> tuple[float, ...]:
    """``START:STOP:STEP`` (both ends included) or a comma list; every threshold in (0, 1)."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not step > 0 or stop < start:
                raise ValueError
            count = math.floor((stop - start) / step + 1e-9) + 1
            values = [round(start + k * step, 10) for k in range(count)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise EvaluationError(f"--thresholds {text}: give START:STOP:STEP (e.g. "
                              f"{DEFAULT_GRID}) or a comma list of probabilities.") from None
    if not values or any(not (0 < v < 1) for v in values):
        raise EvaluationError(f"--thresholds {text}: every threshold must be a probability "
                              "strictly between 0 and 1.")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class LaughterFile:
    """One file's scored windows and its labelled segments (seconds)."""

    windows: tuple[WindowResult, ...]
    segments: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class EventRules:
    """How events are formed: the detector's settings, in seconds."""

    label: str
    min_duration_s: float
    merge_gap_s: float


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    windows: Decisions
    events: EventScores

    def metric(self, name: str) -> float | None:
        if name.startswith("event-"):
            return getattr(self.events, name[len("event-"):])
        return getattr(self.windows, name)

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "windows": self.windows.to_json(),
                "events": self.events.to_json()}


def _probabilities(windows: Sequence[WindowResult], label: str) -> np.ndarray:
    return np.array([0.0 if w.scores is None else w.scores[label] for w in windows])


def _events(windows: Sequence[WindowResult], threshold: float,
            rules: EventRules) -> list[tuple[float, float]]:
    tracker = EventTracker(EventSettings(rules.label, threshold,
                                         round(rules.min_duration_s * SAMPLE_RATE_HZ),
                                         round(rules.merge_gap_s * SAMPLE_RATE_HZ)))
    events = []
    for w in windows:
        events += tracker.add(w)
    events += tracker.finish()
    return [(e.start_s, e.end_s) for e in events]


def _truth(f: LaughterFile) -> np.ndarray:
    return window_truth([w.start_s for w in f.windows], [w.end_s for w in f.windows], f.segments)


def sweep(files: Sequence[LaughterFile], thresholds: Sequence[float],
          rules: EventRules) -> tuple[ThresholdRow, ...]:
    """One row per threshold."""
    truth = np.concatenate([_truth(f) for f in files]) if files else np.zeros(0, bool)
    probs = (np.concatenate([_probabilities(f.windows, rules.label) for f in files]) if files
             else np.zeros(0))
    rows = []
    for t in thresholds:
        events = EventScores(0, 0, 0, 0)
        for f in files:
            events = events + event_scores(f.segments, _events(f.windows, t, rules))
        rows.append(ThresholdRow(t, decisions(truth, probs >= t), events))
    return tuple(rows)


def counts(files: Sequence[LaughterFile]) -> tuple[int, int]:
    """(windows, windows labelled laughter)."""
    truth = [_truth(f) for f in files]
    return sum(len(t) for t in truth), sum(int(t.sum()) for t in truth)


@dataclass(frozen=True)
class Rule:
    name: str  # the operating point's name
    text: str  # as given, e.g. "precision>=0.95"
    metric: str
    bound: float | None = None

    def choose(self, rows: Sequence[ThresholdRow]) -> ThresholdRow:
        """The row this rule picks; EvaluationError when no threshold meets it."""
        def value(row: ThresholdRow, metric: str) -> float:
            v = row.metric(metric)
            return -math.inf if v is None else v

        if self.bound is None:
            candidates = list(rows)
            merit = self.metric
        else:
            candidates = [r for r in rows if value(r, self.metric) >= self.bound]
            merit = _COUNTERPART.get(self.metric, "event-f1" if self.metric.startswith("event")
                                     else "f1")
        candidates = [r for r in candidates if value(r, merit) > -math.inf]
        if not candidates:
            best = max(rows, key=lambda r: (value(r, self.metric), r.threshold))
            shown = best.metric(self.metric)
            raise EvaluationError(
                f"operating point {self.name}: no threshold from {rows[0].threshold:g} to "
                f"{rows[-1].threshold:g} meets {self.text} on these labels (best "
                f"{self.metric} {'n/a' if shown is None else f'{shown:.3f}'} at "
                f"{best.threshold:g}).")
        return max(candidates, key=lambda r: (value(r, merit), r.threshold))


def parse_rules(text: str) -> tuple[Rule, ...]:
    """``NAME=RULE[,NAME=RULE...]``, e.g. ``high-precision=precision>=0.95,balanced=f1``."""
    rules = []
    for part in text.split(","):
        name, sep, rule = part.partition("=")
        name = name.strip()
        match = _RULE.match(rule)
        if not sep or not name or match is None or match.group(1) not in METRICS:
            raise EvaluationError(
                f"--write-operating-points {part!r}: give NAME=METRIC or NAME=METRIC>=VALUE "
                f"with METRIC one of {', '.join(METRICS)} (e.g. 'high-precision=precision>=0.95', "
                "quoted for the shell).")
        bound = None
        if match.group(2) is not None:
            try:
                bound = float(match.group(2))
            except ValueError:
                bound = math.nan
            if not 0 <= bound <= 1:
                raise EvaluationError(f"--write-operating-points {part!r}: the bound must be a "
                                      "number from 0 to 1.")
        if name in {r.name for r in rules}:
            raise EvaluationError(f"--write-operating-points names {name!r} twice.")
        rules.append(Rule(name, rule.strip(), match.group(1), bound))
    return tuple(rules)
