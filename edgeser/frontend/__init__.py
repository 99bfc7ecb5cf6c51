"""The signal frontend: PCM conversion, mixdown, resampling to 16 kHz, normalisation, windows.

Three layers, as for any native code here: the C header (``native/include/edgeser/frontend.h``),
a thin wrapper (``_binding``), and this NumPy-facing API, which validates every argument in
Python (rates, lengths, NaN/Inf) before C sees it and raises one exception type,
:class:`edgeser.errors.FrontendError`.

The backend is chosen once, here at import: ``_native_backend`` (the primitives over the C
library) or, when the compiled module is missing, ``reference`` (the same primitives in NumPy;
``_binding`` says so loudly). Every function below validates and then delegates to ``_backend``;
none asks which backend it has. The contract's constants come from :mod:`edgeser.contract`.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field

import numpy as np

from edgeser.contract import (
    FRAME_SAMPLES,
    MIN_WINDOW_SAMPLES,
    SAMPLE_FORMAT_BYTES,
    SAMPLE_FORMATS,
    SAMPLE_RATE_HZ,
)
from edgeser.errors import FrontendError
from edgeser.frontend import reference
from edgeser.frontend._binding import NATIVE

# The one choice of backend: modules with the same primitives (see _native_backend).
if NATIVE:
    from edgeser.frontend import _native_backend as _backend
else:
    _backend = reference

BACKEND = "native" if NATIVE else "numpy"

TARGET_RATE_HZ = SAMPLE_RATE_HZ  # the models' rate; the contract's name is SAMPLE_RATE_HZ
MIN_RATE_HZ = reference.MIN_RATE_HZ
MAX_RATE_HZ = reference.MAX_RATE_HZ
_BYTES_PER_SAMPLE = SAMPLE_FORMAT_BYTES
# The largest values of the C API's integer types (channels are uint32_t, lengths size_t):
# larger arguments are refused here, where cffi would raise OverflowError.
_UINT32_MAX = 2**32 - 1
_SIZE_MAX = 2 * sys.maxsize + 1

_UINT64_MAX = 2**64 - 1

__all__ = [
    "BACKEND", "FRAME_SAMPLES", "MIN_WINDOW_SAMPLES", "TARGET_RATE_HZ", "EventSpan",
    "EventTracker", "FrontendError", "PreparedWindow", "Resampler", "ResamplerInfo",
    "StreamSummary", "SummaryTotals", "Window", "Windower", "normalize", "pcm_to_float",
    "resample", "rms_dbfs", "seconds_to_samples", "to_mono", "windows",
]


def _rate(rate_hz: object) -> int:
    """Validate an input rate: an integral number in MIN_RATE_HZ..MAX_RATE_HZ."""
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, numbers.Real):
        raise FrontendError(f"sample rate must be a number of Hz, got {rate_hz!r}")
    value = float(rate_hz)
    if not math.isfinite(value) or value != int(value):
        raise FrontendError(f"sample rate must be a whole number of Hz, got {rate_hz!r}")
    if not MIN_RATE_HZ <= value <= MAX_RATE_HZ:
        raise FrontendError(
            f"sample rate {int(value)} Hz is outside the supported {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz"
        )
    return int(value)


def _count(value: object, what: str, low: int = 0, high: int = _SIZE_MAX) -> int:
    """Validate an integer count in low..high (the C type's range)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not low <= value <= high:
        raise FrontendError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _samples(x: object, name: str = "samples", ndim: int = 1) -> np.ndarray:
    """Contiguous finite float32 array of the given rank."""
    try:
        arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise FrontendError(f"{name} must be numeric audio samples ({exc})") from None
    if arr.ndim != ndim:
        raise FrontendError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        first = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
        raise FrontendError(f"{name} contain NaN or Inf (first at index {first})")
    return arr


@dataclass(frozen=True)
class ResamplerInfo:
    """What a resampler does for one input rate (mirrors ``edgeser_resampler_info``).

    ``stages`` describes each filter stage the same way (one stage for 16 kHz, rates below it
    and multiples of it; two, via 32 kHz, for other rates above it). For two stages
    ``taps_per_phase`` is the span of the two filters composed, in input samples, and
    ``phases`` the first stage's."""

    rate_in_hz: int
    rate_out_hz: int
    up: int
    down: int
    taps_per_phase: int
    phases: int
    exact: bool
    passband_hz: float
    stopband_hz: float
    stopband_db: float
    table_bytes: int
    stages: tuple[ResamplerInfo, ...] = ()


class Resampler:
    """Streaming resampler from ``rate_hz`` to 16 kHz mono.

    Feed chunks with :meth:`process` and end with :meth:`flush`; the concatenated output is
    bit-identical to :func:`resample` on the whole signal for any chunking, has exactly
    ``ceil(n * 16000 / rate_hz)`` samples, and sample j is the signal at ``j / 16000`` s.
    Not thread-safe: use one object per stream.
    """

    # The backend's stream, chosen with the backend at import.
    _Stream = _backend.StreamResampler

    def __init__(self, rate_hz: int):
        self.rate_hz = _rate(rate_hz)
        self._stream = self._Stream(self.rate_hz)
        self._flushed = False

    @property
    def info(self) -> ResamplerInfo:
        *whole, stages = self._stream.info()
        return ResamplerInfo(*whole, stages=tuple(ResamplerInfo(*s[:-1]) for s in stages))

    def _check_open(self) -> None:
        if self._flushed:
            raise FrontendError("this resampler was flushed; call reset() to start a new stream")

    def process(self, chunk: object) -> np.ndarray:
        """Consume a chunk of mono samples; return the output samples now complete."""
        self._check_open()
        return self._stream.process(_samples(chunk))

    def flush(self) -> np.ndarray:
        """End the stream and return the remaining samples."""
        self._check_open()
        self._flushed = True
        return self._stream.flush()

    def reset(self) -> None:
        """Start a new stream: the next sample is time zero again."""
        self._stream.reset()
        self._flushed = False


def resample(samples: object, rate_hz: int) -> np.ndarray:
    """One-shot resampling of mono ``samples`` at ``rate_hz`` to 16 kHz float32."""
    r = Resampler(rate_hz)
    return np.concatenate([r.process(samples), r.flush()])


def to_mono(frames: object) -> np.ndarray:
    """Average a (frames, channels) array to mono float32 (1-D input is returned as float32)."""
    arr = np.asarray(frames)
    if arr.ndim == 1:
        return _samples(arr)
    x = _samples(arr, "frames", ndim=2)
    channels = x.shape[1]
    if channels == 0:
        raise FrontendError("audio has 0 channels")
    if channels > _UINT32_MAX:
        raise FrontendError(f"audio has {channels} channels; at most {_UINT32_MAX} are supported")
    return _backend.mixdown(x)


def pcm_to_float(data: bytes, channels: int, sample_format: str) -> np.ndarray:
    """Interleaved PCM bytes (little-endian integers, host-order floats) -> float32 (frames, channels)."""
    if sample_format not in SAMPLE_FORMATS:
        raise FrontendError(
            f"unknown sample format {sample_format!r}; use one of {', '.join(SAMPLE_FORMATS)}"
        )
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) \
            or not 1 <= channels <= _UINT32_MAX:
        raise FrontendError(
            f"channel count must be an integer from 1 to {_UINT32_MAX}, got {channels!r}"
        )
    frame_bytes = channels * _BYTES_PER_SAMPLE[sample_format]
    buf = memoryview(data).cast("B")
    if len(buf) % frame_bytes:
        raise FrontendError(
            f"{len(buf)} bytes is not a whole number of {channels}-channel {sample_format} frames"
        )
    out = _backend.pcm_to_float(buf, int(channels), sample_format)
    if sample_format in ("f32", "f64") and out.size and not np.isfinite(out).all():
        raise FrontendError("float PCM contains NaN or Inf")
    return out


