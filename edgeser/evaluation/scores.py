"""From the outcomes of a run to the report's numbers (a JSON-ready document).

Per model, condition and processing: the task's metrics against the labels (files: a file's
prediction is its summary over voiced windows; laughter: windows and events at the model's
default operating point), the gap between sexes where the labels give them, and, for a model
with a reference (:mod:`edgeser.evaluation.models`), its agreement with that reference on the
same perturbed audio (window by window where both cut the same windows, else file by file).
Per model: stability under small changes (+/-1 dB, white noise at 40 dB), the neutral-speech
check, and for laughter the per-threshold table on clean audio.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from edgeser.evaluation import bias, metrics, thresholds
from edgeser.evaluation.labels import LabelledFile
from edgeser.evaluation.models import ModelInfo
from edgeser.evaluation.perturb import CLEAN, STABILITY
from edgeser.evaluation.runner import FileOutcome, RunData

CLASS_TASKS = ("emotion-categorical", "emotion-prototypes")
# The one number per cell that plots and the fairness gap use: (key in metrics, its name).
MAIN_METRIC = {"emotion-dimensional": ("ccc_mean", "mean CCC"),
               "emotion-categorical": ("unweighted_accuracy", "unweighted accuracy"),
               "emotion-prototypes": ("unweighted_accuracy", "unweighted accuracy"),
               "laughter": ("f1", "window F1")}


def main_value(task: str, cell_metrics: Mapping | None) -> float | None:
    if not cell_metrics:
        return None
    key = MAIN_METRIC[task][0]
    if task == "laughter":
        return cell_metrics["windows"][key]
    return cell_metrics.get(key)


# ------------------------------------------------------------------------------------------
# Against the labels
# ------------------------------------------------------------------------------------------


def _pairs(files: Sequence[LabelledFile], outcomes: Sequence[FileOutcome | None]):
    return [(f, o) for f, o in zip(files, outcomes) if o is not None]


def regression_metrics(files, outcomes, dims: Sequence[str], class_column: str | None) -> dict:
    pairs = [(f, o) for f, o in _pairs(files, outcomes) if o.scores is not None]
    out: dict = {"files": len(pairs), "ccc": {}}
    for dim in dims:
        used = [(f.values[dim], o.scores[dim]) for f, o in pairs if dim in f.values]
        out["ccc"][dim] = metrics.ccc(*zip(*used)) if len(used) >= 2 else None
    values = [v for v in out["ccc"].values() if v is not None]
    out["ccc_mean"] = float(np.mean(values)) if values else None
    if class_column:
        groups: dict[str, list] = {}
        for f, o in pairs:
            if f.label:
                groups.setdefault(f.label, []).append(o.scores)
        out["class_means"] = {
            label: {"files": len(s), **{d: float(np.mean([x[d] for x in s])) for d in s[0]}}
            for label, s in sorted(groups.items())}
    return out


def class_metrics(files, outcomes, labels: Sequence[str]) -> dict:
    truth, pred, skipped = [], [], {}
    for f, o in _pairs(files, outcomes):
        if f.label is None or o.top_label is None:
            continue
        if f.label not in labels:
            skipped[f.label] = skipped.get(f.label, 0) + 1
            continue
        truth.append(f.label)
        pred.append(o.top_label)
    scores = metrics.class_scores(truth, pred, labels).to_json()
    scores["files"] = len(truth)
    scores["skipped_classes"] = dict(sorted(skipped.items()))
    return scores


def _laughter_files(files, outcomes) -> list[thresholds.LaughterFile]:
    return [thresholds.LaughterFile(o.windows, f.segments) for f, o in _pairs(files, outcomes)]


def event_rules(detector) -> thresholds.EventRules:
    run = detector.run_info
    return thresholds.EventRules(run.positive_label, run.min_duration_s, run.merge_gap_s)


def laughter_metrics(files, outcomes, detector) -> dict:
    chosen = _laughter_files(files, outcomes)
    row = thresholds.sweep(chosen, [detector.threshold], event_rules(detector))[0]
    return {"files": len(chosen), "threshold": detector.threshold,
            "windows": row.windows.to_json(), "events": row.events.to_json()}


def task_metrics(model: ModelInfo, data: RunData, files, outcomes) -> dict:
    if model.task == "laughter":
        return laughter_metrics(files, outcomes, data.detectors[model.name])
    if model.task in CLASS_TASKS:
        return class_metrics(files, outcomes, model.labels)
    dims = [d for d in data.labels.dimensions if d in model.labels]
    return regression_metrics(files, outcomes, dims, data.labels.class_column)


def by_sex(model: ModelInfo, data: RunData, outcomes) -> dict | None:
    """The task's metrics per sex and the gap of the main metric (largest minus smallest)."""
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(data.files):
        if f.sex:
            groups.setdefault(f.sex, []).append(i)
    if len(groups) < 2:
        return None
    out: dict = {"groups": {}}
    for sex, idx in sorted(groups.items()):
        cell = task_metrics(model, data, [data.files[i] for i in idx], [outcomes[i] for i in idx])
        out["groups"][sex] = {"files": cell["files"], "main": main_value(model.task, cell),
                              "metrics": cell}
    known = {s: g["main"] for s, g in out["groups"].items() if g["main"] is not None}
    if len(known) >= 2:
        high, low = max(known, key=known.get), min(known, key=known.get)
        out["gap"] = known[high] - known[low]
        out["gap_between"] = [high, low]
    else:
        out["gap"], out["gap_between"] = None, None
    return out


