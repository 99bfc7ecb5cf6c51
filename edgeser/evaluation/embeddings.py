"""Pooled embeddings per window: exported for users' own classifiers, and projected to 2-D.

The export (``edgeser detect --embeddings FILE``) holds one row per scored window: the source
file, the window's index, start and end in seconds, and its embedding. ``.npz`` (numpy) holds
arrays ``source`` (str), ``window``, ``start_s``, ``end_s`` and ``embedding`` (float32
``[windows, size]``); ``.parquet`` (when pyarrow is installed) the same columns, the embedding
as a list of float32. Silent windows have no embedding and no row.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeser.atomic import atomic_file
from edgeser.errors import EvaluationError
from edgeser.results import DetectionResult

PARQUET_HINT = 'writing Parquet needs pyarrow: pip install "edgeser[parquet]", or name an .npz file.'
SUFFIXES = (".npz", ".parquet")


def check_destination(path: str | os.PathLike) -> None:
    """Say now, before any audio is read, when the file cannot be written as named."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise EvaluationError(f"{path}: embeddings are written as .npz or .parquet, not "
                              f"{suffix or 'a name without an extension'}.")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise EvaluationError(PARQUET_HINT)


class EmbeddingTable:
    """Rows collected from detection results, written once at the end."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.windows: list[int] = []
        self.starts_s: list[float] = []
        self.ends_s: list[float] = []
        self.vectors: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, result: DetectionResult) -> None:
        for w in result.windows:
            if w.embedding is None:
                continue
            self.sources.append(result.source)
            self.windows.append(w.index)
            self.starts_s.append(w.start_s)
            self.ends_s.append(w.end_s)
            self.vectors.append(np.asarray(w.embedding, np.float32))

    def matrix(self) -> np.ndarray:
        return np.stack(self.vectors) if self.vectors else np.zeros((0, 0), np.float32)

    def write(self, path: str | os.PathLike) -> None:
        """Write atomically (a temp file beside ``path``, then a rename)."""
        check_destination(path)
        if Path(path).suffix.lower() == ".parquet":
            self._write_parquet(path)
            return
        with atomic_file(path, binary=True) as out:
            np.savez(out, source=np.array(self.sources, dtype=str),
                     window=np.array(self.windows, np.int64),
                     start_s=np.array(self.starts_s), end_s=np.array(self.ends_s),
                     embedding=self.matrix())

    def _write_parquet(self, path: str | os.PathLike) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({
            "source": pa.array(self.sources, pa.string()),
            "window": pa.array(self.windows, pa.int64()),
            "start_s": pa.array(self.starts_s, pa.float64()),
            "end_s": pa.array(self.ends_s, pa.float64()),
            "embedding": pa.array([v.tolist() for v in self.vectors], pa.list_(pa.float32())),
        })
        with atomic_file(path, binary=True) as out:
            pq.write_table(table, out)


@dataclass(frozen=True)
class Projection:
    """Windows' embeddings in 2-D with what to colour them by."""

    points: np.ndarray = field(hash=False)  # [windows, 2]
    explained: tuple[float, float]  # share of the variance each axis carries
    label: tuple = ()  # per window: class or laughter/other, else None
    value: tuple = ()  # per window: a regression target, else None
    speaker: tuple = ()
    sex: tuple = ()


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The first two principal components of the rows of ``x`` (numpy SVD) and the share of
    the variance each carries."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise EvaluationError("a projection needs at least two embeddings.")
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T
    if points.shape[1] < 2:
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    total = float(np.sum(s ** 2))
    shares = [float(v ** 2 / total) if total else 0.0 for v in s[:2]] + [0.0, 0.0]
    return points, (shares[0], shares[1])
