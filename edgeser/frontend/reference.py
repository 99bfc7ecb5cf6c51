"""Pure NumPy implementation of the native frontend's algorithms.

It is the test oracle for the C library (same filter design, float64 arithmetic) and the
fallback when the compiled module is missing. It mirrors ``native/src/*.c``; the comments there
explain the algorithm, the constants here must stay equal to theirs. The contract's constants
(the rate, the variance floor) come from :mod:`edgeser.contract`.

As the fallback it is one of the frontend's two backends: the section "Backend primitives" at
the end defines the same primitives, with the same signatures, as ``_native_backend``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeser.contract import NORM_EPSILON, SAMPLE_RATE_HZ

MIN_RATE_HZ = 1_000
MAX_RATE_HZ = 384_000
TABLE_BUDGET_BYTES = 256 * 1024
STOPBAND_DB = 130.0
TRANSITION_DOWN = 0.0864  # of the lower Nyquist frequency: passband to 7.31 kHz (soxr HQ's band edges)
TRANSITION_UP = 0.10
# Two-stage plans (rates above 16 kHz that are not multiples of it): the intermediate rate and
# the first stage's band edges.
MID_RATE_HZ = 32_000
PRE_PASSBAND_HZ = 8000.0
PRE_STOPBAND_HZ = 24000.0
ROW_VECTOR = 8  # full-table rows are whole vectors of this many floats
DBFS_FLOOR = -200.0
_OUTPUT_BLOCK = 2048  # outputs computed per vectorised step (bounds the gather matrix)

# Table layouts of a stage (resampler.c): half a table mirrored, every row, or the single row of
# a decimating stage (L = 1).
HALF, FULL, DECIMATE = "half", "full", "decimate"


@dataclass(frozen=True)
class FilterDesign:
    """One stage's filter, equal to the C library's choice."""

    rate_in_hz: int
    rate_out_hz: int
    up: int
    down: int
    half: int
    taps: int
    phases: int
    rows: int
    layout: str
    identity: bool
    cutoff_hz: float
    passband_hz: float
    stopband_hz: float
    beta: float

    @property
    def exact(self) -> bool:
        return self.phases == self.up

    @property
    def table_bytes(self) -> int:
        return self.rows * self.taps * 4


def stage_design(rate_in_hz: int, rate_out_hz: int, passband_hz: float, stopband_hz: float,
                 identity: bool, layout: str, budget: int) -> FilterDesign:
    """design_stage of resampler.c."""
    g = math.gcd(rate_out_hz, rate_in_hz)
    up, down = rate_out_hz // g, rate_in_hz // g
    if identity:
        half = 1
    else:
        width = (STOPBAND_DB - 8.0) * rate_in_hz / (2.285 * 2.0 * math.pi
                                                   * (stopband_hz - passband_hz))
        half = math.ceil(0.5 * width) + 1
    kind = None
    if layout == DECIMATE and up == 1 and not identity:
        kind, phases, rows = DECIMATE, 1, 1
    elif not identity:
        full_half = -(-half // (ROW_VECTOR // 2)) * (ROW_VECTOR // 2)
        if up * 2 * full_half * 4 <= budget:
            kind, half, phases, rows = FULL, full_half, up, up
    if kind is None:
        kind = HALF
        budget_rows = budget // (2 * half * 4)
        phases = up if up // 2 + 1 <= budget_rows else 2 * (budget_rows - 1)
        rows = phases // 2 + 1
    return FilterDesign(
        rate_in_hz=rate_in_hz, rate_out_hz=rate_out_hz, up=up, down=down, half=half,
        taps=2 * half, phases=phases, rows=rows, layout=kind, identity=identity,
        cutoff_hz=0.5 * (passband_hz + stopband_hz), passband_hz=passband_hz,
        stopband_hz=stopband_hz, beta=0.1102 * (STOPBAND_DB - 8.7),
    )


@dataclass(frozen=True)
class ResamplerDesign:
    """The stages of a resampler for one input rate (make_plan of resampler.c), and the figures
    ``edgeser_resampler_info`` reports for the whole."""

    rate_in_hz: int
    stages: tuple[FilterDesign, ...]

    @property
    def up(self) -> int:
        return SAMPLE_RATE_HZ // math.gcd(SAMPLE_RATE_HZ, self.rate_in_hz)

    @property
    def down(self) -> int:
        return self.rate_in_hz // math.gcd(SAMPLE_RATE_HZ, self.rate_in_hz)

    @property
    def taps(self) -> int:
        """Input samples one output depends on: the span of the filter(s) composed."""
        a = self.stages[0]
        if len(self.stages) == 1:
            return a.taps
        span = (self.stages[1].taps - 1) * a.down / a.up + a.taps
        return 2 * math.ceil(0.5 * span)

    @property
    def phases(self) -> int:
        return self.stages[0].phases

    @property
    def exact(self) -> bool:
        return all(s.exact for s in self.stages)

    @property
    def table_bytes(self) -> int:
        return sum(s.table_bytes for s in self.stages)

    @property
    def passband_hz(self) -> float:
        return self.stages[-1].passband_hz

    @property
    def stopband_hz(self) -> float:
        return self.stages[-1].stopband_hz


def design(rate_in_hz: int) -> ResamplerDesign:
    """The plan of resampler.c: 16 kHz passes through; below 16 kHz one interpolating stage;
    multiples of 16 kHz one decimating stage; other rates a short stage to 32 kHz, then the
    decimating stage of 32 kHz."""
    target = SAMPLE_RATE_HZ
    if rate_in_hz == target:
        return ResamplerDesign(rate_in_hz, (stage_design(
            rate_in_hz, target, 0.5 * target, 0.5 * target, True, FULL, TABLE_BUDGET_BYTES),))
    if rate_in_hz < target:
        nyquist = 0.5 * rate_in_hz
        return ResamplerDesign(rate_in_hz, (stage_design(
            rate_in_hz, target, nyquist * (1.0 - TRANSITION_UP), nyquist, False, FULL,
            TABLE_BUDGET_BYTES),))
    nyquist = 0.5 * target
    sharp_in = rate_in_hz if rate_in_hz % target == 0 else MID_RATE_HZ
    sharp = stage_design(sharp_in, target, nyquist * (1.0 - TRANSITION_DOWN), nyquist, False,
                         DECIMATE, TABLE_BUDGET_BYTES)
    if sharp_in == rate_in_hz:
        return ResamplerDesign(rate_in_hz, (sharp,))
    pre = stage_design(rate_in_hz, MID_RATE_HZ, PRE_PASSBAND_HZ, PRE_STOPBAND_HZ, False, FULL,
                       TABLE_BUDGET_BYTES - sharp.table_bytes)
    return ResamplerDesign(rate_in_hz, (pre, sharp))


def kernel(d: FilterDesign, tau: np.ndarray) -> np.ndarray:
    """g(tau): Kaiser-windowed sinc, tau in input samples."""
    tau = np.asarray(tau, dtype=np.float64)
    if d.identity:
        return (tau == 0.0).astype(np.float64)
    ratio = 2.0 * d.cutoff_hz / d.rate_in_hz
    rel = tau / d.half
    inside = np.abs(rel) < 1.0
    window = np.i0(d.beta * np.sqrt(np.clip(1.0 - rel * rel, 0.0, None))) / np.i0(d.beta)
    return np.where(inside, ratio * np.sinc(ratio * tau) * window, 0.0)


def full_table(d: FilterDesign) -> np.ndarray:
    """All P + 1 rows as float32 (for a half table the C library stores rows 0..P/2 and mirrors
    the rest; a full table holds every row; a decimating stage has row 0 only)."""
    k = np.arange(d.taps, dtype=np.float64)
    stored = np.stack(
        [kernel(d, row / d.phases + d.half - 1.0 - k) for row in range(d.rows)]
    ).astype(np.float32)
    if d.layout != HALF:
        # Row P (the next input sample's row 0) closes the table for interpolation.
        last = kernel(d, 1.0 + d.half - 1.0 - k).astype(np.float32)
        return np.concatenate([stored, last[None, :]])
    rows = [stored[r] if r < d.rows else stored[d.phases - r][::-1] for r in range(d.phases + 1)]
    return np.stack(rows)


class _Stage:
    """One stage with the C library's semantics (history, readiness, table), in float64."""

    def __init__(self, d: FilterDesign):
        self.design = d
        self._table = full_table(d).astype(np.float64)
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(self.design.half - 1, dtype=np.float64)
        self._hist_start = 0
        self.consumed = 0
        self.emitted = 0

    def ready(self, filled: int) -> int:
        """Outputs computable once `filled` virtual positions exist."""
        d = self.design
        if filled < d.taps:
            return 0
        return -(-((filled - d.taps + 1) * d.up) // d.down)

    @property
    def filled(self) -> int:
        return self._hist_start + len(self._hist)

    def append(self, x: np.ndarray) -> None:
        self._hist = np.concatenate([self._hist, np.asarray(x, dtype=np.float64)])
        self.consumed += len(x)

    def emit(self, limit: int | None = None) -> np.ndarray:
        d = self.design
        total = self.ready(self.filled)
        if limit is not None:
            total = min(total, limit)
        out = []
        while self.emitted < total:
            j = np.arange(self.emitted, min(total, self.emitted + _OUTPUT_BLOCK), dtype=np.int64)
            q, p = (j * d.down) // d.up, (j * d.down) % d.up
            offsets = (q - self._hist_start)[:, None] + np.arange(d.taps)[None, :]
            x = self._hist[offsets]
            pos = p * d.phases
            row, rem = pos // d.up, pos % d.up
            a = np.einsum("nt,nt->n", x, self._table[row])
            if d.exact:
                y = a
            else:
                b = np.einsum("nt,nt->n", x, self._table[np.minimum(row + 1, d.phases)])
                y = a + (rem / d.up) * (b - a)
            out.append(y)
            self.emitted += len(j)
        # Keep history from the next output's first input on.
        q_next = (self.emitted * d.down) // d.up
        drop = min(max(q_next - self._hist_start, 0), len(self._hist))
        self._hist = self._hist[drop:]
        self._hist_start += drop
        return np.concatenate(out) if out else np.zeros(0)


class ReferenceResampler:
    """Streaming resampler with the C library's semantics (one or two stages), in float64."""

    def __init__(self, rate_in_hz: int):
        self.design = design(rate_in_hz)
        self._stages = [_Stage(d) for d in self.design.stages]
        self.reset()

    def reset(self) -> None:
        for s in self._stages:
            s.reset()
        self._finished = False

    def _run(self, x: np.ndarray, mid_limit: int | None = None,
             limit: int | None = None) -> np.ndarray:
        first = self._stages[0]
        first.append(x)
        if len(self._stages) == 1:
            return first.emit(limit)
        second = self._stages[1]
        second.append(first.emit(mid_limit))
        return second.emit(limit)

    def process(self, x: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("resampler already flushed")
        return self._run(np.asarray(x, dtype=np.float32))

    def flush(self) -> np.ndarray:
        if self._finished:
            raise RuntimeError("resampler already flushed")
        first, last = self._stages[0], self._stages[-1]
        total = -(-(first.consumed * self.design.up) // self.design.down)
        # Two stages: the last output j = total - 1 reads stage-1 outputs up to 2 j + H2.
        mid_total = None
        if len(self._stages) == 2:
            mid_total = 0 if total == 0 else 2 * (total - 1) + last.design.half + 1
        out = []
        # Zeros past the end complete the support of the last outputs.
        while last.emitted < total:
            zeros = np.zeros(first.design.taps + 4096, np.float32)
            out.append(self._run(zeros, mid_total, total))
        self._finished = True
        return np.concatenate(out) if out else np.zeros(0)


def resample(x: np.ndarray, rate_in_hz: int) -> np.ndarray:
    r = ReferenceResampler(rate_in_hz)
    return np.concatenate([r.process(x), r.flush()])


def normalize(x: np.ndarray) -> np.ndarray:
    x64 = np.asarray(x, dtype=np.float64)
    if x64.size == 0:
        return x64.astype(np.float32)
    mean = x64.mean()
    var = np.mean((x64 - mean) ** 2)
    return ((x64 - mean) / math.sqrt(var + NORM_EPSILON)).astype(np.float32)


def rms_dbfs(x: np.ndarray) -> float:
    x64 = np.asarray(x, dtype=np.float64)
    if x64.size == 0:
        return DBFS_FLOOR
    mean_square = float(np.mean(x64 * x64))
    if mean_square <= 0.0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, 10.0 * math.log10(mean_square))


def window_bounds(n: int, window: int, hop: int, min_len: int) -> list[tuple[int, int]]:
    """(start, length) of every window; see edgeser_window_count in the C header."""
    if window <= 0 or hop <= 0 or hop > window:
        raise ValueError("windowing needs 0 < hop <= window")
    full = (n - window) // hop + 1 if n >= window else 0
    if full == 0:
        return [(0, n)] if n > 0 and n >= min_len else []
    bounds = [(k * hop, window) for k in range(full)]
    if (full - 1) * hop + window < n and n - full * hop >= min_len:
        bounds.append((full * hop, n - full * hop))
    return bounds


def mixdown(frames: np.ndarray) -> np.ndarray:
    return np.asarray(frames, dtype=np.float64).mean(axis=1).astype(np.float32)


_PCM_SCALE = {"u8": 128.0, "s16": 32768.0, "s24": 8388608.0, "s32": 2147483648.0}


def pcm_to_float(data: bytes, channels: int, sample_format: str) -> np.ndarray:
    """Interleaved little-endian PCM bytes -> float32 (frames, channels)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if sample_format == "u8":
        values = raw.astype(np.float64) - 128.0
    elif sample_format == "s16":
        values = raw.view("<i2").astype(np.float64)
    elif sample_format == "s24":
        b = raw.reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        values = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64)
    elif sample_format == "s32":
        values = raw.view("<i4").astype(np.float64)
    elif sample_format == "f32":
        return raw.view(np.float32).reshape(-1, channels).copy()
    elif sample_format == "f64":
        return raw.view(np.float64).astype(np.float32).reshape(-1, channels)
    else:
        raise ValueError(f"unknown sample format {sample_format!r}")
    return (values / _PCM_SCALE[sample_format]).astype(np.float32).reshape(-1, channels)


# ------------------------------------------------------------------ Backend primitives
# The same names and signatures as ``_native_backend``: what the frontend calls when the compiled
# module is missing. Arguments arrive validated by the frontend's public functions.
# ``mixdown``, ``normalize``, ``rms_dbfs``, ``window_bounds`` and ``pcm_to_float`` above already
# are primitives; the resampler needs float32 output and an ``info()`` tuple.


class StreamResampler(ReferenceResampler):
    """:class:`ReferenceResampler` with the C resampler's interface: float32 output (computed
    in float64 as before) and ``info()``, the fields of ``edgeser_resampler_info`` that the
    frontend's ``ResamplerInfo`` holds, in its order, then one such tuple per stage."""

    def info(self) -> tuple:
        d = self.design
        stages = tuple(
            (s.rate_in_hz, s.rate_out_hz, s.up, s.down, s.taps, s.phases, s.exact,
             0.5 * s.rate_in_hz if s.identity else s.passband_hz, s.stopband_hz, STOPBAND_DB,
             s.table_bytes, ())
            for s in d.stages
        )
        return (
            d.rate_in_hz, SAMPLE_RATE_HZ, d.up, d.down, d.taps, d.phases, d.exact,
            d.passband_hz, d.stopband_hz, STOPBAND_DB, d.table_bytes, stages,
        )

    def process(self, x: np.ndarray) -> np.ndarray:
        return super().process(x).astype(np.float32)

    def flush(self) -> np.ndarray:
        return super().flush().astype(np.float32)


class StreamWindower:
    """The windower of ``native/src/windower.c`` in NumPy: PCM bytes in, prepared 16 kHz
    windows ``(index, start, samples, level_dbfs, silent)`` out. Full windows every hop as soon
    as their last sample exists; after :meth:`finish` one short window for the tail no full
    window covered (the rule of :func:`window_bounds`)."""

    def __init__(self, rate_in_hz: int, channels: int, sample_format: str, window: int, hop: int,
                 min_len: int, silence_dbfs: float, normalize: bool):
        if window <= 0 or hop <= 0 or hop > window:
            raise ValueError("windowing needs 0 < hop <= window")
        self._resampler = StreamResampler(rate_in_hz)
        self._channels, self._format = channels, sample_format
        self._window, self._hop, self._min_len = window, hop, min_len
        self._silence_dbfs, self._normalize = silence_dbfs, normalize
        self.reset()

    def reset(self) -> None:
        self._resampler.reset()
        self._buf = np.zeros(0, dtype=np.float32)  # samples from the next window's start on
        self._buf_start = 0
        self._total = 0
        self._full = 0
        self._ended = False

    def _prepare(self, index: int, start: int, raw: np.ndarray) -> tuple:
        level = rms_dbfs(raw)
        samples = normalize(raw) if self._normalize else raw.copy()
        return (index, start, samples, level, not level >= self._silence_dbfs)

    def _append(self, y: np.ndarray) -> list:
        self._buf = np.concatenate([self._buf, y.astype(np.float32)])
        self._total += len(y)
        out = []
        while self._full * self._hop + self._window <= self._total:
            start = self._full * self._hop
            offset = start - self._buf_start
            out.append(self._prepare(self._full, start, self._buf[offset:offset + self._window]))
            self._full += 1
        drop = self._full * self._hop - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out

    def push(self, data) -> list:
        if self._ended:
            raise RuntimeError("windower already finished")
        frames = pcm_to_float(bytes(memoryview(data).cast("B")), self._channels, self._format)
        mono = frames[:, 0] if self._channels == 1 else mixdown(frames)
        return self._append(self._resampler.process(mono))

    def finish(self) -> list:
        if self._ended:
            raise RuntimeError("windower already finished")
        self._ended = True
        out = self._append(self._resampler.flush())
        n = self._total
        if self._full == 0:
            start, wanted = 0, n > 0 and n >= self._min_len
        else:
            start = self._full * self._hop
            covered = (self._full - 1) * self._hop + self._window
            wanted = covered < n and n - start >= self._min_len
        if wanted:
            out.append(self._prepare(self._full, start, self._buf[start - self._buf_start:]))
        return out

    def samples(self) -> int:
        return self._total


class StreamEvents:
    """The event tracker of ``native/src/events.c`` in Python; events are tuples ``(start, stop,
    peak, peak_start, peak_stop, windows)``."""

    def __init__(self, threshold: float, release: float, min_duration: int, merge_gap: int):
        if not (math.isfinite(threshold) and math.isfinite(release) and release <= threshold):
            raise ValueError("event thresholds must be finite with release <= threshold")
        self._threshold, self._release = threshold, release
        self._min_duration, self._merge_gap = min_duration, merge_gap
        self.reset()

    def reset(self) -> None:
        self._open: list | None = None  # [start, stop, peak, peak_start, peak_stop, windows]
        self._on = False
        self._last_start: int | None = None
        self._finished = False

    def _close(self):
        event, self._open = self._open, None
        return tuple(event) if event[1] - event[0] >= self._min_duration else None

    def add(self, start: int, stop: int, probability: float | None):
        if self._finished:
            raise RuntimeError("event tracker already finished")
        if stop <= start or (self._last_start is not None and start < self._last_start) or (
                probability is not None and math.isnan(probability)):
            raise ValueError("windows must come in order, non-empty, with a probability")
        self._last_start = start
        closed = None
        if self._open is not None and start - self._open[1] > self._merge_gap:
            closed = self._close()
            self._on = False
        active = probability is not None and probability >= (
            self._release if self._on else self._threshold)
        self._on = active
        if not active:
            return closed
        if self._open is None:
            self._open = [start, stop, probability, start, stop, 1]
        else:
            current = self._open
            current[1] = max(current[1], stop)
            current[5] += 1
            if probability > current[2]:
                current[2:5] = [probability, start, stop]
        return closed

    def finish(self):
        if self._finished:
            raise RuntimeError("event tracker already finished")
        self._finished = True
        self._on = False
        return self._close() if self._open is not None else None


class StreamSummary:
    """The stream summary of ``native/src/events.c`` in NumPy (float64 sums in window order)."""

    def __init__(self, n_outputs: int):
        self._n = n_outputs
        self.reset()

    def reset(self) -> None:
        self._sums = np.zeros(self._n, dtype=np.float64)
        self._windows = self._voiced = self._events = self._event_samples = 0

    def add_window(self, values) -> None:
        self._windows += 1
        if values is not None:
            self._voiced += 1
            self._sums += np.asarray(values, dtype=np.float64)

    def add_event(self, start: int, stop: int) -> None:
        if stop < start:
            raise ValueError("an event ends before it starts")
        self._events += 1
        self._event_samples += stop - start

    def totals(self) -> tuple:
        if not self._voiced:
            return (self._windows, 0, self._events, self._event_samples, None, None)
        means = self._sums / self._voiced
        return (self._windows, self._voiced, self._events, self._event_samples,
                int(np.argmax(means)), [float(m) for m in means])
