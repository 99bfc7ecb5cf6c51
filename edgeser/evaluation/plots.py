"""Figures, with matplotlib (the ``plots`` extra) on its Agg backend: no display needed, and
imported only when a figure is drawn.

For a report: the main metric against SNR per model and per condition, agreement with the
reference model, per-sex bars, confusion matrices, precision/recall/F1 against the laughter
threshold and 2-D projections of the embeddings. For one detection (``edgeser detect --plot``):
the waveform with the per-window scores over time and laughter events as spans.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgeser.atomic import atomic_file
from edgeser.errors import EvaluationError
from edgeser.evaluation.embeddings import Projection

PLOTS_HINT = 'plots need matplotlib: pip install "edgeser[plots]".'
DPI = 100
_SIZE_IN = (10, 5)


def require():
    """``matplotlib.pyplot`` on the Agg backend, or one sentence saying what to install."""
    try:
        import matplotlib
    except ImportError:
        raise EvaluationError(PLOTS_HINT) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    try:
        with atomic_file(path, binary=True) as out:
            fig.savefig(out, dpi=DPI, format="png")
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------
# Report figures
# ------------------------------------------------------------------------------------------


def _main(doc: dict, cell: dict) -> float | None:
    from edgeser.evaluation.scores import main_value

    return main_value(doc["models"][0]["task"], cell["metrics"])


def _series(doc: dict) -> list[tuple[str, str]]:
    return [(m["name"], p) for m in doc["models"] for p in doc["settings"]["processing"]]


def _cell(doc: dict, model: str, condition: str, proc: str) -> dict | None:
    return next((c for c in doc["results"] if c["model"] == model
                 and c["condition"] == condition and c["processing"] == proc), None)


def _value(value) -> float:
    return np.nan if value is None else value


def metric_vs_snr(plt, doc: dict, path: Path) -> bool:
    from edgeser.evaluation.scores import MAIN_METRIC

    noise = [c for c in doc["settings"]["conditions"] if c["family"] == "noise"]
    sources = list(dict.fromkeys(c["source"] for c in noise))
    if not sources or not any(_main(doc, c) is not None for c in doc["results"]):
        return False
    fig, axes = plt.subplots(1, len(sources), figsize=_SIZE_IN, squeeze=False, sharey=True)
    for ax, source in zip(axes[0], sources):
        levels = sorted({c["value"] for c in noise if c["source"] == source}, reverse=True)
        keys = ["clean"] + [next(c["key"] for c in noise if c["source"] == source
                                 and c["value"] == v) for v in levels]
        for model, proc in _series(doc):
            ys = [_value(_main(doc, cell)) if (cell := _cell(doc, model, k, proc)) else np.nan
                  for k in keys]
            ax.plot(range(len(keys)), ys, marker="o", label=f"{model} ({proc})")
        ax.set_xticks(range(len(keys)), ["clean"] + [f"{v:g} dB" for v in levels])
        ax.set_title(f"{source} noise")
        ax.set_xlabel("SNR")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(MAIN_METRIC[doc["models"][0]["task"]][1])
    axes[0][-1].legend(fontsize=8)
    _save(plt, fig, path)
    return True


def _grouped_bars(plt, ax, groups: list[str], series: list[tuple[str, list[float]]]) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, [_value(v) for v in values], width,
               label=name)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def per_condition(plt, doc: dict, path: Path) -> bool:
    from edgeser.evaluation.scores import MAIN_METRIC

    keys = [c["key"] for c in doc["settings"]["conditions"]]
    series = []
    for model, proc in _series(doc):
        values = [_main(doc, cell) if (cell := _cell(doc, model, k, proc)) else None
                  for k in keys]
        series.append((f"{model} ({proc})", values))
    if not any(v is not None for _, values in series for v in values):
        return False
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    _grouped_bars(plt, ax, keys, series)
    ax.set_ylabel(MAIN_METRIC[doc["models"][0]["task"]][1])
    _save(plt, fig, path)
    return True


def _agreement(fidelity: dict | None) -> float | None:
    if not fidelity:
        return None
    for key in ("ccc_min", "top1_agreement", "decision_agreement"):
        if key in fidelity:
            return fidelity[key]
    return None


def reference_agreement(plt, doc: dict, path: Path) -> bool:
    cells = [c for c in doc["results"] if c["fidelity"]]
    if not cells:
        return False
    keys = [c["key"] for c in doc["settings"]["conditions"]]
    series = []
    for model, proc in _series(doc):
        values = [_agreement((_cell(doc, model, k, proc) or {}).get("fidelity")) for k in keys]
        if any(v is not None for v in values):
            series.append((f"{model} ({proc})", values))
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    _grouped_bars(plt, ax, keys, series)
    task = doc["models"][0]["task"]
    ax.set_ylabel({"emotion-dimensional": "lowest CCC over outputs",
                   "laughter": "decision agreement"}.get(task, "top-1 agreement"))
    ax.set_title("agreement with the reference model")
    _save(plt, fig, path)
    return True


def sexes(plt, doc: dict, path: Path) -> bool:
    from edgeser.evaluation.scores import MAIN_METRIC

    proc = doc["settings"]["processing"][0]
    cells = [c for c in doc["results"] if c["condition"] == "clean" and c["processing"] == proc
             and c["by_sex"]]
    if not cells:
        return False
    groups = sorted({s for c in cells for s in c["by_sex"]["groups"]})
    series = [(c["model"], [c["by_sex"]["groups"].get(s, {}).get("main") for s in groups])
              for c in cells]
    if not any(v is not None for _, values in series for v in values):
        return False
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    _grouped_bars(plt, ax, groups, series)
    ax.set_ylabel(MAIN_METRIC[doc["models"][0]["task"]][1])
    ax.set_title(f"per sex (clean, {proc})")
    _save(plt, fig, path)
    return True


def confusion(plt, cell: dict, path: Path) -> None:
    m = cell["metrics"]
    matrix = np.array(m["confusion"], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues")
    labels = m["labels"]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=8,
                color="white" if v > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{cell['model']} ({cell['condition']}, {cell['processing']})")
    fig.colorbar(image, ax=ax)
    _save(plt, fig, path)


def threshold_curves(plt, name: str, tables: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    styles = {"raw": "-", "denoised": "--"}
    for proc, table in tables.items():
        t = [r["threshold"] for r in table["rows"]]
        for key, colour in (("precision", "C0"), ("recall", "C1"), ("f1", "C2")):
            ax.plot(t, [_value(r["windows"][key]) for r in table["rows"]],
                    styles.get(proc, "-"), color=colour, label=f"{key} ({proc})")
        ax.plot(t, [_value(r["events"]["f1"]) for r in table["rows"]], ":", color="C3",
                label=f"event F1 ({proc})")
    ax.set_xlabel("threshold")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(f"{name}: clean audio")
    _save(plt, fig, path)


def _PALETTE(k: int):
    from matplotlib import colormaps

    return colormaps["tab20"](k)


def _scatter_groups(ax, points: np.ndarray, groups: tuple, title: str) -> None:
    names = sorted({g for g in groups if g is not None})
    if not names:
        ax.scatter(points[:, 0], points[:, 1], s=6, color="grey")
        ax.set_title(f"{title}: not labelled")
        return
    for k, name in enumerate(names[:20]):
        mask = np.array([g == name for g in groups])
        ax.scatter(points[mask, 0], points[mask, 1], s=6, label=name, color=_PALETTE(k % 20))
    ax.set_title(title)
    if len(names) <= 12:
        ax.legend(fontsize=6, markerscale=2)


def embeddings(plt, name: str, projection: Projection, path: Path) -> None:
    p = projection.points
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    values = [np.nan if v is None else v for v in projection.value]
    if all(v is None for v in projection.label) and not all(np.isnan(values)):
        shown = axes[0].scatter(p[:, 0], p[:, 1], s=6, c=values, cmap="viridis")
        fig.colorbar(shown, ax=axes[0])
        axes[0].set_title("label (first regression target)")
    else:
        _scatter_groups(axes[0], p, projection.label, "label")
    _scatter_groups(axes[1], p, projection.speaker, "speaker")
    _scatter_groups(axes[2], p, projection.sex, "sex")
    for ax in axes:
        ax.set_xlabel(f"PC1 ({projection.explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({projection.explained[1]:.0%})")
    fig.suptitle(f"{name}: window embeddings, clean audio")
    _save(plt, fig, path)


def report_figures(doc: dict, projections: Mapping[str, Projection], folder: Path,
                   on_plot: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """Draw every figure the document supports into ``folder``; (title, file name) each."""
    plt = require()
    out: list[tuple[str, str]] = []

    def done(title: str, name: str) -> None:
        out.append((title, name))
        if on_plot:
            on_plot(name)

    for title, name, draw in (
            ("Main metric against SNR", "metric_vs_snr.png", metric_vs_snr),
            ("Main metric per condition", "conditions.png", per_condition),
            ("Agreement with the reference model", "reference.png", reference_agreement),
            ("Per sex", "sexes.png", sexes)):
        if draw(plt, doc, folder / name):
            done(title, name)
    for cell in doc["results"]:
        if cell["condition"] == "clean" and "confusion" in cell["metrics"]:
            name = f"confusion_{_safe(cell['model'])}_{cell['processing']}.png"
            confusion(plt, cell, folder / name)
            done(f"Confusion matrix: {cell['model']} ({cell['processing']})", name)
    for model, tables in doc["thresholds"].items():
        if tables:
            name = f"thresholds_{_safe(model)}.png"
            threshold_curves(plt, model, tables, folder / name)
            done(f"Precision, recall and F1 against the threshold: {model}", name)
    for model, projection in projections.items():
        name = f"embeddings_{_safe(model)}.png"
        embeddings(plt, model, projection, folder / name)
        done(f"Embeddings (PCA): {model}", name)
    return out


# ------------------------------------------------------------------------------------------
# One detection
# ------------------------------------------------------------------------------------------


def detection_figure(result, samples: np.ndarray, rate_hz: int, path, *,
                     size_px: tuple[int, int] = (1200, 600)) -> None:
    """The waveform (``samples`` at ``rate_hz``) above the per-window scores at each window's
    centre; laughter events are shaded spans on both, silent windows leave gaps."""
    plt = require()
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True,
                                      figsize=(size_px[0] / DPI, size_px[1] / DPI),
                                      gridspec_kw={"height_ratios": [1, 1.3]})
    x = np.asarray(samples, np.float32)
    t = np.arange(len(x)) / rate_hz
    step = max(1, len(x) // 20000)  # enough points for the plot's pixels
    top.plot(t[::step], x[::step], linewidth=0.5, color="C0")
    top.set_ylabel("amplitude")
    top.set_title(f"{Path(result.source).name} ({result.task}; shaded: laughter events)"
                  if result.events else f"{Path(result.source).name} ({result.task})")
    centres = np.array([(w.start_s + w.end_s) / 2 for w in result.windows])
    for k, label in enumerate(result.labels):
        ys = np.array([np.nan if w.scores is None else w.scores[label] for w in result.windows])
        bottom.plot(centres, ys, marker=".", label=label, color=f"C{k % 10}")
    if result.threshold is not None:
        bottom.axhline(result.threshold, color="grey", linestyle="--", linewidth=0.8,
                       label=f"threshold {result.threshold:g}")
    for e in result.events:
        for ax in (top, bottom):
            ax.axvspan(e.start_s, e.end_s, color="C3", alpha=0.2)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("score")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8, loc="upper right")
    bottom.set_xlim(0, max(result.duration_s, 1e-3))
    _save(plt, fig, path)
