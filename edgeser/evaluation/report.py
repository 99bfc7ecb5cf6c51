"""The evaluation report: ``report.md`` (tables and figures), ``report.json`` (every number)
and ``plots/*.png``, written into a temporary folder beside the destination and renamed into
place, so a reader sees the old report or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgeser.errors import EvaluationError
from edgeser.evaluation.embeddings import Projection, pca_2d
from edgeser.evaluation.metrics import window_truth

REPORT_SCHEMA = 1
MARKDOWN = "report.md"
JSON = "report.json"
PLOTS = "plots"
_MAX_LISTED = 20
_SHORT = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1",
          "false_positives": "FP", "false_negatives": "FN"}


@dataclass(frozen=True)
class Evaluation:
    document: dict = field(hash=False)  # what report.json holds
    projections: Mapping[str, Projection] = field(default_factory=dict, hash=False)


def projections(data) -> dict[str, Projection]:
    """Each model's clean-audio window embeddings in 2-D, with the window's label (class, or
    laughter/other), regression target, speaker and sex."""
    from edgeser.evaluation.perturb import CLEAN

    out = {}
    first_dim = data.labels.dimensions[0] if data.labels.dimensions else None
    for model in data.models:
        outcomes = data.outcomes.get((model.name, CLEAN.key, data.settings.main_processing), ())
        rows, label, value, speaker, sex = [], [], [], [], []
        for f, o in zip(data.files, outcomes):
            if o is None:
                continue
            kept = [w for w in o.windows if w.embedding is not None]
            truth = window_truth([w.start_s for w in kept], [w.end_s for w in kept], f.segments)
            for w, laughing in zip(kept, truth):
                rows.append(w.embedding)
                label.append(f.label if f.label else ("laughter" if laughing else "other")
                             if data.labels.has_segments else None)
                value.append(f.values.get(first_dim) if first_dim else None)
                speaker.append(f.speaker)
                sex.append(f.sex)
        if len(rows) >= 2:
            points, explained = pca_2d(np.stack(rows))
            out[model.name] = Projection(points, explained, tuple(label), tuple(value),
                                         tuple(speaker), tuple(sex))
    return out


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _results_section(doc: dict) -> list[str]:
    task = doc["models"][0]["task"]
    lines = ["## Results against the labels", ""]
    for model in doc["models"]:
        cells = [c for c in doc["results"] if c["model"] == model["name"]]
        lines += [f"### {model['name']}", ""]
        if task == "laughter":
            rows = [[c["condition"], c["processing"],
                     c["metrics"]["files"], _f(c["metrics"]["threshold"], 2),
                     *(_f(c["metrics"]["windows"][k]) for k in
                       ("accuracy", "precision", "recall", "f1", "false_positives",
                        "false_negatives")),
                     *(_f(c["metrics"]["events"][k]) for k in ("precision", "recall", "f1"))]
                    for c in cells]
            lines += _table(["condition", "audio", "files", "threshold", "accuracy",
                             "precision", "recall", "F1", "false pos.", "false neg.",
                             "event P", "event R", "event F1"], rows)
        elif task in ("emotion-categorical", "emotion-prototypes"):
            rows = [[c["condition"], c["processing"],
                     c["metrics"]["files"], _f(c["metrics"]["unweighted_accuracy"]),
                     _f(c["metrics"]["accuracy"]), _f(c["metrics"]["macro_f1"])]
                    for c in cells]
            lines += _table(["condition", "audio", "files", "unweighted accuracy", "accuracy",
                             "macro F1"], rows)
            skipped = cells[0]["metrics"]["skipped_classes"] if cells else {}
            if skipped:
                lines += [f"Files of classes the model does not have were left out: "
                          f"{', '.join(f'{k} ({v})' for k, v in skipped.items())}.", ""]
        else:
            dims = doc["labels"]["dimensions"]
            if dims:
                rows = [[c["condition"], c["processing"],
                         c["metrics"]["files"],
                         *(_f(c["metrics"]["ccc"].get(d)) for d in dims),
                         _f(c["metrics"]["ccc_mean"])] for c in cells]
                lines += _table(["condition", "audio", "files", *(f"CCC {d}" for d in dims),
                                 "mean CCC"], rows)
            lines += _class_means(cells)
    return lines


def _class_means(cells: list[dict]) -> list[str]:
    """Regression outputs per labelled class (clean audio): do the classes order as they
    should (e.g. angry above sad on arousal)?"""
    clean = [c for c in cells if c["condition"] == "clean"]
    if not clean or not clean[0]["metrics"].get("class_means"):
        return []
    means = clean[0]["metrics"]["class_means"]
    outputs = [k for k in next(iter(means.values())) if k != "files"]
    rows = [[label, m["files"], *(_f(m[o]) for o in outputs)] for label, m in means.items()]
    return [f"Mean output per labelled class (clean, {clean[0]['processing']}):", "",
            *_table(["class", "files", *outputs], rows)]


def _fidelity_section(doc: dict) -> list[str]:
    from edgeser.evaluation.scores import MAIN_METRIC

    cells = [c for c in doc["results"] if c["fidelity"]]
    if not cells:
        return []
    lines = ["## Against the reference model", "",
             "Each compressed model against its reference on the same perturbed audio.", ""]
    task = doc["models"][0]["task"]
    if task == "emotion-dimensional":
        labels = list(cells[0]["fidelity"].get("ccc", {}))
        rows = [[c["model"], c["fidelity"]["reference"], c["condition"],
                 c["processing"], f"{c['fidelity']['count']} {c['fidelity']['unit']}",
                 *(_f(c["fidelity"].get("ccc", {}).get(k)) for k in labels),
                 *(_f(c["fidelity"].get("max_abs_error", {}).get(k)) for k in labels)]
                for c in cells]
        header = [*(f"CCC {k}" for k in labels), *(f"max err {k}" for k in labels)]
    elif task == "laughter":
        rows = [[c["model"], c["fidelity"]["reference"], c["condition"],
                 c["processing"], f"{c['fidelity']['count']} {c['fidelity']['unit']}",
                 _f(c["fidelity"].get("decision_agreement")),
                 _f(c["fidelity"].get("probability_error_mean")),
                 _f(c["fidelity"].get("precision_change")),
                 _f(c["fidelity"].get("recall_change"))] for c in cells]
        header = ["decision agreement", "mean prob. error", "precision change",
                  "recall change"]
    else:
        rows = [[c["model"], c["fidelity"]["reference"], c["condition"],
                 c["processing"], f"{c['fidelity']['count']} {c['fidelity']['unit']}",
                 _f(c["fidelity"].get("top1_agreement")),
                 _f(c["fidelity"].get("probability_error_mean"))] for c in cells]
        header = ["top-1 agreement", "mean prob. error"]
    name = MAIN_METRIC[task][1]
    rows = [[*row, _f(c["fidelity"].get("main_change"))] for row, c in zip(rows, cells)]
    return lines + _table(["model", "reference", "condition", "audio", "compared", *header,
                           f"{name} change (labels)"], rows)


def _fairness_section(doc: dict) -> list[str]:
    from edgeser.evaluation.scores import MAIN_METRIC

    cells = [c for c in doc["results"] if c["by_sex"]]
    if not cells:
        return []
    name = MAIN_METRIC[doc["models"][0]["task"]][1]
    sexes = sorted({s for c in cells for s in c["by_sex"]["groups"]})
    rows = [[c["model"], c["condition"], c["processing"],
             *(_f(c["by_sex"]["groups"].get(s, {}).get("main")) for s in sexes),
             _f(c["by_sex"]["gap"])] for c in cells]
    return ["## Between sexes", "", f"{name} per sex and the gap (largest minus smallest).", "",
            *_table(["model", "condition", "audio", *sexes, "gap"], rows)]


def _stability_section(doc: dict) -> list[str]:
    entries = {k: v for k, v in doc["stability"].items() if v}
    if not entries:
        return []
    lines = ["## Stability under small changes", "",
             "Standard deviation of each window's outputs across clean audio, +1 dB, -1 dB and "
             "white noise at 40 dB SNR, averaged over windows.", ""]
    rows = []
    for name, s in entries.items():
        if "std" in s:
            detail = ", ".join(f"{k} {_f(v, 4)}" for k, v in s["std"].items())
        elif "decision_flips" in s:
            detail = (f"probability {_f(s['probability_std'], 4)}, decisions flipped in "
                      f"{_f(s['decision_flips'])} of windows")
        else:
            detail = (f"probability {_f(s['probability_std'], 4)}, top label changed in "
                      f"{_f(s['top_label_flips'])} of windows")
        rows.append([name, s["windows"], detail])
    return lines + _table(["model", "windows", "spread"], rows)


def _neutral_section(doc: dict) -> list[str]:
    section = doc["neutral_speech"]
    lines = ["## Neutral synthetic speech", ""]
    if section["problem"]:
        return lines + [section["problem"], ""]
    models = {k: v for k, v in section["models"].items() if v}
    if not models:
        return []
    rows = []
    for name, result in models.items():
        for voice, s in result["voices"].items():
            if result["measure"] == "valence":
                rows.append([name, voice, s["sentences"], _f(s["mean"]), _f(s["shift"], 3),
                             _f(s["spread"])])
            else:
                rows.append([name, voice, s["sentences"], _f(s["neutral_share"]), "", ""])
    lines += ["Plain statements read by espeak-ng voices should sit mid-scale on valence "
              "(0.5); shift = mean - 0.5, spread = standard deviation over the sentences.", ""]
    return lines + _table(["model", "voice", "sentences", "mean valence (or share neutral)",
                           "shift", "spread"], rows)


def _threshold_section(doc: dict) -> list[str]:
    lines = []
    keys = ("accuracy", "precision", "recall", "f1", "false_positives", "false_negatives")
    for name, tables in doc["thresholds"].items():
        procs = list(tables)
        if not procs:
            continue
        first = tables[procs[0]]
        lines += [f"### Thresholds: {name}", "",
                  f"Clean audio: {first['files']} files, {first['windows']} windows, "
                  f"{first['positive_windows']} labelled laughter.", ""]
        header = ["threshold"]
        for proc in procs:
            header += [f"{proc} {_SHORT[k]}" for k in keys] + [f"{proc} event F1"]
        rows = []
        for i, row in enumerate(first["rows"]):
            cells = [_f(row["threshold"], 2)]
            for proc in procs:
                r = tables[proc]["rows"][i]
                cells += [_f(r["windows"][k]) for k in keys] + [_f(r["events"]["f1"])]
            rows.append(cells)
        lines += _table(header, rows)
    return (["## Laughter thresholds", "", *lines]) if lines else []


def _operating_section(doc: dict) -> list[str]:
    points = doc.get("operating_points") or []
    if not points:
        return []
    rows = [[p["model"], p["name"], f"`{p['rule']}`", _f(p["threshold"], 2),
             _f((p["measured"] or {}).get("precision")), _f((p["measured"] or {}).get("recall")),
             "yes" if p["written"] else f"no: {p['error']}"] for p in points]
    return ["## Operating points", "",
            f"Chosen on clean audio of {doc['labels']['file']} (sha256 "
            f"{doc['labels']['sha256'][:16]}...), written into the bundles with that origin.", "",
            *_table(["model", "name", "rule", "threshold", "precision", "recall", "written"],
                    rows)]


def markdown(doc: dict, figures: list[tuple[str, str]]) -> str:
    labels = doc["labels"]
    lines = ["# edgeser evaluation", "",
             f"{doc['tool']}, {doc['created_utc']}. Labels: `{labels['file']}` (sha256 "
             f"{labels['sha256'][:16]}...), {labels['files_used']} of {labels['files_listed']} "
             f"usable files evaluated, seed {doc['settings']['seed']}.", ""]
    if labels["bad_rows"]:
        lines += [f"{len(labels['bad_rows'])} rows of the labels file were left out:", ""]
        lines += [f"- line {b['line']}: {b['problem']}" for b in labels["bad_rows"][:_MAX_LISTED]]
        if len(labels["bad_rows"]) > _MAX_LISTED:
            lines.append(f"- ... and {len(labels['bad_rows']) - _MAX_LISTED} more (report.json)")
        lines.append("")
    rows = [[m["name"], m["task"], m["precision"], m["quantization"],
             m["distilled_from"] or "", m["reference"] or "",] for m in doc["models"]]
    lines += ["## Models", "", *_table(["model", "task", "precision", "quantization",
                                         "distilled from", "compared with"], rows)]
    lines += ["## Conditions", ""] + [f"- `{c['key']}`: {c['label']}"
                                      for c in doc["settings"]["conditions"]]
    lines += ["", f"Audio: {', '.join(doc['settings']['processing'])}.", ""]
    for section in (_results_section, _fidelity_section, _fairness_section, _stability_section,
                    _neutral_section, _threshold_section, _operating_section):
        lines += section(doc)
    if figures:
        lines += ["## Figures", ""]
        for title, path in figures:
            lines += [f"### {title}", "", f"![{title}]({path})", ""]
    if doc["problems"]:
        lines += ["## Problems", ""] + [f"- {p}" for p in doc["problems"][:_MAX_LISTED]]
        if len(doc["problems"]) > _MAX_LISTED:
            lines.append(f"- ... and {len(doc['problems']) - _MAX_LISTED} more (report.json)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def _publish(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` onto ``dest``; an existing report there is replaced in one step where the
    system can (else moved aside, restored if the rename fails), anything else is refused."""
    from edgeser.bundle.staging import publish_folder  # the bundles' folder swap

    if os.path.lexists(dest) and (not dest.is_dir() or (any(dest.iterdir())
                                                        and not (dest / JSON).is_file())):
        raise EvaluationError(f"{dest} exists and is not an edgeser report; choose another "
                              "--report folder.")
    publish_folder(tmp, dest, overwrite=True)