def normalize(samples: object) -> np.ndarray:
    """``(x - mean) / sqrt(var + 1e-7)`` as Wav2Vec2FeatureExtractor does, float64 statistics."""
    return _backend.normalize(_samples(samples))


def rms_dbfs(samples: object) -> float:
    """RMS level in dBFS (full-scale square wave = 0 dBFS); -200 for digital silence."""
    return _backend.rms_dbfs(_samples(samples))


def seconds_to_samples(seconds: float, what: str = "duration") -> int:
    """Seconds at 16 kHz, rounded to whole model frames (320 samples), at least one frame."""
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise FrontendError(f"{what} must be a number of seconds, got {seconds!r}")
    try:
        valid = math.isfinite(seconds) and seconds > 0
        scaled = seconds * TARGET_RATE_HZ / FRAME_SAMPLES
    except OverflowError:  # an int too large for a float
        valid, scaled = seconds > 0, math.inf
    if not valid:
        raise FrontendError(f"{what} must be a positive number of seconds, got {seconds!r}")
    if not math.isfinite(scaled):  # e.g. 1e305 s: the sample count overflows a float
        raise FrontendError(f"{what} of {seconds!r} s is too long")
    frames = round(scaled)
    return max(1, frames) * FRAME_SAMPLES


@dataclass(frozen=True)
class Window:
    """One analysis window of a 16 kHz signal, in samples and seconds."""

    index: int
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length

    @property
    def start_s(self) -> float:
        return self.start / TARGET_RATE_HZ

    @property
    def end_s(self) -> float:
        return self.stop / TARGET_RATE_HZ


