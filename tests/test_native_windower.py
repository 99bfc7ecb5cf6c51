"""The streaming windower (``edgeser_windower`` through ``edgeser.frontend.Windower``): the windows
the runtime used before it existed (the resampler, then the Python window cutter, then the level
and normalisation of each window) bit for bit, for any chunking and every PCM format; the same
windows as ``frontend.windows`` over the one-shot resampled signal; the NumPy reference backend
within the float32-vs-float64 tolerance; the latency; validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import edgeser.frontend as fe
from edgeser.errors import FrontendError
from edgeser.frontend import reference


class OldCutter:
    """edgeser.streaming.WindowCutter as it was before the native windower (the oracle)."""

    def __init__(self, window: int, hop: int, min_samples: int):
        self.window, self.hop, self.min_samples = window, hop, min_samples
        self.total = 0
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0
        self._full = 0

    def push(self, x):
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x
        self.total += len(x)
        out = []
        while self._full * self.hop + self.window <= self.total:
            start = self._full * self.hop
            offset = start - self._buf_start
            out.append((self._full, start, self._buf[offset:offset + self.window].copy()))
            self._full += 1
        drop = self._full * self.hop - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._buf_start = self._full * self.hop
        return out

    def finish(self):
        n = self.total
        if self._full == 0:
            start, wanted = 0, n > 0 and n >= self.min_samples
        else:
            start = self._full * self.hop
            covered = (self._full - 1) * self.hop + self.window
            wanted = covered < n and n - start >= self.min_samples
        if not wanted:
            return []
        return [(self._full, start, self._buf[start - self._buf_start:].copy())]


def old_pipeline(x, rate, window, hop, min_samples, silence_dbfs, normalize, sizes):
    """What edgeser.streaming did per chunk before: to_mono, Resampler, the cutter, then
    rms_dbfs and normalize of each window."""
    r, cutter, raw = fe.Resampler(rate), OldCutter(window, hop, min_samples), []
    i = k = 0
    while i < len(x):
        step = sizes[k % len(sizes)]
        raw += cutter.push(r.process(fe.to_mono(x[i:i + step])))
        i, k = i + step, k + 1
    raw += cutter.push(r.flush())
    raw += cutter.finish()
    out = []
    for index, start, w in raw:
        level = fe.rms_dbfs(w)
        out.append((index, start, fe.normalize(w) if normalize else w, level,
                    not level >= silence_dbfs))
    return out


def stream(windower, x, sizes):
    out, i, k = [], 0, 0
    while i < len(x):
        step = sizes[k % len(sizes)]
        out += windower.push(x[i:i + step])
        i, k = i + step, k + 1
    return out + windower.finish()


def speechy(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Noise bursts, a tone and digital silence, by quarters of a second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    part = (t * 4).astype(int) % 4
    x = np.where(part == 0, 0.5 * rng.standard_normal(n),
                 np.where(part == 1, 0.02 * rng.standard_normal(n),
                          np.where(part == 2, 0.4 * np.sin(2 * np.pi * 440 * t), 0.0)))
    x = x.astype(np.float32)
    if channels == 1:
        return x
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


CHUNKINGS = [[1000], [7, 4099, 1, 333], [100_000]]


@pytest.mark.parametrize("rate,channels,window,hop,normalize", [
    (48000, 2, 8000, 2000, True), (44100, 1, 4800, 4800, True), (16000, 1, 1600, 320, False),
    (22050, 3, 6400, 1600, True), (8000, 1, 3200, 3200, True), (12345, 2, 4000, 1000, True),
])
def test_windows_equal_the_old_pipeline_bit_for_bit(rate, channels, window, hop, normalize):
    for seconds in (0.1, window / 16000 * 0.7, 2.3):
        x = speechy(seconds, rate, channels, seed=rate + channels)
        for sizes in CHUNKINGS:
            want = old_pipeline(x, rate, window, hop, 400, -45.0, normalize, sizes)
            got = stream(fe.Windower(rate, window, hop, channels=channels, silence_dbfs=-45.0,
                                     normalize=normalize), x, sizes[::-1])
            assert [(w.index, w.start, w.length) for w in got] == [
                (i, s, len(v)) for i, s, v, _, _ in want]
            for w, (_, _, v, level, silent) in zip(got, want):
                if fe.NATIVE:
                    np.testing.assert_array_equal(w.samples, v)
                    assert w.level_dbfs == level and w.silent == silent
                else:  # the reference backend computes both paths in NumPy
                    np.testing.assert_allclose(w.samples, v, atol=1e-6)
                    assert w.level_dbfs == pytest.approx(level, abs=1e-9)


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 7999, 8000, 8001, 9999, 10000, 10399,
                               10400, 10401, 12000, 16399, 16400, 31999, 32000, 32001])
@pytest.mark.parametrize("window,hop", [(8000, 1600), (8000, 8000), (1600, 320)])  # whole frames
def test_windows_are_the_frontends_windows_of_the_one_shot_signal(n, window, hop):
    x = speechy(n / 16000 + 1e-9, 16000)[:n]
    got = stream(fe.Windower(16000, window, hop), x, [997])
    want = fe.windows(n, window / 16000, hop / 16000)
    assert [(w.start, w.length) for w in got] == [(w.start, w.length) for w in want]
    y = fe.resample(x, 16000)
    for w in got:
        np.testing.assert_array_equal(w.samples, fe.normalize(y[w.start:w.stop]))
        assert w.level_dbfs == fe.rms_dbfs(y[w.start:w.stop])
        assert w.samples.dtype == np.float32 and 400 <= w.length <= window


@pytest.mark.parametrize("fmt", ["u8", "s16", "s24", "s32", "f32", "f64"])
def test_pcm_formats_equal_decoding_first(fmt):
    x = np.clip(speechy(1.7, 44100, 2, seed=3), -0.99, 0.99)
    scale = {"u8": 127, "s16": 32767, "s24": 8388607, "s32": 2147483647}.get(fmt)
    if scale:
        values = np.round(x * scale).astype(np.int64)
        if fmt == "u8":
            data = (values + 128).astype(np.uint8).tobytes()
        elif fmt == "s24":
            v = values.reshape(-1) & 0xFFFFFF
            data = np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], 1).astype(
                np.uint8).tobytes()
        else:
            data = values.astype({"s16": "<i2", "s32": "<i4"}[fmt]).tobytes()
    else:
        data = x.astype(np.float32 if fmt == "f32" else np.float64).tobytes()
    frame = 2 * fe._BYTES_PER_SAMPLE[fmt]
    pcm = fe.Windower(44100, 8000, 4000, channels=2, sample_format=fmt)
    got = []
    for i in range(0, len(data), frame * 1111):
        got += pcm.push_pcm(data[i:i + frame * 1111])
    got += pcm.finish()
    floats = fe.Windower(44100, 8000, 4000, channels=1)
    want = floats.push(fe.to_mono(fe.pcm_to_float(data, 2, fmt))) + floats.finish()
    assert len(got) == len(want) == 6
    for a, b in zip(got, want):
        assert (a.index, a.start, a.length, a.silent) == (b.index, b.start, b.length, b.silent)
        np.testing.assert_array_equal(a.samples, b.samples)


def test_multichannel_float_push_equals_mono_push():
    x = speechy(3.1, 48000, 4, seed=9)
    a = fe.Windower(48000, 16000, 4000, channels=4)
    b = fe.Windower(48000, 16000, 4000)
    got = a.push(x) + a.finish()
    want = b.push(fe.to_mono(x)) + b.finish()
    assert len(got) == len(want) > 0
    for u, v in zip(got, want):
        np.testing.assert_array_equal(u.samples, v.samples)


def test_silence_gate_and_raw_windows():
    x = np.concatenate([0.5 * np.ones(8000), np.zeros(8000), 0.001 * np.ones(8000)])
    w = fe.Windower(16000, 8000, 8000, silence_dbfs=-50.0, normalize=False)
    got = w.push(x.astype(np.float32)) + w.finish()
    assert [(g.start, g.silent) for g in got] == [(0, False), (8000, True), (16000, True)]
    assert got[0].level_dbfs == pytest.approx(-6.0206, abs=1e-3)
    assert got[1].level_dbfs == -200.0
    np.testing.assert_array_equal(got[0].samples, np.float32(0.5))
    assert w.samples == 24000


@pytest.mark.parametrize("rate,lookahead", [(16000, 1), (48000, 300)])
def test_a_window_comes_once_its_last_sample_and_the_lookahead_are_in(rate, lookahead):
    x = speechy(2.0, rate)
    w = fe.Windower(rate, 8000, 8000)
    end = 8000 * rate // 16000
    assert w.push(x[:end]) == []
    got = w.push(x[end:end + lookahead])
    assert [(g.start, g.stop) for g in got] == [(0, 8000)]


def test_memory_is_bounded_by_one_window_not_the_input():
    """A 10-minute chunk in one push: the native windower takes it in blocks and yields every
    window; nothing holds the whole signal."""
    x = speechy(600.0, 16000, seed=1)
    got = fe.Windower(16000, 48000, 16000).push(x)
    assert len(got) == (len(x) - 48000) // 16000 + 1 - 1  # the last full window needs the flush
    assert got[-1].stop <= len(x)


def test_reset_starts_the_stream_again():
    x = speechy(1.3, 22050, seed=2)
    w = fe.Windower(22050, 4000, 1000)
    first = w.push(x) + w.finish()
    with pytest.raises(FrontendError, match="ended"):
        w.push(x)
    with pytest.raises(FrontendError, match="ended"):
        w.finish()
    w.reset()
    again = w.push(x) + w.finish()
    assert [g.start for g in first] == [g.start for g in again]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_native_and_reference_backends_agree():
    if not fe.NATIVE:
        pytest.skip("edgeser._native is not built")
    x = speechy(4.2, 44100, 2, seed=4)
    native = fe.Windower(44100, 16000, 4000, channels=2, silence_dbfs=-50.0)
    got = native.push(x[:30000]) + native.push(x[30000:]) + native.finish()
    ref = reference.StreamWindower(44100, 2, "f32", 16000, 4000, 400, -50.0, True)
    want = ref.push(np.ascontiguousarray(x, np.float32)) + ref.finish()
    assert [(g.index, g.start, g.length, g.silent) for g in got] == [
        (i, s, len(v), silent) for i, s, v, _, silent in want]
    for g, (_, _, v, level, _) in zip(got, want):
        # float32 filter (C) against float64 (NumPy); normalised, so relative to unit variance.
        np.testing.assert_allclose(g.samples, v, atol=2e-5)
        assert g.level_dbfs == pytest.approx(level, abs=1e-4)


@pytest.mark.parametrize("kwargs,match", [
    ({"rate_hz": 999}, "rate"), ({"window": 0}, "window"), ({"hop": 0}, "hop"),
    ({"hop": 9000}, "hop"), ({"channels": 0}, "channel"), ({"sample_format": "s8"}, "format"),
    ({"min_samples": -1}, "minimum"), ({"silence_dbfs": math.nan}, "silence"),
    ({"window": 2**64}, "window"), ({"channels": 2**32}, "channel"),
])
def test_arguments_are_validated_before_c(kwargs, match):
    args = {"rate_hz": 16000, "window": 8000, "hop": 4000, **kwargs}
    with pytest.raises(FrontendError, match=match):
        fe.Windower(args.pop("rate_hz"), args.pop("window"), args.pop("hop"), **args)


def test_bad_chunks_are_refused():
    w = fe.Windower(16000, 8000, 4000, channels=2)
    with pytest.raises(FrontendError, match="channels"):
        w.push(np.zeros((10, 3), np.float32))
    with pytest.raises(FrontendError, match="2-D"):
        w.push(np.zeros(10, np.float32))
    bad = np.zeros((10, 2), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(FrontendError, match="NaN"):
        w.push(bad)
    with pytest.raises(FrontendError, match="whole number"):
        w.push_pcm(b"\0" * 12)
    pcm = fe.Windower(16000, 8000, 4000, sample_format="s16")
    with pytest.raises(FrontendError, match="push_pcm"):
        pcm.push(np.zeros(10, np.float32))
    f32 = fe.Windower(16000, 8000, 4000, sample_format="f32")
    with pytest.raises(FrontendError, match="NaN"):
        f32.push_pcm(np.array([0.0, np.inf], np.float32).tobytes())
    f64 = fe.Windower(16000, 8000, 4000, sample_format="f64")
    with pytest.raises(FrontendError, match="NaN"):
        f64.push_pcm(np.array([1e300], np.float64).tobytes())
