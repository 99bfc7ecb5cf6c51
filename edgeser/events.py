"""Laughter events from per-window probabilities, decided as the windows arrive.

An event is the union of windows whose positive-class probability reaches the threshold; a gap of
up to ``merge_gap`` samples between two such runs is bridged (one laugh bout with a breath in it
is one event), and events shorter than ``min_duration`` samples are dropped. With hysteresis
(``release`` below ``threshold``), a run that has started continues through windows that reach
``release``. Boundaries are window boundaries, so they are exact sample indices. Silent windows
count as not laughing.

The tracker is incremental: an event is closed, and returned, as soon as no later window could
extend it (a window starting more than ``merge_gap`` after its end has been seen), so a live
stream reports each laugh at most one gap and one window after it ends, and file mode and
streaming decide identically. The decisions are made by the native event tracker
(``edgeser_event_tracker`` through :class:`edgeser.frontend.EventTracker`; its NumPy reference
where the compiled module is missing), the same code firmware runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeser import frontend
from edgeser.results import Event, WindowResult

__all__ = ["EventSettings", "EventTracker"]


@dataclass(frozen=True)
class EventSettings:
    """Decision settings, in 16 kHz samples and probability. ``release`` (hysteresis) defaults
    to ``threshold``: no hysteresis."""

    label: str
    threshold: float
    min_duration: int
    merge_gap: int
    release: float | None = None


class EventTracker:
    def __init__(self, settings: EventSettings):
        self.settings = settings
        self._tracker = frontend.EventTracker(settings.threshold, release=settings.release,
                                              min_duration=settings.min_duration,
                                              merge_gap=settings.merge_gap)

    def add(self, window: WindowResult) -> list[Event]:
        """Take the next window (in index order); return the events it closes."""
        p = None if window.scores is None else window.scores[self.settings.label]
        return self._events(self._tracker.add(window.start, window.stop, p))

    def finish(self) -> list[Event]:
        """The stream ended: close the open event, if any."""
        return self._events(self._tracker.finish())

    def _events(self, span: frontend.EventSpan | None) -> list[Event]:
        if span is None:
            return []
        return [Event(self.settings.label, span.start, span.stop, span.peak, span.peak_start,
                      span.peak_stop, span.windows)]
