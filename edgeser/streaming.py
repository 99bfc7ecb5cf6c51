"""The detection pipeline as a stream: chunks of audio in, scored windows and events out.

File mode and live streams run through the same :class:`DetectionStream`, so they give the same
windows and (up to batching) the same numbers. Per chunk: mixdown to mono, the native streaming
resampler to 16 kHz (bit-identical to one-shot resampling for any chunking), then
:class:`WindowCutter` cuts windows exactly as :func:`edgeser.frontend.windows` does over the whole
signal: full windows every hop, each as soon as its last sample exists, and at the end one short
window for the tail no full window covered. Each window is gated on its raw level, normalised,
batched with windows of equal length and inferred.

Memory is constant in the stream's length: the cutter keeps at most one window plus the last
chunk, pending windows are at most one batch, and summaries are running sums.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeser import frontend
from edgeser.errors import AudioError, DetectionError
from edgeser.events import EventTracker
from edgeser.results import Event, FileEnd, WindowResult
from edgeser.scoring import Scorer, SummaryAccumulator

__all__ = ["DetectionStream", "StreamStep", "WindowCutter"]


class WindowCutter:
    """16 kHz samples in, ``(index, start, samples)`` windows out, with constant memory."""

    def __init__(self, window: int, hop: int, min_samples: int):
        self.window, self.hop, self.min_samples = window, hop, min_samples
        self.total = 0  # samples pushed so far
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute index of _buf[0]
        self._full = 0  # full windows emitted

    def push(self, x: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x
        self.total += len(x)
        out = []
        while self._full * self.hop + self.window <= self.total:
            start = self._full * self.hop
            offset = start - self._buf_start
            out.append((self._full, start, self._buf[offset:offset + self.window].copy()))
            self._full += 1
        self._drop_before(self._full * self.hop)
        return out

    def finish(self) -> list[tuple[int, int, np.ndarray]]:
        """The final short window, if the tail needs one (the rule of ``frontend.windows``)."""
        n = self.total
        if self._full == 0:
            start = 0
            wanted = n > 0 and n >= self.min_samples
        else:
            start = self._full * self.hop
            covered = (self._full - 1) * self.hop + self.window
            wanted = covered < n and n - start >= self.min_samples
        if not wanted:
            return []
        offset = start - self._buf_start
        return [(self._full, start, self._buf[offset:].copy())]

    def _drop_before(self, keep_from: int) -> None:
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._buf_start = keep_from


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
            self._resampler = frontend.Resampler(rate_hz)
        except frontend.FrontendError as err:
            raise AudioError(f"{source}: {err}.") from None
        self._cutter = WindowCutter(config.window, config.hop, config.min_samples)
        self._pending: list[tuple[int, int, np.ndarray]] = []
        self._summary = SummaryAccumulator(config.scorer)
        self._tracker = config.new_tracker()
        self._lock = threading.Lock()
        self._closed = False
        self.warnings: list[str] = []

    @property
    def samples(self) -> int:
        """16 kHz samples produced so far."""
        return self._cutter.total

    def feed(self, chunk: object) -> StreamStep:
        """Take the next chunk; return the windows (and events) it completed."""
        with self._owned():
            mono = self._mono(chunk)
            self._pending += self._cutter.push(self._resampled(self._resampler.process(mono)))
            if self.live or len(self._pending) >= self._config.batch_size:
                return self._drain()
            return StreamStep()

    def close(self) -> StreamStep:
        """End the stream: the last windows, the remaining events and the :class:`FileEnd`."""
        with self._owned():
            self._closed = True
            self._pending += self._cutter.push(self._resampled(self._resampler.flush()))
            self._pending += self._cutter.finish()
            if self._summary.windows == 0 and not self._pending:
                raise AudioError(self._too_short())
            step = self._drain()
            events = step.events
            if self._tracker is not None:
                events += self._record(self._tracker.finish())
            end = FileEnd(self.source, self.rate_hz, self.channels, self._cutter.total,
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

    def _resampled(self, x: np.ndarray) -> np.ndarray:
        # Finite input can still overflow float32 in the filter (samples near its maximum).
        if x.size and not np.isfinite(x).all():
            raise AudioError(f"{self.source}: samples near the float32 maximum overflow when "
                             "resampled; scale the audio to [-1, 1].")
        return x

    def _too_short(self) -> str:
        n = self._cutter.total
        if n == 0:
            return f"{self.source}: holds no audio, so there is nothing to detect."
        return (f"{self.source}: {n / 16000:.4f} s of audio is shorter than one model frame "
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

    def _infer(self, pending: list[tuple[int, int, np.ndarray]]) -> list[WindowResult]:
        c = self._config
        levels = [frontend.rms_dbfs(x) for _, _, x in pending]
        voiced = [i for i, level in enumerate(levels) if level >= c.silence_dbfs]
        scored: dict[int, tuple[dict[str, float], str | None]] = {}
        by_length: dict[int, list[int]] = {}
        for i in voiced:
            by_length.setdefault(len(pending[i][2]), []).append(i)
        for members in by_length.values():
            for b in range(0, len(members), c.batch_size):
                batch = members[b:b + c.batch_size]
                x = np.stack([frontend.normalize(pending[i][2]) if c.normalize else pending[i][2]
                              for i in batch])
                logits, _ = c.run(x)
                scored.update(zip(batch, c.scorer(logits)))
        out = []
        for i, (index, start, x) in enumerate(pending):
            scores, top = scored.get(i, (None, None))
            out.append(WindowResult(index, start, start + len(x), levels[i], i not in scored,
                                    scores, top))
        return out


class _Release:
    def __init__(self, lock: threading.Lock):
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._lock.release()
