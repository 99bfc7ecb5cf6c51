"""The signal frontend: PCM conversion, mixdown, resampling to 16 kHz, normalisation, windows.

Three layers, as for any native code here: the C header (``native/include/edgeser/frontend.h``),
a thin wrapper (``_binding``), and this NumPy-facing API, which validates every argument in
Python (rates, lengths, NaN/Inf) before C sees it and raises one exception type,
:class:`edgeser.errors.FrontendError`.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass

import numpy as np

from edgeser.errors import FrontendError
from edgeser.frontend import reference
from edgeser.frontend._binding import NATIVE, check, ffi, lib

TARGET_RATE_HZ = 16_000  # the models' rate
MIN_RATE_HZ = reference.MIN_RATE_HZ
MAX_RATE_HZ = reference.MAX_RATE_HZ
FRAME_SAMPLES = 320  # one model frame: the conv stack's total stride (20 ms)
MIN_WINDOW_SAMPLES = 400  # the conv stack's receptive field: shorter input gives no frame
SAMPLE_FORMATS = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 5, "f64": 6}
_BYTES_PER_SAMPLE = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4, "f64": 8}
# The largest values of the C API's integer types (channels are uint32_t, lengths size_t):
# larger arguments are refused here, where cffi would raise OverflowError.
_UINT32_MAX = 2**32 - 1
_SIZE_MAX = 2 * sys.maxsize + 1

BACKEND = "native" if NATIVE else "numpy"

__all__ = [
    "BACKEND", "FRAME_SAMPLES", "MIN_WINDOW_SAMPLES", "TARGET_RATE_HZ", "FrontendError",
    "Resampler", "ResamplerInfo", "Window", "normalize", "pcm_to_float", "resample",
    "rms_dbfs", "seconds_to_samples", "to_mono", "windows",
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


def _fptr(arr: np.ndarray):
    return ffi.cast("float *", ffi.from_buffer(arr))


@dataclass(frozen=True)
class ResamplerInfo:
    """What a resampler does for one input rate (mirrors ``edgeser_resampler_info``)."""

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


class Resampler:
    """Streaming resampler from ``rate_hz`` to 16 kHz mono.

    Feed chunks with :meth:`process` and end with :meth:`flush`; the concatenated output is
    bit-identical to :func:`resample` on the whole signal for any chunking, has exactly
    ``ceil(n * 16000 / rate_hz)`` samples, and sample j is the signal at ``j / 16000`` s.
    Not thread-safe: use one object per stream.
    """

    def __init__(self, rate_hz: int):
        self.rate_hz = _rate(rate_hz)
        if NATIVE:
            handle = ffi.new("edgeser_resampler **")
            check(lib.edgeser_resampler_create(self.rate_hz, handle), "creating a resampler")
            self._handle = ffi.gc(handle[0], lib.edgeser_resampler_destroy)
        else:
            self._ref = reference.ReferenceResampler(self.rate_hz)
        self._flushed = False

    @property
    def info(self) -> ResamplerInfo:
        if NATIVE:
            raw = ffi.new("edgeser_resampler_info *")
            check(lib.edgeser_resampler_info_get(self._handle, raw), "reading resampler info")
            return ResamplerInfo(
                raw.rate_in_hz, raw.rate_out_hz, raw.up, raw.down, raw.taps_per_phase,
                raw.phases, bool(raw.exact), raw.passband_hz, raw.stopband_hz, raw.stopband_db,
                raw.table_bytes,
            )
        d = self._ref.design
        return ResamplerInfo(
            d.rate_in_hz, TARGET_RATE_HZ, d.up, d.down, d.taps, d.phases, d.exact,
            d.passband_hz, d.stopband_hz, reference.STOPBAND_DB, d.table_bytes,
        )

    def _check_open(self) -> None:
        if self._flushed:
            raise FrontendError("this resampler was flushed; call reset() to start a new stream")

    def process(self, chunk: object) -> np.ndarray:
        """Consume a chunk of mono samples; return the output samples now complete."""
        self._check_open()
        x = _samples(chunk)
        if not NATIVE:
            return self._ref.process(x).astype(np.float32)
        n_out = ffi.new("size_t *")
        check(lib.edgeser_resampler_max_output(self._handle, x.size, n_out), "resampling")
        out = np.empty(n_out[0], dtype=np.float32)
        check(
            lib.edgeser_resampler_process(
                self._handle, _fptr(x), x.size, _fptr(out), out.size, n_out
            ),
            "resampling",
        )
        return out[: n_out[0]]

    def flush(self) -> np.ndarray:
        """End the stream and return the remaining samples."""
        self._check_open()
        self._flushed = True
        if not NATIVE:
            return self._ref.flush().astype(np.float32)
        n_out = ffi.new("size_t *")
        check(lib.edgeser_resampler_flush_output(self._handle, n_out), "flushing the resampler")
        out = np.empty(n_out[0], dtype=np.float32)
        check(
            lib.edgeser_resampler_flush(self._handle, _fptr(out), out.size, n_out),
            "flushing the resampler",
        )
        return out[: n_out[0]]

    def reset(self) -> None:
        """Start a new stream: the next sample is time zero again."""
        if NATIVE:
            check(lib.edgeser_resampler_reset(self._handle), "resetting the resampler")
        else:
            self._ref.reset()
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
    n_frames, channels = x.shape
    if channels == 0:
        raise FrontendError("audio has 0 channels")
    if channels > _UINT32_MAX:
        raise FrontendError(f"audio has {channels} channels; at most {_UINT32_MAX} are supported")
    if not NATIVE:
        return reference.mixdown(x)
    out = np.empty(n_frames, dtype=np.float32)
    check(lib.edgeser_mixdown(_fptr(x), n_frames, channels, _fptr(out)), "mixing down")
    return out


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
    n_frames = len(buf) // frame_bytes
    if not NATIVE:
        out = reference.pcm_to_float(bytes(buf), int(channels), sample_format)
    else:
        out = np.empty((n_frames, int(channels)), dtype=np.float32)
        check(
            lib.edgeser_pcm_to_float(
                ffi.from_buffer(buf), n_frames, int(channels), SAMPLE_FORMATS[sample_format],
                _fptr(out),
            ),
            "converting PCM",
        )
    if sample_format in ("f32", "f64") and out.size and not np.isfinite(out).all():
        raise FrontendError("float PCM contains NaN or Inf")
    return out


def normalize(samples: object) -> np.ndarray:
    """``(x - mean) / sqrt(var + 1e-7)`` as Wav2Vec2FeatureExtractor does, float64 statistics."""
    x = _samples(samples)
    if not NATIVE:
        return reference.normalize(x)
    out = np.empty_like(x)
    check(lib.edgeser_normalize(_fptr(x), x.size, _fptr(out)), "normalising")
    return out


def rms_dbfs(samples: object) -> float:
    """RMS level in dBFS (full-scale square wave = 0 dBFS); -200 for digital silence."""
    x = _samples(samples)
    if not NATIVE:
        return reference.rms_dbfs(x)
    level = ffi.new("float *")
    check(lib.edgeser_rms_dbfs(_fptr(x), x.size, level), "measuring level")
    return float(level[0])


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
    if not NATIVE:
        return [Window(k, s, n) for k, (s, n) in
                enumerate(reference.window_bounds(int(n_samples), window, hop, min_samples))]
    count = ffi.new("size_t *")
    check(lib.edgeser_window_count(n_samples, window, hop, min_samples, count), "windowing")
    start, length = ffi.new("size_t *"), ffi.new("size_t *")
    result = []
    for k in range(count[0]):
        check(lib.edgeser_window_bounds(n_samples, window, hop, min_samples, k, start, length),
              "windowing")
        result.append(Window(k, int(start[0]), int(length[0])))
    return result
