"""``table``: for people at a terminal.

Three shapes: ``detailed`` (one file: its windows or events as a table, then a summary),
folder runs (one summary row per file) and ``live`` (a plain line per record as it comes,
since a rich table is only drawn once it is complete).
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from edgeser.formats._common import is_laughter, is_regression, seconds_text
from edgeser.results import SAMPLE_RATE_HZ, Event, FileEnd, RunInfo, Summary, WindowResult

WIDTH_CHARS = 100  # when the output is not a terminal (a file, a pipe)


def _console(out: TextIO) -> Console:
    # Colour only on a terminal; markup and emoji off: paths and labels are printed verbatim.
    terminal = bool(getattr(out, "isatty", lambda: False)())
    return Console(file=out, force_terminal=terminal, width=None if terminal else WIDTH_CHARS,
                   highlight=False, markup=False, emoji=False)


def _span(start: int, stop: int) -> str:
    return f"{seconds_text(start)}–{seconds_text(stop)}"


def _float_seconds(value_s: float) -> str:
    """Seconds that are a whole number of samples (a total event time), without float noise."""
    return seconds_text(round(value_s * SAMPLE_RATE_HZ))


def _unscored(w: WindowResult) -> str:
    return "silent" if w.silent else "non-speech"


def _all_scores(scores, labels: tuple[str, ...]) -> str:
    return " ".join(f"{label}={scores[label]:.3f}" for label in labels)


def summary_text(run: RunInfo, s: Summary) -> str:
    parts = [f"{s.voiced_windows}/{s.windows} windows voiced"
             + (f" ({s.non_speech_windows} non-speech)" if s.non_speech_windows else "")]
    if is_laughter(run):
        parts.append(f"{s.events} {run.positive_label} event{'' if s.events == 1 else 's'}, "
                     f"{_float_seconds(s.event_s)} s in total")
    elif s.scores is None:
        parts.append("no scores")
    else:
        parts.append("mean " + _all_scores(s.scores, run.labels))
        if s.top_label is not None:
            parts.append(f"top {s.top_label}")
    return "; ".join(parts)


class LiveTableWriter:
    """A plain line per window and per event, flushed at once; a summary line per file."""

    def __init__(self, out: TextIO, run: RunInfo) -> None:
        self._out, self._run = out, run

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def window(self, source: str, w: WindowResult) -> None:
        if w.scores is None:
            scores = _unscored(w)
        else:
            scores = _all_scores(w.scores, self._run.labels)
            if w.top_label is not None:
                scores += f"  top {w.top_label}"
        if w.speech_fraction is not None:
            scores += f"  speech {w.speech_fraction:.2f}"
        self._line(f"{_span(w.start, w.stop)} s  {scores}")

    def event(self, source: str, e: Event) -> None:
        self._line(f"{e.label} {_span(e.start, e.stop)} s peak {e.peak:.2f}")

    def file_done(self, end: FileEnd) -> None:
        self._line(f"{end.source}: {summary_text(self._run, end.summary)}")
        for warning in end.warnings:
            self._line(f"{end.source}: warning: {warning}")

    def failure(self, source: str, message: str) -> None:
        self._line(f"{source}: failed")  # the sentence itself goes to stderr, once

    def finish(self) -> None:
        self._out.flush()


class DetailedTableWriter:
    """Per file: a heading, a table of its windows (or laughter events), the summary and any
    warnings. Only the current file's rows are held."""

    def __init__(self, out: TextIO, run: RunInfo) -> None:
        self._console, self._run = _console(out), run
        self._laughter, self._regression = is_laughter(run), is_regression(run)
        self._rows: list[tuple[str, ...]] = []

    def window(self, source: str, w: WindowResult) -> None:
        if self._laughter:
            return  # laughter is shown as its events
        if w.scores is None:
            scores = (_unscored(w),) + ("",) * (len(self._run.labels) - 1)
        else:
            scores = tuple(f"{w.scores[label]:.3f}" for label in self._run.labels)
        top = () if self._regression else (w.top_label or "",)
        speech = () if w.speech_fraction is None else (f"{w.speech_fraction:.2f}",)
        self._rows.append((_span(w.start, w.stop), f"{w.level_dbfs:.1f}", *speech, *scores, *top))

    def event(self, source: str, e: Event) -> None:
        self._rows.append((seconds_text(e.start), seconds_text(e.stop),
                           seconds_text(e.stop - e.start), f"{e.peak:.3f}"))

    def file_done(self, end: FileEnd) -> None:
        print_ = self._console.print
        channels = f"{end.channels} channel{'' if end.channels == 1 else 's'}"
        print_(Text(f"{end.source}: {seconds_text(end.samples)} s, {end.rate_hz} Hz, {channels}",
                    style="bold"))
        if self._rows:
            print_(self._table())
        elif self._laughter:
            print_(f"no {self._run.positive_label} above threshold {self._run.threshold:g}")
        print_(summary_text(self._run, end.summary))
        for warning in end.warnings:
            print_(f"warning: {warning}")
        self._rows = []

    def _table(self) -> Table:
        if self._laughter:
            numeric = ("start s", "end s", "duration s", "peak")
        else:
            numeric = ("time s", "level dBFS", *(("speech",) if self._run.vad else ()),
                        *self._run.labels)
        table = Table(*(Column(header, justify="right") for header in numeric))
        if not (self._laughter or self._regression):
            table.add_column("top")
        for row in self._rows:
            table.add_row(*row)
        return table

    def failure(self, source: str, message: str) -> None:
        self._rows = []
        self._console.print(f"{source}: failed")  # the sentence itself goes to stderr, once

    def finish(self) -> None:
        self._console.file.flush()


class FolderTableWriter:
    """One row per file, drawn at ``finish``; windows and events are not kept."""

    def __init__(self, out: TextIO, run: RunInfo) -> None:
        self._console, self._run = _console(out), run
        self._laughter, self._regression = is_laughter(run), is_regression(run)
        if self._laughter:
            extra = ("events", "event s")
        elif self._regression:
            extra = tuple(f"mean {label}" for label in run.labels)
        else:
            extra = ("top", "mean score")
        self._columns = ("source", "duration s", "voiced", *extra)
        self._rows: list[tuple[str, ...]] = []
        self._warnings: list[str] = []

    def window(self, source: str, w: WindowResult) -> None:
        pass

    def event(self, source: str, e: Event) -> None:
        pass

    def file_done(self, end: FileEnd) -> None:
        s = end.summary
        if self._laughter:
            extra = (str(s.events), _float_seconds(s.event_s))
        elif s.scores is None:
            extra = ("",) * (len(self._columns) - 3)
        elif self._regression:
            extra = tuple(f"{s.scores[label]:.3f}" for label in self._run.labels)
        else:
            extra = (s.top_label or "", f"{s.scores[s.top_label]:.3f}" if s.top_label else "")
        # Rounded for reading; the machine formats carry exact times.
        self._rows.append((end.source, f"{end.duration_s:.2f}", f"{s.voiced_windows}/{s.windows}",
                           *extra))
        self._warnings += (f"{end.source}: warning: {warning}" for warning in end.warnings)

    def failure(self, source: str, message: str) -> None:
        # The sentence itself goes to stderr, once; the table only marks the row.
        self._rows.append((source, "failed", *("",) * (len(self._columns) - 2)))

    def finish(self) -> None:
        table = Table()
        for column in self._columns:  # long paths and error sentences wrap, never truncate
            table.add_column(column, overflow="fold")
        for row in self._rows:
            table.add_row(*row)
        self._console.print(table)
        for line in self._warnings:
            self._console.print(line)
        self._console.file.flush()
