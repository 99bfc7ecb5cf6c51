"""The detection pipeline as a stream: chunks of audio in, scored windows and events out.

File mode and live streams run through the same :class:`DetectionStream`, so they give the same
windows and (up to batching) the same numbers. Per chunk: mixdown to mono, then the frontend's
:class:`~edgeser.frontend.Windower` (the native ``edgeser_windower``): the streaming resampler to
16 kHz (bit-identical to one-shot resampling for any chunking), windows exactly as
:func:`edgeser.frontend.windows` cuts them over the whole signal (full windows every hop, each
as soon as its last sample exists, and at the end one short window for the tail no full window
covered), each with its raw level for the silence gate and normalised when the bundle says so.
Voiced windows are batched with windows of equal length and inferred; silent ones are reported,
not scored. Events and the summary come from the native event tracker and summary too
(:mod:`edgeser.events`, :mod:`edgeser.scoring`).

Memory is constant in the stream's length: the windower keeps at most one window plus one block
of resampled samples, pending windows are at most one batch, and summaries are running sums.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeser import frontend
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import AudioError, DetectionError
from edgeser.events import EventTracker
from edgeser.results import Event, FileEnd, WindowResult
from edgeser.scoring import Scorer, SummaryAccumulator

__all__ = ["DetectionStream", "StreamStep", "WindowCutter"]


class WindowCutter:
    """16 kHz samples in, ``(index, start, samples)`` raw windows out, with constant memory: the
    frontend's :class:`~edgeser.frontend.Windower` at 16 kHz (where the resampler is the
    identity) without normalisation. :class:`DetectionStream` uses the windower directly."""

    def __init__(self, window: int, hop: int, min_samples: int):
        self.window, self.hop, self.min_samples = window, hop, min_samples
        self._windower = frontend.Windower(SAMPLE_RATE_HZ, window, hop, min_samples=min_samples,
                                           normalize=False)

    @property
    def total(self) -> int:
        """Samples pushed so far (after :meth:`finish`, all of them)."""
        return self._windower.samples

    def push(self, x: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        return [(w.index, w.start, w.samples) for w in self._windower.push(x)]

    def finish(self) -> list[tuple[int, int, np.ndarray]]:
        """The windows the end completes: the last full one and the final short window, if the
        tail needs one (the rule of ``frontend.windows``)."""
        return [(w.index, w.start, w.samples) for w in self._windower.finish()]


@dataclass(frozen=True)
class StreamStep:
    """What one :meth:`DetectionStream.feed` (or :meth:`~DetectionStream.close`) produced:
    windows now complete and inferred, events now closed, and at close the stream's end."""

    windows: tuple[WindowResult, ...] = ()
    events: tuple[Event, ...] = ()
    end: FileEnd | None = field(default=None, hash=False)


@dataclass(frozen=True)
class StreamConfig:
    """Everything a stream needs from its detector (built by :class:`edgeser.detector.Detector`)."""

    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    scorer: Scorer
    window: int
    hop: int
    min_samples: int
    silence_dbfs: float
    normalize: bool
    batch_size: int
    new_tracker: Callable[[], EventTracker | None]