# ------------------------------------------------------------------------------------------
# Against the reference model
# ------------------------------------------------------------------------------------------


def _matched(mine: Sequence[FileOutcome | None], theirs: Sequence[FileOutcome | None]):
    """(unit, [(my scores, their scores)]): windows both cut and scored alike, else files."""
    windows, file_pairs = [], []
    for a, b in zip(mine, theirs):
        if a is None or b is None:
            continue
        if a.scores is not None and b.scores is not None:
            file_pairs.append((a.scores, b.scores))
        spans = {(w.start, w.stop): w.scores for w in b.windows if w.scores is not None}
        windows += [(w.scores, spans[(w.start, w.stop)]) for w in a.windows
                    if w.scores is not None and (w.start, w.stop) in spans]
    return ("windows", windows) if len(windows) >= 2 else ("files", file_pairs)


def fidelity(model: ModelInfo, reference: ModelInfo, data: RunData, mine, theirs) -> dict:
    unit, pairs = _matched(mine, theirs)
    out: dict = {"reference": reference.name, "unit": unit, "count": len(pairs)}
    if not pairs:
        return out
    labels = [label for label in model.labels if label in reference.labels]
    a = np.array([[p[0][label] for label in labels] for p in pairs])
    b = np.array([[p[1][label] for label in labels] for p in pairs])
    if model.task == "laughter":
        positive = data.detectors[model.name].run_info.positive_label
        k = labels.index(positive)
        mine_yes = a[:, k] >= data.detectors[model.name].threshold
        theirs_yes = b[:, k] >= data.detectors[reference.name].threshold
        out["decision_agreement"] = float(np.mean(mine_yes == theirs_yes))
        out["probability_error_mean"] = float(np.mean(np.abs(a[:, k] - b[:, k])))
    elif model.task in CLASS_TASKS:
        out["top1_agreement"] = float(np.mean(a.argmax(1) == b.argmax(1)))
        out["probability_error_mean"] = float(np.mean(np.abs(a - b)))
    else:
        out["ccc"] = {label: metrics.ccc(b[:, j], a[:, j]) for j, label in enumerate(labels)}
        out["max_abs_error"] = {label: float(np.max(np.abs(a[:, j] - b[:, j])))
                                for j, label in enumerate(labels)}
        # A reference whose outputs barely move makes CCC measure noise: its spread says so.
        out["reference_std"] = {label: float(b[:, j].std()) for j, label in enumerate(labels)}
        known = [v for v in out["ccc"].values() if v is not None]
        out["ccc_min"] = min(known) if known else None
    return out


# ------------------------------------------------------------------------------------------
# Stability and neutral speech
# ------------------------------------------------------------------------------------------


def stability(model: ModelInfo, data: RunData) -> dict | None:
    """Spread of window outputs across clean, +1 dB, -1 dB and 40 dB white noise."""
    proc = data.settings.main_processing
    keys = [CLEAN.key, *(c.key for c in STABILITY)]
    variants = [data.outcomes.get((model.name, k, proc)) for k in keys]
    if any(v is None for v in variants):
        return None
    rows = []  # [windows, variants, labels]
    for per_file in zip(*variants):
        if any(o is None for o in per_file):
            continue
        spans = [{(w.start, w.stop): w.scores for w in o.windows if w.scores is not None}
                 for o in per_file]
        common = set(spans[0]).intersection(*spans[1:])
        rows += [[[s[span][label] for label in model.labels] for s in spans]
                 for span in sorted(common)]
    if not rows:
        return None
    x = np.array(rows)  # windows x variants x labels
    out: dict = {"conditions": keys, "windows": len(rows)}
    if model.task == "laughter":
        detector = data.detectors[model.name]
        k = model.labels.index(detector.run_info.positive_label)
        yes = x[:, :, k] >= detector.threshold
        out["probability_std"] = float(x[:, :, k].std(axis=1).mean())
        out["decision_flips"] = float(np.mean(yes.any(axis=1) != yes.all(axis=1)))
    elif model.task in CLASS_TASKS:
        top = x.argmax(axis=2)
        out["probability_std"] = float(x.std(axis=1).mean())
        out["top_label_flips"] = float(np.mean((top != top[:, :1]).any(axis=1)))
    else:
        out["std"] = {label: float(x[:, :, j].std(axis=1).mean())
                      for j, label in enumerate(model.labels)}
    return out


