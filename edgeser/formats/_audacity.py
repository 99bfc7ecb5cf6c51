"""``audacity``: a label track (File > Import > Labels), one per input file, written as results
come. Laughter gives one label per event; other tasks one per voiced window."""

from __future__ import annotations

from typing import TextIO

from edgeser.formats._common import is_laughter, scores_text, seconds_text
from edgeser.results import Event, FileEnd, RunInfo, WindowResult

SCORE_DECIMALS = 2


class AudacityWriter:
    def __init__(self, out: TextIO, run: RunInfo, *, live: bool = False) -> None:
        self._out, self._run, self._live = out, run, live
        self._events_only = is_laughter(run)

    def _label(self, start: int, stop: int, text: str) -> None:
        self._out.write(f"{seconds_text(start)}\t{seconds_text(stop)}\t{text}\n")
        if self._live:
            self._out.flush()

    def window(self, source: str, w: WindowResult) -> None:
        if not self._events_only and w.scores is not None:
            self._label(w.start, w.stop, scores_text(w, self._run.labels, SCORE_DECIMALS))

    def event(self, source: str, e: Event) -> None:
        self._label(e.start, e.stop, f"{e.label} {e.peak:.{SCORE_DECIMALS}f}")

    def file_done(self, end: FileEnd) -> None:
        pass

    def failure(self, source: str, message: str) -> None:
        pass  # the caller reports it; a label track has no place for it

    def finish(self) -> None:
        self._out.flush()
