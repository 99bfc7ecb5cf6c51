"""``textgrid``: a Praat TextGrid (long text format), one per input file.

Written at ``file_done``: the grid's xmax is the file's duration, known only then. Only what
the tiers need is held (event bounds and one short mark per voiced window).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator, TextIO

from edgeser.formats._common import (centre_samples, is_laughter, is_regression, scores_text,
                                     seconds_text)
from edgeser.results import Event, FileEnd, RunInfo, WindowResult

SCORE_DECIMALS = 3
# A point or interval bound, in (possibly half) 16 kHz samples so its seconds stay exact.
Point = tuple[Fraction, str]


def _quoted(text: str) -> str:
    """Praat's string literal: a double quote inside is written twice."""
    return '"' + text.replace('"', '""') + '"'


class TextGridWriter:
    """Laughter: an interval tier named after the positive label (events, and empty gaps between
    them, covering the whole file) plus a point tier of its probability at each voiced window's
    centre. Categorical / prototypes: one point tier "emotion" ("happy 0.712"). Dimensional:
    one point tier per label."""

    def __init__(self, out: TextIO, run: RunInfo, *, live: bool = False) -> None:
        self._out, self._run, self._live = out, run, live
        self._laughter, self._regression = is_laughter(run), is_regression(run)
        if self._laughter:
            self._point_tiers = (f"{run.positive_label} probability",)
        elif self._regression:
            self._point_tiers = run.labels
        else:
            self._point_tiers = ("emotion",)
        self._reset()

    def _reset(self) -> None:
        self._events: list[tuple[int, int, str]] = []
        self._points: dict[str, list[Point]] = {name: [] for name in self._point_tiers}

    def window(self, source: str, w: WindowResult) -> None:
        if w.scores is None:  # silent or non-speech: not scored
            return
        centre = centre_samples(w)
        if self._laughter:
            marks = (f"{w.scores[self._run.positive_label]:.{SCORE_DECIMALS}f}",)
        elif self._regression:
            marks = tuple(f"{w.scores[label]:.{SCORE_DECIMALS}f}" for label in self._run.labels)
        else:
            marks = (scores_text(w, self._run.labels, SCORE_DECIMALS),)
        for name, mark in zip(self._point_tiers, marks):
            self._points[name].append((centre, mark))

    def event(self, source: str, e: Event) -> None:
        self._events.append((e.start, e.stop, e.label))

    def failure(self, source: str, message: str) -> None:
        self._reset()  # a broken stream gets no grid: its duration is unknown

    def file_done(self, end: FileEnd) -> None:
        self._out.write("".join(line + "\n" for line in self._grid(end.samples)))
        self._out.flush()
        self._reset()

    def finish(self) -> None:
        self._out.flush()

    def _grid(self, samples: int) -> Iterator[str]:
        xmax = seconds_text(samples)
        tiers = len(self._point_tiers) + (1 if self._laughter else 0)
        yield from ('File type = "ooTextFile"', 'Object class = "TextGrid"', "",
                    "xmin = 0", f"xmax = {xmax}", "tiers? <exists>", f"size = {tiers}", "item []:")
        number = 1
        if self._laughter:
            intervals = self._intervals(samples)
            yield from self._tier_head(number, "IntervalTier", self._run.positive_label, xmax)
            yield f"        intervals: size = {len(intervals)}"
            for i, (start, stop, text) in enumerate(intervals, 1):
                yield from (f"        intervals [{i}]:", f"            xmin = {seconds_text(start)}",
                            f"            xmax = {seconds_text(stop)}", f"            text = {_quoted(text)}")
            number += 1
        for name in self._point_tiers:
            points = self._clamped(self._points[name], samples)
            yield from self._tier_head(number, "TextTier", name, xmax)
            yield f"        points: size = {len(points)}"
            for i, (time, mark) in enumerate(points, 1):
                yield from (f"        points [{i}]:", f"            number = {seconds_text(time)}",
                            f"            mark = {_quoted(mark)}")
            number += 1

    @staticmethod
    def _tier_head(number: int, kind: str, name: str, xmax: str) -> Iterator[str]:
        yield from (f"    item [{number}]:", f'        class = "{kind}"', f"        name = {_quoted(name)}",
                    "        xmin = 0", f"        xmax = {xmax}")

    def _intervals(self, samples: int) -> list[tuple[int, int, str]]:
        """Events and the gaps between them, tiling [0, samples] exactly as Praat requires.
        Bounds are clipped to the file: the last window may reach past its end (padding)."""
        intervals: list[tuple[int, int, str]] = []
        cursor = 0
        for start, stop, label in self._events:
            start, stop = max(min(start, samples), cursor), min(stop, samples)
            if stop <= start:
                continue
            if start > cursor:
                intervals.append((cursor, start, ""))
            intervals.append((start, stop, label))
            cursor = stop
        if cursor < samples or not intervals:
            intervals.append((cursor, samples, ""))
        return intervals

    @staticmethod
    def _clamped(points: list[Point], samples: int) -> list[Point]:
        """A padded last window's centre can fall past the end of the file; such a point moves to
        the end, and is dropped if another point already sits there (tier times must increase)."""
        kept: list[Point] = []
        for time, mark in points:
            time = min(time, Fraction(samples))
            if not kept or time > kept[-1][0]:
                kept.append((time, mark))
        return kept