def write_report(dest: str | os.PathLike, evaluation: Evaluation, *, plots: bool = True,
                 on_plot: Callable[[str], None] | None = None) -> Path:
    """Write ``report.md``, ``report.json`` and (``plots``) the figures into ``dest``."""
    dest = Path(dest)
    doc = dict(evaluation.document, report_schema=REPORT_SCHEMA)
    doc.setdefault("created_utc",
                   _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    doc.setdefault("tool", "edgeser")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(6)}")
        tmp.mkdir()
    except OSError as err:
        raise EvaluationError(f"cannot write the report at {dest} "
                              f"({err.strerror or err}).") from None
    try:
        figures = []
        if plots:
            from edgeser.evaluation import plots as plotting

            (tmp / PLOTS).mkdir()
            figures = plotting.report_figures(doc, evaluation.projections, tmp / PLOTS,
                                              on_plot)
            figures = [(title, f"{PLOTS}/{name}") for title, name in figures]
        doc["figures"] = [{"title": t, "file": p} for t, p in figures]
        (tmp / JSON).write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json_value)
                                + "\n", encoding="utf-8")
        (tmp / MARKDOWN).write_text(markdown(doc, figures), encoding="utf-8")
        _publish(tmp, dest)
    except OSError as err:
        raise EvaluationError(f"cannot write the report at {dest} "
                              f"({err.strerror or err}).") from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
    return dest


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
