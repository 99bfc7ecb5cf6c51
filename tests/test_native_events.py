"""The event tracker and the stream summary in C (``edgeser_event_tracker``, ``edgeser_summary``
through ``edgeser.frontend``): the decisions ``edgeser.events.EventTracker`` made in Python before
(the oracle below) on random window sequences, hysteresis, the NumPy reference backend, and the
summary's means and counts; validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import edgeser.frontend as fe
from edgeser.errors import FrontendError
from edgeser.events import EventSettings, EventTracker
from edgeser.frontend import reference
from edgeser.results import Event, WindowResult
from edgeser.scoring import Scorer, SummaryAccumulator


def old_events(windows, threshold, min_duration, merge_gap):
    """edgeser.events.EventTracker's rule as it was in Python: (start, stop, p or None)."""
    out, current = [], None

    def close():
        start, stop, peak, ps, pe, n = current
        if stop - start >= min_duration:
            out.append((start, stop, peak, ps, pe, n))

    for start, stop, p in windows:
        if current is not None and start - current[1] > merge_gap:
            close()
            current = None
        if p is None or p < threshold:
            continue
        if current is None:
            current = [start, stop, p, start, stop, 1]
        else:
            current[1] = max(current[1], stop)
            current[5] += 1
            if p > current[2]:
                current[2:5] = [p, start, stop]
    if current is not None:
        close()
    return out


def hysteresis_events(windows, threshold, release, min_duration, merge_gap):
    """The hysteresis rule stated offline: activity first (a run starts at the threshold and
    continues while windows reach the release), then the union of the active windows."""
    active, on = [], False
    for start, stop, p in windows:
        on = p is not None and p >= (release if on else threshold)
        active.append((start, stop, p if on else None))
    return old_events(active, -math.inf, min_duration, merge_gap)


def random_windows(rng, n, hop, length):
    p = rng.random(n)
    p = np.where(rng.random(n) < 0.5, (p + np.roll(p, 1)) / 2, p)  # runs
    silent = rng.random(n) < 0.08
    return [(k * hop, k * hop + length, None if silent[k] else float(p[k])) for k in range(n)]


def run(tracker, windows):
    out = []
    for start, stop, p in windows:
        span = tracker.add(start, stop, p)
        if span is not None:
            out.append(span)
    span = tracker.finish()
    return out + ([span] if span is not None else [])


def as_tuples(spans):
    return [(s.start, s.stop, s.peak, s.peak_start, s.peak_stop, s.windows) for s in spans]


@pytest.mark.parametrize("seed", range(40))
def test_events_equal_the_python_rule(seed):
    rng = np.random.default_rng(seed)
    hop = 320 * int(rng.integers(1, 20))
    length = hop * int(rng.integers(1, 5))
    windows = random_windows(rng, int(rng.integers(1, 300)), hop, length)
    threshold = float(rng.uniform(0.2, 0.8))
    min_duration = int(rng.integers(0, 4)) * length
    merge_gap = int(rng.integers(0, 5)) * hop
    got = run(fe.EventTracker(threshold, min_duration=min_duration, merge_gap=merge_gap),
              windows)
    assert as_tuples(got) == old_events(windows, threshold, min_duration, merge_gap)


@pytest.mark.parametrize("seed", range(40))
def test_hysteresis_equals_activity_then_union(seed):
    rng = np.random.default_rng(100 + seed)
    hop = 4000
    windows = random_windows(rng, 200, hop, 16000)
    threshold = float(rng.uniform(0.4, 0.9))
    release = threshold - float(rng.uniform(0.0, 0.3))
    merge_gap = int(rng.integers(0, 4)) * hop
    got = run(fe.EventTracker(threshold, release=release, merge_gap=merge_gap), windows)
    assert as_tuples(got) == hysteresis_events(windows, threshold, release, 0, merge_gap)
    ref = run(reference.StreamEvents(threshold, release, 0, merge_gap), windows)
    assert [tuple(e) for e in ref] == as_tuples(got)


def test_hysteresis_keeps_a_run_going_above_the_release():
    probabilities = [0.2, 0.8, 0.6, 0.55, 0.3, 0.6, 0.9, 0.45, 0.7]
    windows = [(k * 16000, (k + 1) * 16000, p) for k, p in enumerate(probabilities)]
    plain = run(fe.EventTracker(0.7), windows)
    assert [(e.start, e.stop) for e in plain] == [(16000, 32000), (96000, 112000),
                                                   (128000, 144000)]
    held = run(fe.EventTracker(0.7, release=0.5), windows)
    assert [(e.start, e.stop, e.windows) for e in held] == [(16000, 64000, 3), (96000, 112000, 1),
                                                             (128000, 144000, 1)]