def neutral_speech(model: ModelInfo, data: RunData) -> dict | None:
    voices = data.neutral.get(model.name)
    if not voices:
        return None
    if bias.VALENCE in model.labels and model.task not in CLASS_TASKS:
        values = {v: [o.scores[bias.VALENCE] for o in got if o.scores is not None]
                  for v, got in voices.items()}
        return {"measure": "valence", "midscale": bias.MIDSCALE,
                "voices": bias.valence_shift(values)}
    shares = {v: {"sentences": len(got),
                  "neutral_share": float(np.mean([o.top_label == "neutral" for o in got]))}
              for v, got in voices.items() if got}
    return {"measure": "share classified neutral", "voices": shares}


# ------------------------------------------------------------------------------------------
# The document
# ------------------------------------------------------------------------------------------


def build(data: RunData) -> dict:
    by_name = {m.name: m for m in data.models}
    results = []
    for condition in data.settings.conditions:
        for proc in data.settings.processing:
            for model in data.models:
                outcomes = data.outcomes.get((model.name, condition.key, proc))
                if outcomes is None:
                    continue
                cell = {"model": model.name, "condition": condition.key, "processing": proc,
                        "metrics": task_metrics(model, data, data.files, outcomes),
                        "by_sex": by_sex(model, data, outcomes), "fidelity": None}
                ref = by_name.get(model.reference) if model.reference else None
                theirs = data.outcomes.get((model.reference, condition.key, proc)) if ref else None
                if theirs is not None:
                    cell["fidelity"] = fidelity(model, ref, data, outcomes, theirs)
                results.append(cell)
    _changes(results, data.models[0].task)
    doc = {
        "labels": {"file": str(data.labels.path), "sha256": data.labels.sha256,
                   "files_listed": data.labels.rows_used, "files_used": len(data.files),
                   "dimensions": list(data.labels.dimensions),
                   "class_column": data.labels.class_column,
                   "segments": data.labels.has_segments,
                   "bad_rows": [{"line": b.line, "problem": b.problem}
                                for b in data.labels.bad_rows]},
        "settings": {"conditions": [{"key": c.key, "label": c.label, "family": c.family,
                                     "value": c.value, "source": c.source}
                                    for c in data.settings.conditions],
                     "processing": list(data.settings.processing), "seed": data.settings.seed,
                     "max_files": data.settings.max_files},
        "models": [m.to_json() for m in data.models],
        "results": results,
        "stability": {m.name: stability(m, data) for m in data.models},
        "neutral_speech": {"problem": data.neutral_problem,
                           "models": {m.name: neutral_speech(m, data) for m in data.models}},
        "thresholds": {},
        "problems": list(data.problems),
    }
    for model in data.models:
        if model.task == "laughter":
            doc["thresholds"][model.name] = threshold_tables(model, data)
    return doc


def _changes(results: list[dict], task: str) -> None:
    """Each compared cell's main metric (laughter: also window precision and recall) minus its
    reference's, on the same condition and audio."""
    cells = {(c["model"], c["condition"], c["processing"]): c for c in results}
    for cell in results:
        fid = cell["fidelity"]
        ref = cells.get((fid["reference"], cell["condition"], cell["processing"])) if fid else None
        if ref is None:
            continue
        mine, theirs = main_value(task, cell["metrics"]), main_value(task, ref["metrics"])
        fid["main_change"] = None if mine is None or theirs is None else mine - theirs
        if task == "laughter":
            for key in ("precision", "recall"):
                a, b = cell["metrics"]["windows"][key], ref["metrics"]["windows"][key]
                fid[f"{key}_change"] = None if a is None or b is None else a - b


def threshold_tables(model: ModelInfo, data: RunData) -> dict:
    """Per processing, the per-threshold rows on clean audio, with the window counts."""
    detector = data.detectors[model.name]
    out = {}
    for proc in data.settings.processing:
        outcomes = data.outcomes.get((model.name, CLEAN.key, proc))
        if outcomes is None:
            continue
        chosen = _laughter_files(data.files, outcomes)
        windows, positive = thresholds.counts(chosen)
        rows = thresholds.sweep(chosen, data.settings.thresholds, event_rules(detector))
        out[proc] = {"files": len(chosen), "windows": windows, "positive_windows": positive,
                     "rows": [r.to_json() for r in rows]}
    return out
