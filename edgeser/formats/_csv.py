"""``csv``: one row per window, written as windows come; events and failures are not rows."""

from __future__ import annotations

import csv
from typing import TextIO

from edgeser.formats._common import seconds_text
from edgeser.results import Event, FileEnd, RunInfo, WindowResult

FIXED_COLUMNS = ("source", "index", "start_sample", "end_sample", "start_s", "end_s", "level_dbfs",
                 "silent")
VAD_COLUMNS = ("speech_fraction", "non_speech")  # after FIXED_COLUMNS in runs with the VAD gate


class CsvWriter:
    """Header, then per window: its place, level, (with the VAD gate, its speech fraction and
    whether it is non-speech,) one column per label (empty when not scored) and the top label
    (empty where there is none)."""

    def __init__(self, out: TextIO, run: RunInfo, *, live: bool = False) -> None:
        self._out, self._labels, self._live = out, run.labels, live
        # "\n": the stream is already text, which translates line ends where the platform wants.
        self._csv = csv.writer(out, lineterminator="\n")
        self._vad = run.vad
        self._csv.writerow((*FIXED_COLUMNS, *(VAD_COLUMNS if run.vad else ()), *run.labels,
                            "top_label"))

    def window(self, source: str, w: WindowResult) -> None:
        scores = w.scores or {}
        self._csv.writerow((
            source, w.index, w.start, w.stop, seconds_text(w.start), seconds_text(w.stop),
            repr(float(w.level_dbfs)), "true" if w.silent else "false",
            *(_vad_cells(w) if self._vad else ()),
            *(repr(float(scores[label])) if label in scores else "" for label in self._labels),
            w.top_label or "",
        ))
        if self._live:
            self._out.flush()

    def event(self, source: str, e: Event) -> None:
        pass

    def file_done(self, end: FileEnd) -> None:
        pass

    def failure(self, source: str, message: str) -> None:
        pass  # the caller reports failures; a row here would break the column layout

    def finish(self) -> None:
        self._out.flush()


def _vad_cells(w: WindowResult) -> tuple[str, str]:
    fraction = "" if w.speech_fraction is None else repr(float(w.speech_fraction))
    return fraction, "true" if w.non_speech else "false"
