"""Pure NumPy implementation of the native frontend's algorithms.

It is the test oracle for the C library (same filter design, float64 arithmetic) and the
fallback when the compiled module is missing. It mirrors ``native/src/*.c``; the comments there
explain the algorithm, the constants here must stay equal to theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TARGET_RATE_HZ = 16_000
MIN_RATE_HZ = 1_000
MAX_RATE_HZ = 384_000
TABLE_BUDGET_BYTES = 256 * 1024
STOPBAND_DB = 130.0
TRANSITION_DOWN = 0.0864  # of the lower Nyquist frequency: passband to 7.31 kHz (soxr HQ's band edges)
TRANSITION_UP = 0.10
NORM_EPSILON = 1e-7
DBFS_FLOOR = -200.0
_OUTPUT_BLOCK = 2048  # outputs computed per vectorised step (bounds the gather matrix)


@dataclass(frozen=True)
class FilterDesign:
    """The resampler's filter for one input rate; equal to the C library's choice."""

    rate_in_hz: int
    up: int
    down: int
    half: int
    taps: int
    phases: int
    rows: int
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


def design(rate_in_hz: int) -> FilterDesign:
    g = math.gcd(TARGET_RATE_HZ, rate_in_hz)
    up, down = TARGET_RATE_HZ // g, rate_in_hz // g
    identity = rate_in_hz == TARGET_RATE_HZ
    nyquist_hz = 0.5 * min(rate_in_hz, TARGET_RATE_HZ)
    transition_hz = nyquist_hz * (TRANSITION_UP if rate_in_hz < TARGET_RATE_HZ else TRANSITION_DOWN)
    passband_hz = nyquist_hz - transition_hz
    stopband_hz = nyquist_hz
    if identity:
        half = 1
        passband_hz = nyquist_hz
    else:
        width = (STOPBAND_DB - 8.0) * rate_in_hz / (2.285 * 2.0 * math.pi * transition_hz)
        half = math.ceil(0.5 * width) + 1
    taps = 2 * half
    budget_rows = TABLE_BUDGET_BYTES // (taps * 4)
    phases = up if up // 2 + 1 <= budget_rows else 2 * (budget_rows - 1)
    return FilterDesign(
        rate_in_hz=rate_in_hz, up=up, down=down, half=half, taps=taps, phases=phases,
        rows=phases // 2 + 1, identity=identity, cutoff_hz=nyquist_hz - 0.5 * transition_hz,
        passband_hz=passband_hz, stopband_hz=stopband_hz, beta=0.1102 * (STOPBAND_DB - 8.7),
    )


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
    """All P + 1 rows as float32 (the C library stores rows 0..P/2 and mirrors the rest)."""
    k = np.arange(d.taps, dtype=np.float64)
    stored = np.stack(
        [kernel(d, row / d.phases + d.half - 1.0 - k) for row in range(d.rows)]
    ).astype(np.float32)
    rows = [stored[r] if r < d.rows else stored[d.phases - r][::-1] for r in range(d.phases + 1)]
    return np.stack(rows)


class ReferenceResampler:
    """Streaming resampler with the C library's semantics, computed in float64."""

    def __init__(self, rate_in_hz: int):
        self.design = design(rate_in_hz)
        self._table = full_table(self.design).astype(np.float64)
        self.reset()

    def reset(self) -> None:
        d = self.design
        self._hist = np.zeros(d.half - 1, dtype=np.float32)
        self._hist_start = 0
        self._consumed = 0
        self._emitted = 0
        self._finished = False

    def _ready_total(self, end: int) -> int:
        d = self.design
        if end < d.taps:
            return 0
        return -(-((end - d.taps + 1) * d.up) // d.down)

    def _flush_total(self) -> int:
        return -(-(self._consumed * self.design.up) // self.design.down)

    def _emit(self, total: int) -> np.ndarray:
        d = self.design
        out = []
        while self._emitted < total:
            j = np.arange(self._emitted, min(total, self._emitted + _OUTPUT_BLOCK), dtype=np.int64)
            q, p = (j * d.down) // d.up, (j * d.down) % d.up
            offsets = (q - self._hist_start)[:, None] + np.arange(d.taps)[None, :]
            x = self._hist[offsets].astype(np.float64)
            pos = p * d.phases
            row, rem = pos // d.up, pos % d.up
            a = np.einsum("nt,nt->n", x, self._table[row])
            if d.exact:
                y = a
            else:
                b = np.einsum("nt,nt->n", x, self._table[np.minimum(row + 1, d.phases)])
                y = a + (rem / d.up) * (b - a)
            out.append(y)
            self._emitted += len(j)
        # Keep history from the next output's first input on.
        q_next = (self._emitted * d.down) // d.up
        drop = min(max(q_next - self._hist_start, 0), len(self._hist))
        self._hist = self._hist[drop:]
        self._hist_start += drop
        return np.concatenate(out) if out else np.zeros(0)

    def process(self, x: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("resampler already flushed")
        x = np.asarray(x, dtype=np.float32)
        self._hist = np.concatenate([self._hist, x])
        self._consumed += len(x)
        return self._emit(self._ready_total(self._hist_start + len(self._hist)))

    def flush(self) -> np.ndarray:
        if self._finished:
            raise RuntimeError("resampler already flushed")
        total = self._flush_total()
        self._hist = np.concatenate([self._hist, np.zeros(self.design.taps + 1, np.float32)])
        y = self._emit(total)
        self._finished = True
        return y


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
