"""Operating points chosen on labelled audio and written into laughter bundles.

Each rule (:mod:`edgeser.evaluation.thresholds`) picks a threshold from the table of the clean
audio (raw, or denoised when only denoised audio was evaluated); the point goes into the bundle
with its origin: the rule, the labels file's path and sha256, how many files and windows (and
laughter windows) it was chosen on, and what it measured there
(:func:`edgeser.bundle.write_operating_points`: the manifest alone is rewritten, atomically).
"""

from __future__ import annotations

import datetime as _dt
from typing import Sequence

from edgeser import bundle as bundles
from edgeser.errors import EdgeserError
from edgeser.evaluation import scores, thresholds
from edgeser.evaluation.models import ModelInfo
from edgeser.evaluation.perturb import CLEAN
from edgeser.evaluation.runner import RunData


def _measured(row: thresholds.ThresholdRow) -> dict:
    w, e = row.windows, row.events
    return {"precision": w.precision, "recall": w.recall, "f1": w.f1, "accuracy": w.accuracy,
            "false_positives": w.false_positives, "false_negatives": w.false_negatives,
            "event_precision": e.precision, "event_recall": e.recall, "event_f1": e.f1}


def choose_and_write(model: ModelInfo, data: RunData, rules: Sequence[thresholds.Rule],
                     tool: str) -> list[dict]:
    """Choose every rule's threshold for ``model`` and write those found into its bundle; one
    record per rule (``error`` set when the rule was not met or the bundle refused)."""
    detector = data.detectors[model.name]
    proc = data.settings.main_processing
    chosen = scores._laughter_files(data.files, data.outcomes[(model.name, CLEAN.key, proc)])
    rows = thresholds.sweep(chosen, data.settings.thresholds, scores.event_rules(detector))
    windows, positive = thresholds.counts(chosen)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records, points = [], {}
    for rule in rules:
        record = {"model": model.name, "name": rule.name, "rule": rule.text, "threshold": None,
                  "measured": None, "written": False, "error": None}
        try:
            row = rule.choose(rows)
        except EdgeserError as err:
            record["error"] = str(err)
            records.append(record)
            continue
        record.update(threshold=row.threshold, measured=_measured(row))
        points[rule.name] = (row.threshold, bundles.OperatingPointOrigin(
            rule.text, str(data.labels.path), data.labels.sha256, len(chosen), windows, positive,
            _measured(row), created, tool, proc == "denoised"))
        records.append(record)
    if points:
        try:
            bundles.write_operating_points(model.bundle, points)
        except EdgeserError as err:
            for record in records:
                if record["error"] is None:
                    record["error"] = str(err)
        else:
            for record in records:
                record["written"] = record["error"] is None
    return records