class DetectionStream:
    """Feed chunks with :meth:`feed`, end with :meth:`close`.

    ``live=True`` infers every window as soon as it is complete (lowest latency);
    ``live=False`` (file mode) collects up to ``batch_size`` windows per inference call.
    Chunks are mono 1-D arrays or ``(frames, channels)`` arrays at ``rate_hz``. A stream belongs to
    one thread at a time: concurrent calls are refused with :class:`DetectionError`.
    """

    def __init__(self, config: StreamConfig, rate_hz: int, channels: int = 1, *,
                 source: str = "<stream>", live: bool = True):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise DetectionError(f"{source}: channel count must be a positive integer, "
                                 f"got {channels!r}.")
        self.source = source
        self.rate_hz = int(rate_hz)
        self.channels = channels
        self.live = live
        self._config = config
        try:
            self._windower = frontend.Windower(
                rate_hz, config.window, config.hop, min_samples=config.min_samples,
                silence_dbfs=config.silence_dbfs, normalize=config.normalize)
        except frontend.FrontendError as err:
            raise AudioError(f"{source}: {err}.") from None
        self._pending: list[frontend.PreparedWindow] = []
        self._summary = SummaryAccumulator(config.scorer)
        self._tracker = config.new_tracker()
        self._lock = threading.Lock()
        self._closed = False
        self.warnings: list[str] = []

    @property
    def samples(self) -> int:
        """16 kHz samples produced so far."""
        return self._windower.samples

    def feed(self, chunk: object) -> StreamStep:
        """Take the next chunk; return the windows (and events) it completed."""
        with self._owned():
            mono = self._mono(chunk)
            self._pending += self._checked(self._windower.push(mono))
            if self.live or len(self._pending) >= self._config.batch_size:
                return self._drain()
            return StreamStep()

    def close(self) -> StreamStep:
        """End the stream: the last windows, the remaining events and the :class:`FileEnd`."""
        with self._owned():
            self._closed = True
            self._pending += self._checked(self._windower.finish())
            if self._summary.windows == 0 and not self._pending:
                raise AudioError(self._too_short())
            step = self._drain()
            events = step.events
            if self._tracker is not None:
                events += self._record(self._tracker.finish())
            end = FileEnd(self.source, self.rate_hz, self.channels, self._windower.samples,
                          self._summary.summary(), tuple(self.warnings))
            return StreamStep(step.windows, events, end)

    # -- internals -----------------------------------------------------------------------------

    def _owned(self):
        if not self._lock.acquire(blocking=False):
            raise DetectionError(
                f"{self.source}: this detection stream is in use by another thread; "
                "use one stream per thread."
            )
        if self._closed:
            self._lock.release()
            raise DetectionError(f"{self.source}: this detection stream is closed.")
        return _Release(self._lock)

    def _mono(self, chunk: object) -> np.ndarray:
        arr = np.asarray(chunk)
        if arr.ndim == 2 and arr.shape[1] != self.channels:
            raise DetectionError(f"{self.source}: a chunk has {arr.shape[1]} channels, the stream "
                                 f"{self.channels}.")
        if arr.ndim not in (1, 2) or (arr.ndim == 1 and self.channels != 1):
            raise DetectionError(f"{self.source}: chunks must be (frames, {self.channels}) arrays"
                                 + (" or 1-D mono arrays" if self.channels == 1 else "")
                                 + f", got shape {arr.shape}.")
        try:
            return frontend.to_mono(arr)
        except frontend.FrontendError as err:
            raise AudioError(f"{self.source}: {err}.") from None

    def _checked(self, windows: list[frontend.PreparedWindow]) -> list[frontend.PreparedWindow]:
        # Finite input can still overflow float32 in the filter (samples near its maximum).
        for w in windows:
            if not (np.isfinite(w.level_dbfs) and np.isfinite(w.samples).all()):
                raise AudioError(f"{self.source}: samples near the float32 maximum overflow "
                                 "when resampled; scale the audio to [-1, 1].")
        return windows

    def _too_short(self) -> str:
        n = self._windower.samples
        if n == 0:
            return f"{self.source}: holds no audio, so there is nothing to detect."
        return (f"{self.source}: {n / SAMPLE_RATE_HZ:.4f} s of audio is shorter than one model frame "
                f"({self._config.min_samples} samples at 16 kHz), so there is nothing to detect.")

    def _drain(self) -> StreamStep:
        pending, self._pending = self._pending, []
        windows = self._infer(pending)
        events: list[Event] = []
        for w in windows:
            self._summary.add_window(w.scores)
            if self._tracker is not None:
                events += self._record(self._tracker.add(w))
        return StreamStep(tuple(windows), tuple(events))

    def _record(self, events: list[Event]) -> tuple[Event, ...]:
        for e in events:
            self._summary.add_event(e.start, e.stop)
        return tuple(events)

    def _infer(self, pending: list[frontend.PreparedWindow]) -> list[WindowResult]:
        c = self._config
        scored: dict[int, tuple[dict[str, float], str | None]] = {}
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(pending):
            if not w.silent:
                by_length.setdefault(w.length, []).append(i)
        for members in by_length.values():
            for b in range(0, len(members), c.batch_size):
                batch = members[b:b + c.batch_size]
                logits, _ = c.run(np.stack([pending[i].samples for i in batch]))
                scored.update(zip(batch, c.scorer(logits)))
        out = []
        for i, w in enumerate(pending):
            scores, top = scored.get(i, (None, None))
            out.append(WindowResult(w.index, w.start, w.stop, w.level_dbfs, i not in scored,
                                    scores, top))
        return out


class _Release:
    def __init__(self, lock: threading.Lock):
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._lock.release()
