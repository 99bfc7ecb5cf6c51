"""Class prototypes for embedding models: the mean unit embedding of labelled clips per class.

The CSV has a header with columns ``path`` and ``label``; relative paths are taken from the
CSV's folder. Each clip is windowed and prepared exactly as detection will do it, its window
embeddings averaged; a class prototype is the normalised mean of its clips' unit embeddings.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgeser import audio
from edgeser import frontend as fe
from edgeser.errors import AudioError, ExportError


def read_csv(path: Path) -> list[tuple[Path, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ExportError(f"{path}: cannot be read as a CSV file ({err}).") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ExportError(f"{path}: needs a header with 'path' and 'label' columns and at least one row.")
    clips = []
    for line, row in enumerate(rows, start=2):
        clip, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not clip or not label:
            raise ExportError(f"{path}: line {line} lacks a path or a label.")
        clip_path = Path(clip) if Path(clip).is_absolute() else path.parent / clip
        clips.append((clip_path, label))
    return clips


def compute(csv_path: Path, embed, window_s: float, hop_s: float, prepare=fe.normalize):
    """(labels in first-seen order, float32 [classes, dim] unit prototypes); ``prepare`` is what
    detection does to each window (per-window normalisation, or nothing)."""
    per_class: dict[str, list] = {}
    for clip, label in read_csv(csv_path):
        try:
            samples, info = audio.read_mono(clip)
        except AudioError as err:
            raise ExportError(f"prototype clip {err}") from None
        x = fe.resample(samples, info.rate_hz)
        windows = [prepare(x[w.start : w.stop]) for w in fe.windows(len(x), window_s, hop_s)]
        if not windows:
            raise ExportError(f"{clip}: is shorter than one model frame (400 samples at 16 kHz).")
        vectors = np.stack([embed(w[None, :])[0] for w in windows]).mean(axis=0)
        per_class.setdefault(label, []).append(vectors / max(np.linalg.norm(vectors), 1e-12))
    if len(per_class) < 2:
        raise ExportError(f"{csv_path}: prototypes need clips of at least two classes.")
    labels = list(per_class)
    protos = np.stack([np.mean(per_class[label], axis=0) for label in labels])
    protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
    return labels, protos.astype(np.float32)
