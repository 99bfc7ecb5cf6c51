"""The worker of an archive run: a Ray Data callable class that loads the bundle once and scores
batches of files.

Each file's records are made by the writers ``detect --format jsonl`` uses, so both engines give
the same lines byte for byte. Without a sink the batch comes back as result rows; with one, the
batch is written as one partition where the worker runs and only the manifest rows come back,
so results never pass through the driver.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from edgeser.detector import DetectionOptions, Detector
from edgeser.errors import EdgeserError
from edgeser.formats import write_result
from edgeser.formats._json import JsonlWriter
from edgeser.results import RunInfo


@dataclass(frozen=True)
class FileOutcome:
    """One input of a batch once scored: its JSONL lines (window, event and file records, or its
    failure record), the sentence of its failure (None when scored) and its 16 kHz duration."""

    source: str
    path: str | None
    records: str
    error: str | None
    duration_s: float | None


def records_text(run: RunInfo, write) -> str:
    """The JSONL lines ``write(writer)`` produces, without the run header that opens every
    ``detect --format jsonl`` output (an archive run writes it once, in run.json)."""
    out = io.StringIO()
    writer = JsonlWriter(out, run)
    header_end = out.tell()
    write(writer)
    return out.getvalue()[header_end:]


def partition_key(paths: list[str | None], sources: list[str]) -> str:
    """A name that depends only on which files a batch holds: a retried batch (its worker was
    killed) rewrites the same partition instead of adding a second copy."""
    names = sorted(p if p is not None else f"<{s}>" for p, s in zip(paths, sources))
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:20]


class FileScorer:
    """``map_batches`` callable: rows ``path``, ``source``, ``problem`` in; result rows out
    (``source``, ``path``, ``error``, ``duration_s``, ``records``), or, with a ``sink``, the
    partition written and its manifest rows out (``partition`` in place of ``records``)."""

    def __init__(self, bundle: str, options: DetectionOptions, sink=None):
        self.detector = Detector.load(bundle, options=options)
        self.run = self.detector.run_info
        self.sink = sink

    def score(self, path: str | None, source: str, problem: str | None) -> FileOutcome:
        if problem is not None:
            return self._failure(path, source, problem)
        try:
            result = self.detector.detect_file(path, name=source)
        except EdgeserError as err:
            return self._failure(path, source, str(err))
        return FileOutcome(source, path, records_text(self.run, lambda w: write_result(w, result)),
                           None, result.duration_s)

    def _failure(self, path: str | None, source: str, message: str) -> FileOutcome:
        return FileOutcome(source, path, records_text(self.run, lambda w: w.failure(source, message)),
                           message, None)

    def __call__(self, batch):
        import pyarrow as pa

        paths, sources = batch["path"].to_pylist(), batch["source"].to_pylist()
        outcomes = [self.score(p, s, problem) for p, s, problem in
                    zip(paths, sources, batch["problem"].to_pylist())]
        partition = None
        if self.sink is not None:
            partition = self.sink.write(partition_key(paths, sources), outcomes)
        columns = {
            "source": pa.array([o.source for o in outcomes], pa.string()),
            "path": pa.array([o.path for o in outcomes], pa.string()),
            "error": pa.array([o.error for o in outcomes], pa.string()),
            "duration_s": pa.array([o.duration_s for o in outcomes], pa.float64()),
        }
        if partition is None:
            columns["records"] = pa.array([o.records for o in outcomes], pa.string())
        else:
            columns["partition"] = pa.array([partition] * len(outcomes), pa.string())
        return pa.table(columns)
