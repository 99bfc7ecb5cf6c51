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

With noise suppression or voice activity gating the resampler runs on its own first: the 16 kHz
stream goes through the suppressor (its latency removed, so sample j is still the input at
j / 16000 s) and then both to the windower (at 16 kHz, where its resampler is the identity) and
to the VAD (:mod:`edgeser.vad`), which judges it in fixed 512-sample chunks; a window waits until
the VAD has judged all of its samples, then carries its speech fraction, and one below the
minimum is reported as non-speech, not scored. Chunk sizes change none of this, so file and
stream results stay equal.

Memory is constant in the stream's length: the windower keeps at most one window plus one block
of resampled samples, pending windows are at most one batch, and summaries are running sums.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeser import frontend, vad
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import AudioError, DetectionError
from edgeser.events import EventTracker
from edgeser.results import Event, FileEnd, WindowResult
from edgeser.scoring import Scorer, SummaryAccumulator

__all__ = ["DetectionStream", "StreamStep", "WindowCutter"]

_OVERFLOW = "samples near the float32 maximum overflow when resampled; scale the audio to [-1, 1]."


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
    # Voice activity gating: the loaded model and the minimum speech fraction (None: no VAD).
    vad_model: vad.VadModel | None = None
    min_speech: float | None = None
    # Noise suppression on the 16 kHz stream: a new suppressor per stream (None: none).
    new_denoiser: Callable[[], object] | None = None
    keep_embeddings: bool = False  # each scored window carries its pooled embedding


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
        separate = config.new_denoiser is not None or config.vad_model is not None
        try:
            self._front = _Front(rate_hz, config.new_denoiser) if separate else None
            self._windower = frontend.Windower(
                SAMPLE_RATE_HZ if separate else rate_hz, config.window, config.hop,
                min_samples=config.min_samples, silence_dbfs=config.silence_dbfs,
                normalize=config.normalize)
        except frontend.FrontendError as err:
            raise AudioError(f"{source}: {err}.") from None
        self._vad = None if config.vad_model is None else vad.VoiceActivity(config.vad_model)
        self._speech = vad.SpeechTrack()
        self._waiting: list[frontend.PreparedWindow] = []  # complete, not yet judged by the VAD
        self._fractions: dict[int, float] = {}  # window index -> speech fraction
        self._non_speech = 0
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
            self._pending += self._judged(self._checked(self._push(mono)))
            if self.live or len(self._pending) >= self._config.batch_size:
                return self._drain()
            return StreamStep()

    def close(self) -> StreamStep:
        """End the stream: the last windows, the remaining events and the :class:`FileEnd`."""
        with self._owned():
            self._closed = True
            self._pending += self._judged(self._checked(self._finish()))
            if self._summary.windows == 0 and not self._pending:
                raise AudioError(self._too_short())
            step = self._drain()
            events = step.events
            if self._tracker is not None:
                events += self._record(self._tracker.finish())
            summary = self._summary.summary()
            if self._vad is not None:
                summary = dataclasses.replace(summary, non_speech_windows=self._non_speech)
            end = FileEnd(self.source, self.rate_hz, self.channels, self._windower.samples,
                          summary, tuple(self.warnings))
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

    def _push(self, mono: np.ndarray) -> list[frontend.PreparedWindow]:
        if self._front is None:
            return self._windower.push(mono)
        return self._push16k(self._front.process(mono, self.source))

    def _finish(self) -> list[frontend.PreparedWindow]:
        windows = [] if self._front is None else self._push16k(self._front.flush(self.source))
        windows += self._windower.finish()
        if self._vad is not None:
            self._speech.add(self._vad.finish())
        return windows

    def _push16k(self, x: np.ndarray) -> list[frontend.PreparedWindow]:
        if self._vad is not None:
            self._speech.add(self._vad.push(x))
        return self._windower.push(x)

    def _judged(self, windows: list[frontend.PreparedWindow]) -> list[frontend.PreparedWindow]:
        """The windows whose samples the VAD has all judged, with their speech fractions kept;
        the others wait (at most the 511 samples of an incomplete VAD chunk)."""
        if self._vad is None:
            return windows
        self._waiting += windows
        ready = 0
        while ready < len(self._waiting) and self._waiting[ready].stop <= self._speech.covered:
            w = self._waiting[ready]
            self._fractions[w.index] = self._speech.fraction(w.start, w.stop)
            ready += 1
        out, self._waiting = self._waiting[:ready], self._waiting[ready:]
        return out

    def _checked(self, windows: list[frontend.PreparedWindow]) -> list[frontend.PreparedWindow]:
        # Finite input can still overflow float32 in the filter (samples near its maximum).
        for w in windows:
            if not (np.isfinite(w.level_dbfs) and np.isfinite(w.samples).all()):
                raise AudioError(f"{self.source}: {_OVERFLOW}")
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
            self._non_speech += w.non_speech
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
        embedded: dict[int, np.ndarray] = {}
        by_length: dict[int, list[int]] = {}
        fractions = [self._fractions.pop(w.index, None) for w in pending]
        non_speech = [f is not None and f < c.min_speech for f in fractions]
        for i, w in enumerate(pending):
            if not (w.silent or non_speech[i]):
                by_length.setdefault(w.length, []).append(i)
        for members in by_length.values():
            for b in range(0, len(members), c.batch_size):
                batch = members[b:b + c.batch_size]
                logits, embedding = c.run(np.stack([pending[i].samples for i in batch]))
                scored.update(zip(batch, c.scorer(logits)))
                if c.keep_embeddings:
                    for i, row in zip(batch, np.array(embedding, np.float32)):
                        row.flags.writeable = False
                        embedded[i] = row
        out = []
        for i, w in enumerate(pending):
            scores, top = scored.get(i, (None, None))
            out.append(WindowResult(w.index, w.start, w.stop, w.level_dbfs, w.silent,
                                    scores, top, fractions[i], non_speech[i] and not w.silent,
                                    embedded.get(i)))
        return out


class _Front:
    """Input rate to 16 kHz, then the noise suppressor when there is one, with its latency
    removed: the first ``latency_samples`` it gives are dropped and its flush supplies the last,
    so as many samples come out as the resampler gave, each at its own time."""

    def __init__(self, rate_hz: int, new_denoiser: Callable[[], object] | None):
        self._resampler = frontend.Resampler(rate_hz)
        self._denoiser = None if new_denoiser is None else new_denoiser()
        self._skip = 0 if self._denoiser is None else int(self._denoiser.latency_samples)

    def process(self, mono: np.ndarray, source: str) -> np.ndarray:
        return self._denoised(self._finite(self._resampler.process(mono), source))

    def flush(self, source: str) -> np.ndarray:
        x = self._denoised(self._finite(self._resampler.flush(), source))
        if self._denoiser is None:
            return x
        return np.concatenate([x, self._aligned(self._denoiser.flush())])

    def _denoised(self, x: np.ndarray) -> np.ndarray:
        return x if self._denoiser is None else self._aligned(self._denoiser.process(x))

    def _aligned(self, y: np.ndarray) -> np.ndarray:
        drop = min(self._skip, y.shape[0])
        self._skip -= drop
        return np.asarray(y[drop:], dtype=np.float32)

    @staticmethod
    def _finite(x: np.ndarray, source: str) -> np.ndarray:
        if not np.isfinite(x).all():
            raise AudioError(f"{source}: {_OVERFLOW}")
        return x


class _Release:
    def __init__(self, lock: threading.Lock):
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._lock.release()
