"""Laughter events from per-window probabilities, decided as the windows arrive.

An event is the union of windows whose positive-class probability reaches the threshold; a gap of
up to ``merge_gap`` samples between two such runs is bridged (one laugh bout with a breath in it
is one event), and events shorter than ``min_duration`` samples are dropped. Boundaries are window
boundaries, so they are exact sample indices. Silent windows count as not laughing.

The tracker is incremental: an event is closed, and returned, as soon as no later window could
extend it (a window starting more than ``merge_gap`` after its end has been seen), so a live
stream reports each laugh at most one gap and one window after it ends, and file mode and
streaming decide identically.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeser.results import Event, WindowResult

__all__ = ["EventSettings", "EventTracker"]


@dataclass(frozen=True)
class EventSettings:
    """Decision settings, in 16 kHz samples and probability."""

    label: str
    threshold: float
    min_duration: int
    merge_gap: int


class EventTracker:
    def __init__(self, settings: EventSettings):
        self.settings = settings
        self._open: list | None = None  # [start, stop, peak, peak_start, peak_stop, windows]

    def add(self, window: WindowResult) -> list[Event]:
        """Take the next window (in index order); return the events it closes."""
        closed: list[Event] = []
        s = self.settings
        if self._open is not None and window.start - self._open[1] > s.merge_gap:
            closed += self._close()
        if window.scores is None or window.scores[s.label] < s.threshold:
            return closed
        p = window.scores[s.label]
        if self._open is None:
            self._open = [window.start, window.stop, p, window.start, window.stop, 1]
        else:
            current = self._open
            current[1] = max(current[1], window.stop)
            current[5] += 1
            if p > current[2]:
                current[2:5] = [p, window.start, window.stop]
        return closed

    def finish(self) -> list[Event]:
        """The stream ended: close the open event, if any."""
        return self._close() if self._open is not None else []

    def _close(self) -> list[Event]:
        start, stop, peak, peak_start, peak_stop, windows = self._open
        self._open = None
        if stop - start < self.settings.min_duration:
            return []
        return [Event(self.settings.label, start, stop, peak, peak_start, peak_stop, windows)]