def window(index, p, hop=4000, length=16000):
    start = index * hop
    scores = None if p is None else {"other": 1 - p, "laughter": p}
    return WindowResult(index, start, start + length, -20.0, p is None, scores, None)


def test_event_tracker_of_the_runtime_takes_a_release():
    tracker = EventTracker(EventSettings("laughter", 0.7, 0, 0, release=0.5))
    events = []
    for i, p in enumerate([0.8, 0.6, 0.6, 0.4, 0.6]):
        events += tracker.add(window(i, p, hop=16000))
    events += tracker.finish()
    assert events == [Event("laughter", 0, 48000, 0.8, 0, 16000, 3)]
    with pytest.raises(FrontendError, match="release"):
        EventTracker(EventSettings("laughter", 0.5, 0, 0, release=0.6))


def test_tracker_validation():
    with pytest.raises(FrontendError, match="threshold"):
        fe.EventTracker(math.nan)
    with pytest.raises(FrontendError, match="merge gap"):
        fe.EventTracker(0.5, merge_gap=-1)
    t = fe.EventTracker(0.5)
    t.add(100, 200, 0.9)
    with pytest.raises(FrontendError, match="in order"):
        t.add(99, 200, 0.9)
    with pytest.raises(FrontendError, match="end after"):
        t.add(300, 300, 0.9)
    with pytest.raises(FrontendError, match="probability"):
        t.add(300, 400, math.nan)
    assert t.finish() == fe.EventSpan(100, 200, 0.9, 100, 200, 1)
    with pytest.raises(FrontendError, match="ended"):
        t.add(400, 500, 0.9)
    t.reset()
    assert t.add(0, 10, 0.9) is None


def test_summary_means_counts_and_top():
    rng = np.random.default_rng(7)
    values = rng.random((50, 4))
    silent = rng.random(50) < 0.2
    summary = fe.StreamSummary(4)
    for row, s in zip(values, silent):
        summary.add_window(None if s else row)
    summary.add_event(100, 16100)
    summary.add_event(20000, 28000)
    t = summary.totals()
    voiced = values[~silent]
    assert (t.windows, t.voiced, t.silent, t.events) == (50, len(voiced), int(silent.sum()), 2)
    np.testing.assert_allclose(t.means, voiced.mean(axis=0), rtol=0, atol=1e-12)
    assert t.top == int(np.argmax(voiced.mean(axis=0)))
    assert t.event_samples == 24000 and t.event_s == 1.5
    empty = fe.StreamSummary(2)
    empty.add_window(None)
    assert empty.totals().means is None and empty.totals().top is None
    with pytest.raises(FrontendError, match="outputs"):
        summary.add_window([1.0, 2.0])
    with pytest.raises(FrontendError, match="before it starts"):
        summary.add_event(10, 5)
    with pytest.raises(FrontendError, match="output count"):
        fe.StreamSummary(0)


def test_summary_accumulator_keeps_its_interface():
    acc = SummaryAccumulator(Scorer(("a", "b"), "class-logits"))
    acc.add_window({"a": 0.25, "b": 0.75})
    acc.add_window(None)
    acc.add_window({"a": 0.5, "b": 0.5})
    acc.add_event(0, 8000)
    assert (acc.windows, acc.voiced, acc.events, acc.event_samples) == (3, 2, 1, 8000)
    s = acc.summary()
    assert s.scores == {"a": 0.375, "b": 0.625} and s.top_label == "b"
    assert (s.windows, s.voiced_windows, s.events, s.event_s) == (3, 2, 1, 0.5)


def test_reference_summary_equals_native():
    if not fe.NATIVE:
        pytest.skip("edgeser._native is not built")
    rng = np.random.default_rng(8)
    native, ref = fe.StreamSummary(3), reference.StreamSummary(3)
    for _ in range(100):
        row = None if rng.random() < 0.1 else [float(v) for v in rng.random(3)]
        native.add_window(row)
        ref.add_window(row)
    t = native.totals()
    windows, voiced, events, samples, top, means = ref.totals()
    assert (t.windows, t.voiced, t.events, t.event_samples, t.top) == (
        windows, voiced, events, samples, top)
    assert list(t.means) == means  # the same float64 sums in the same order