def windows(n_samples: int, window_s: float, hop_s: float,
            min_samples: int = MIN_WINDOW_SAMPLES) -> list[Window]:
    """Windows over ``n_samples`` of 16 kHz audio: full windows every hop, then a final short
    window for samples no full window covered (never zero-padded); a signal shorter than one
    window is one short window; windows under ``min_samples`` are dropped."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
            or not 0 <= n_samples <= _SIZE_MAX:
        raise FrontendError(f"sample count must be an integer from 0 to {_SIZE_MAX}, "
                            f"got {n_samples!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, numbers.Integral) \
            or not 0 <= min_samples <= _SIZE_MAX:
        raise FrontendError(f"minimum window length must be an integer from 0 to {_SIZE_MAX} "
                            f"samples, got {min_samples!r}")
    window = seconds_to_samples(window_s, "window")
    hop = seconds_to_samples(hop_s, "hop")
    if window > _SIZE_MAX:
        raise FrontendError(f"window ({window_s} s) is too long")
    if hop > window:
        raise FrontendError(f"hop ({hop_s} s) must not be longer than the window ({window_s} s)")
    bounds = _backend.window_bounds(int(n_samples), window, hop, int(min_samples))
    return [Window(k, start, length) for k, (start, length) in enumerate(bounds)]


# ------------------------------------------------------------------ streaming windower


@dataclass(frozen=True)
class PreparedWindow:
    """One window as the model takes it: ``samples`` are the 16 kHz samples of
    ``[start, stop)``, normalised per window (or raw, as the windower was built);
    ``level_dbfs`` is the RMS level of the raw samples and ``silent`` says it is below the
    silence gate."""

    index: int
    start: int
    samples: np.ndarray = field(repr=False, compare=False)
    level_dbfs: float
    silent: bool

    @property
    def length(self) -> int:
        return int(self.samples.shape[0])

    @property
    def stop(self) -> int:
        return self.start + self.length


class Windower:
    """Audio in, prepared 16 kHz windows out, in constant memory (``edgeser_windower``).

    Chunks at ``rate_hz`` go to :meth:`push` (float samples: 1-D mono, or ``(frames,
    channels)``) or :meth:`push_pcm` (interleaved PCM bytes of ``sample_format``); each call
    returns the windows it completed: full windows of ``window`` samples every ``hop`` samples,
    each as soon as its last sample (plus the resampler's look-ahead) has arrived.
    :meth:`finish` ends the stream and returns the rest, with one short window for the tail no
    full window covered (never zero-padded; none under ``min_samples``). The windows are those
    of :func:`windows` over the one-shot :func:`resample` of the whole signal, for any chunking,
    with :func:`rms_dbfs` of each raw window and, when ``normalize``, :func:`normalize` of it.

    Not thread-safe: use one object per stream.
    """

    _Stream = _backend.StreamWindower

    def __init__(self, rate_hz: int, window: int, hop: int, *, channels: int = 1,
                 sample_format: str = "f32", min_samples: int = MIN_WINDOW_SAMPLES,
                 silence_dbfs: float = -math.inf, normalize: bool = True):
        self.rate_hz = _rate(rate_hz)
        self.window = _count(window, "window length in samples", 1)
        self.hop = _count(hop, "hop in samples", 1)
        if self.hop > self.window:
            raise FrontendError(f"hop ({self.hop} samples) must not be longer than the window "
                                f"({self.window} samples)")
        self.channels = _count(channels, "channel count", 1, _UINT32_MAX)
        if sample_format not in SAMPLE_FORMATS:
            raise FrontendError(f"unknown sample format {sample_format!r}; expected one of "
                                f"{', '.join(SAMPLE_FORMATS)}")
        self.sample_format = sample_format
        self.min_samples = _count(min_samples, "minimum window length in samples")
        if isinstance(silence_dbfs, bool) or not isinstance(silence_dbfs, numbers.Real) \
                or math.isnan(silence_dbfs):
            raise FrontendError(f"silence gate must be a level in dBFS, got {silence_dbfs!r}")
        self.silence_dbfs = float(silence_dbfs)
        self.normalize = bool(normalize)
        self._stream = self._Stream(self.rate_hz, self.channels, sample_format, self.window,
                                    self.hop, self.min_samples, self.silence_dbfs,
                                    self.normalize)
        self._finished = False

    @property
    def samples(self) -> int:
        """16 kHz samples produced so far."""
        return self._stream.samples()

    def _check_open(self) -> None:
        if self._finished:
            raise FrontendError("the windower's stream has ended; call reset() to start another")

    def _windows(self, raw: list) -> list[PreparedWindow]:
        return [PreparedWindow(index, start, samples, level, silent)
                for index, start, samples, level, silent in raw]

    def push(self, samples: object) -> list[PreparedWindow]:
        """Take float samples (1-D mono, or ``(frames, channels)``); return completed windows."""
        self._check_open()
        if self.sample_format != "f32":
            raise FrontendError(f"this windower takes {self.sample_format} PCM: use push_pcm")
        arr = np.asarray(samples)
        if arr.ndim == 1 and self.channels == 1:
            x = _samples(arr)
        else:
            x = _samples(arr, ndim=2)
            if x.shape[1] != self.channels:
                raise FrontendError(f"samples have {x.shape[1]} channels, the windower "
                                    f"{self.channels}")
        return self._windows(self._stream.push(x))

    def push_pcm(self, data: bytes) -> list[PreparedWindow]:
        """Take interleaved PCM bytes of the windower's format; return completed windows."""
        self._check_open()
        buf = memoryview(data).cast("B")
        frame_bytes = self.channels * _BYTES_PER_SAMPLE[self.sample_format]
        if len(buf) % frame_bytes:
            raise FrontendError(f"{len(buf)} bytes is not a whole number of {self.channels}-"
                                f"channel {self.sample_format} frames")
        if self.sample_format in ("f32", "f64") and len(buf):
            values = np.frombuffer(buf, dtype=np.float32 if self.sample_format == "f32"
                                   else np.float64)
            with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf
                finite = np.isfinite(values.astype(np.float32)).all()
            if not finite:
                raise FrontendError("float PCM contains NaN or Inf")
        return self._windows(self._stream.push(buf))

    def finish(self) -> list[PreparedWindow]:
        """End the stream: the remaining windows, with the final short one if the tail needs it."""
        self._check_open()
        self._finished = True
        return self._windows(self._stream.finish())

    def reset(self) -> None:
        """Start a new stream: the next sample is time zero again."""
        self._stream.reset()
        self._finished = False


# ------------------------------------------------------------------ events and summaries


@dataclass(frozen=True)
class EventSpan:
    """An event in 16 kHz samples: ``[start, stop)``, the peak probability and the window where
    it was first reached, and how many active windows it joins (``edgeser_event``)."""

    start: int
    stop: int
    peak: float
    peak_start: int
    peak_stop: int
    windows: int


def _probability(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise FrontendError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class EventTracker:
    """Events from per-window probabilities (``edgeser_event_tracker``): the union of windows
    whose probability reaches ``threshold`` (with hysteresis, ``release`` < ``threshold``, a run
    of active windows continues while they reach ``release``), joined across gaps of up to
    ``merge_gap`` samples, dropped when shorter than ``min_duration`` samples. Each event is
    returned by the first :meth:`add` that shows it can no longer grow, or by :meth:`finish`.
    """

    _Stream = _backend.StreamEvents

    def __init__(self, threshold: float, *, release: float | None = None, min_duration: int = 0,
                 merge_gap: int = 0):
        self.threshold = _probability(threshold, "the event threshold")
        self.release = self.threshold if release is None else _probability(
            release, "the release threshold")
        if self.release > self.threshold:
            raise FrontendError(f"the release threshold ({self.release:g}) must not be above "
                                f"the threshold ({self.threshold:g})")
        self.min_duration = _count(min_duration, "minimum event duration in samples", 0,
                                   _UINT64_MAX)
        self.merge_gap = _count(merge_gap, "merge gap in samples", 0, _UINT64_MAX)
        self._stream = self._Stream(self.threshold, self.release, self.min_duration,
                                    self.merge_gap)
        self._last_start: int | None = None
        self._finished = False

    def add(self, start: int, stop: int, probability: float | None) -> EventSpan | None:
        """The next window ``[start, stop)`` (in order) with its positive-class probability, or
        None for a silent window; returns the event it closes, if any."""
        if self._finished:
            raise FrontendError("the event tracker's stream has ended; call reset() first")
        start = _count(start, "window start", 0, _UINT64_MAX)
        stop = _count(stop, "window stop", 0, _UINT64_MAX)
        if stop <= start:
            raise FrontendError(f"a window must end after it starts, got [{start}, {stop})")
        if self._last_start is not None and start < self._last_start:
            raise FrontendError(f"windows must come in order: a window starting at {start} "
                                f"follows one starting at {self._last_start}")
        if probability is not None:
            probability = _probability(probability, "a window's probability")
        closed = self._stream.add(start, stop, probability)
        self._last_start = start
        return None if closed is None else EventSpan(*closed)

    def finish(self) -> EventSpan | None:
        """The stream ended: the open event, if it is kept."""
        if self._finished:
            raise FrontendError("the event tracker's stream has ended; call reset() first")
        self._finished = True
        closed = self._stream.finish()
        return None if closed is None else EventSpan(*closed)

    def reset(self) -> None:
        self._stream.reset()
        self._last_start = None
        self._finished = False


@dataclass(frozen=True)
class SummaryTotals:
    """A :class:`StreamSummary` so far: window counts, the mean of each output over voiced
    windows (None when none was voiced) and its argmax, event count and total length."""

    windows: int
    voiced: int
    events: int
    event_samples: int
    top: int | None
    means: tuple[float, ...] | None

    @property
    def silent(self) -> int:
        return self.windows - self.voiced

    @property
    def event_s(self) -> float:
        return self.event_samples / TARGET_RATE_HZ


class StreamSummary:
    """Running per-stream summary in constant memory (``edgeser_summary``)."""

    _Stream = _backend.StreamSummary

    def __init__(self, n_outputs: int):
        self.n_outputs = _count(n_outputs, "output count", 1, 2**31 - 1)
        self._stream = self._Stream(self.n_outputs)

    def add_window(self, values: object | None) -> None:
        """One window's outputs (``n_outputs`` numbers), or None for a silent window."""
        if values is None:
            self._stream.add_window(None)
            return
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise FrontendError(f"window outputs must be numbers ({exc})") from None
        if arr.size != self.n_outputs:
            raise FrontendError(f"a window has {arr.size} outputs, the summary {self.n_outputs}")
        self._stream.add_window([float(v) for v in arr])

    def add_event(self, start: int, stop: int) -> None:
        start = _count(start, "event start", 0, _UINT64_MAX)
        stop = _count(stop, "event stop", 0, _UINT64_MAX)
        if stop < start:
            raise FrontendError(f"an event must not end before it starts, got [{start}, {stop})")
        self._stream.add_event(start, stop)

    def totals(self) -> SummaryTotals:
        windows, voiced, events, event_samples, top, means = self._stream.totals()
        return SummaryTotals(windows, voiced, events, event_samples, top,
                             None if means is None else tuple(means))

    def reset(self) -> None:
        self._stream.reset()
