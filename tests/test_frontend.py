"""The NumPy-facing frontend: resampler against its reference, chunking, exact lengths and
timing, the quality figures promised in the README, and validation of every argument."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

import edgeser.frontend as fe
from edgeser.errors import FrontendError
from edgeser.frontend import reference

EXACT_RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000]
APPROX_RATES = [12345, 44101, 383999]  # tables too large for all phases
OTHER_RATES = [1000] + APPROX_RATES
ROOT = Path(__file__).resolve().parents[1]


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.25).astype(np.float32)


def _chunked(rate_hz: int, x: np.ndarray, sizes) -> np.ndarray:
    r = fe.Resampler(rate_hz)
    parts, i, k = [], 0, 0
    while i < len(x):
        step = sizes[k % len(sizes)]
        parts.append(r.process(x[i : i + step]))
        i += step
        k += 1
    parts.append(r.flush())
    return np.concatenate(parts)


def test_native_backend_when_required():
    if os.environ.get("EDGESER_REQUIRE_NATIVE") == "1":
        assert fe.BACKEND == "native"
    assert fe.BACKEND in ("native", "numpy")


@pytest.mark.parametrize("rate_hz", EXACT_RATES + OTHER_RATES)
def test_output_length_is_exact_for_every_rate(rate_hz):
    for n in (0, 1, 2, 399, rate_hz // 3 + 7):
        y = fe.resample(_noise(n), rate_hz)
        assert len(y) == math.ceil(n * 16000 / rate_hz)
        assert y.dtype == np.float32


@pytest.mark.parametrize("rate_hz", [8000, 11025, 16000, 44100, 48000, 96000, 12345, 44101])
def test_stream_is_bit_identical_to_one_shot_for_any_chunking(rate_hz):
    taps = fe.Resampler(rate_hz).info.taps_per_phase
    for n in (0, 1, taps - 1, taps, taps + 1, 7919, 3 * rate_hz // 2 + 13):
        x = _noise(n, seed=n)
        whole = fe.resample(x, rate_hz)
        for sizes in ([1], [2, 3, 5, 7, 11, 13], [997], [4096, 1], [max(n, 1)]):
            if sizes == [1] and n > 5000:
                continue  # one-sample chunks of long inputs only cost time
            np.testing.assert_array_equal(_chunked(rate_hz, x, sizes), whole)


@pytest.mark.parametrize("rate_hz", [8000, 11025, 22050, 44100, 48000, 96000, 1000, 12345, 44101])
def test_native_matches_numpy_reference(rate_hz):
    taps = reference.design(rate_hz).taps
    for n in (1, taps - 1, taps + 1, 101, 2 * rate_hz + 3):
        x = _noise(n, seed=rate_hz + n)
        expected = reference.resample(x, rate_hz)
        got = fe.resample(x, rate_hz)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("rate_hz", EXACT_RATES + OTHER_RATES)
def test_native_design_equals_reference_design(rate_hz):
    info = fe.Resampler(rate_hz).info
    d = reference.design(rate_hz)
    assert (info.up, info.down, info.taps_per_phase, info.phases, info.exact) == (
        d.up, d.down, d.taps, d.phases, d.exact,
    )
    assert info.table_bytes == d.table_bytes <= 256 * 1024
    assert info.exact == (rate_hz not in APPROX_RATES)


def test_identity_rate_passes_samples_through_unchanged():
    x = _noise(12345)
    np.testing.assert_array_equal(fe.resample(x, 16000), x)


@pytest.mark.parametrize("rate_hz", [8000, 11025, 22050, 44100, 48000, 96000, 44101])
def test_delay_is_compensated(rate_hz):
    """Output sample j is the input signal at time j / 16000 s: a 440 Hz tone keeps its phase."""
    n = rate_hz
    t_in = np.arange(n) / rate_hz
    y = fe.resample(np.sin(2 * np.pi * 440 * t_in).astype(np.float32), rate_hz)
    t_out = np.arange(len(y)) / 16000
    inner = slice(1600, len(y) - 1600)  # away from the zero-padded ends
    np.testing.assert_allclose(y[inner], np.sin(2 * np.pi * 440 * t_out[inner]), atol=2e-5)


def _tone_levels_db(rate_hz: int, freq_hz: float) -> np.ndarray:
    """The README's measurement: 2 s full-scale sine, 0.25 s dropped at each end of the
    16 kHz output, Hann-windowed FFT scaled so a full-scale sine on a bin reads 0 dB."""
    x = np.sin(2 * np.pi * freq_hz * np.arange(2 * rate_hz) / rate_hz).astype(np.float32)
    y = fe.resample(x, rate_hz).astype(np.float64)[4000:-4000]
    w = np.hanning(len(y))
    spectrum = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    return 20 * np.log10(np.maximum(spectrum, 1e-300))


@pytest.mark.parametrize("rate_hz", [44100, 48000])
def test_passband_is_flat_to_7_khz(rate_hz):
    # Even-Hz tones sit on bin centres of the 1.5 s FFT (0.667 Hz bins), so no scalloping.
    for freq in (20, 100, 440, 1000, 2002, 3500, 5000, 6000, 6500, 6800, 7000):
        assert abs(_tone_levels_db(rate_hz, freq).max()) < 0.1, freq


@pytest.mark.parametrize("rate_hz", [44100, 48000])
def test_alias_rejection_above_8_5_khz(rate_hz):
    for freq in np.linspace(8500, rate_hz / 2 - 50, 12):
        assert _tone_levels_db(rate_hz, float(freq)).max() < -100.0, freq


def _speech_files(data_dir: Path) -> list[Path]:
    names = [
        "formats/whisper__tests_jfk.flac",
        "formats/opensmile__example-audio_media-interpretation.wav",
        "formats/ravdess__ravdess_Actor_01_03-01-02-01-01-02-01.wav",
        "emotion/emodb__03a01Fa.wav",
    ]
    return [data_dir / n for n in names if (data_dir / n).exists()]


def test_agrees_with_soxr_hq_on_real_speech(test_data_dir):
    soxr = pytest.importorskip("soxr", reason="soxr (test extra) is the quality peer")
    import soundfile as sf

    files = _speech_files(test_data_dir)
    assert files, f"no speech recordings found under {test_data_dir}"
    for path in files:
        x, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = x.mean(axis=1).astype(np.float32)
        ours = fe.resample(mono, rate).astype(np.float64)
        peer = soxr.resample(mono, rate, 16000, quality="HQ").astype(np.float64)
        n = min(len(ours), len(peer))
        assert abs(len(ours) - len(peer)) <= 1
        inner = slice(800, n - 800)  # both treat the edges differently
        err = ours[inner] - peer[inner]
        snr_db = 10 * np.log10(np.sum(peer[inner] ** 2) / np.sum(err**2))
        assert snr_db >= 60.0, f"{path.name}: {snr_db:.1f} dB"


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("rate", [0, -1, 999, 384001, 4_000_000_000, float("nan"), float("inf"),
                                  44100.5, True, "44100", None])
def test_bad_rates_are_refused_before_c(rate):
    with pytest.raises(FrontendError, match="rate"):
        fe.Resampler(rate)


def test_integral_float_rate_is_accepted():
    assert fe.Resampler(44100.0).rate_hz == 44100


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
    x = _noise(100)
    x[37] = bad
    with pytest.raises(FrontendError, match="index 37"):
        fe.resample(x, 48000)
    with pytest.raises(FrontendError):
        fe.normalize(x)


def test_wrong_shapes_and_types_are_refused():
    with pytest.raises(FrontendError, match="1-D"):
        fe.resample(np.zeros((10, 2), np.float32), 48000)
    with pytest.raises(FrontendError, match="numeric"):
        fe.resample(["a", "b"], 48000)
    with pytest.raises(FrontendError, match="2-D"):
        fe.to_mono(np.zeros((2, 2, 2), np.float32))


def test_flushed_resampler_refuses_more_input_until_reset():
    r = fe.Resampler(48000)
    first = np.concatenate([r.process(_noise(4800)), r.flush()])
    with pytest.raises(FrontendError, match="flushed"):
        r.process(_noise(10))
    with pytest.raises(FrontendError, match="flushed"):
        r.flush()
    r.reset()
    again = np.concatenate([r.process(_noise(4800)), r.flush()])
    np.testing.assert_array_equal(first, again)


# ------------------------------------------------------------------ conversions and windows


def _pcm_bytes(values: np.ndarray, fmt: str) -> bytes:
    if fmt == "u8":
        return (values.astype(np.int64) + 128).astype(np.uint8).tobytes()
    if fmt == "s16":
        return values.astype("<i2").tobytes()
    if fmt == "s24":
        v = values.astype(np.int64) & 0xFFFFFF
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    if fmt == "s32":
        return values.astype("<i4").tobytes()
    if fmt == "f32":
        return values.astype(np.float32).tobytes()
    return values.astype(np.float64).tobytes()


@pytest.mark.parametrize("fmt,lo,hi", [("u8", -128, 127), ("s16", -32768, 32767),
                                        ("s24", -(1 << 23), (1 << 23) - 1),
                                        ("s32", -(1 << 31), (1 << 31) - 1)])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_integer_pcm_conversion(fmt, lo, hi, channels):
    rng = np.random.default_rng(channels)
    values = rng.integers(lo, hi, size=(257, channels), endpoint=True)
    values[0, 0], values[1, 0] = lo, hi
    data = _pcm_bytes(values.reshape(-1), fmt)
    got = fe.pcm_to_float(data, channels, fmt)
    assert got.shape == (257, channels)
    np.testing.assert_array_equal(got, reference.pcm_to_float(data, channels, fmt))
    assert got[0, 0] == -1.0 and got.max() <= 1.0  # s32 max rounds to 1.0 in float32
    np.testing.assert_allclose(got, values / -lo, atol=1e-7)


@pytest.mark.parametrize("fmt", ["f32", "f64"])
def test_float_pcm_conversion_and_nan_refusal(fmt):
    values = np.linspace(-1, 1, 64).reshape(32, 2)
    np.testing.assert_array_equal(fe.pcm_to_float(_pcm_bytes(values.reshape(-1), fmt), 2, fmt),
                                  values.astype(np.float32))
    values[3, 1] = np.nan
    with pytest.raises(FrontendError, match="NaN"):
        fe.pcm_to_float(_pcm_bytes(values.reshape(-1), fmt), 2, fmt)


def test_pcm_argument_errors():
    with pytest.raises(FrontendError, match="sample format"):
        fe.pcm_to_float(b"\0\0", 1, "s8")
    with pytest.raises(FrontendError, match="channel"):
        fe.pcm_to_float(b"\0\0", 0, "s16")
    with pytest.raises(FrontendError, match="whole number"):
        fe.pcm_to_float(b"\0\0\0", 1, "s16")


def test_to_mono_averages_channels():
    x = _noise(3000).reshape(500, 6)
    np.testing.assert_allclose(fe.to_mono(x), x.astype(np.float64).mean(axis=1), atol=1e-7)
    np.testing.assert_array_equal(fe.to_mono(x[:, 0]), x[:, 0])


def test_normalize_matches_the_feature_extractor_formula():
    x = _noise(16000) + 0.3
    expected = (x.astype(np.float64) - x.mean(dtype=np.float64)) / np.sqrt(x.var(dtype=np.float64) + 1e-7)
    np.testing.assert_allclose(fe.normalize(x), expected, atol=1e-6)
    np.testing.assert_allclose(fe.normalize(x), reference.normalize(x), atol=1e-6)
    np.testing.assert_array_equal(fe.normalize(np.full(400, 0.5, np.float32)), np.zeros(400))


def test_rms_dbfs():
    assert fe.rms_dbfs(np.ones(1000, np.float32)) == pytest.approx(0.0, abs=1e-6)
    sine = np.sin(2 * np.pi * np.arange(16000) / 16).astype(np.float32)
    assert fe.rms_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert fe.rms_dbfs(np.zeros(100, np.float32)) == -200.0
    assert fe.rms_dbfs(np.zeros(0, np.float32)) == -200.0


def test_seconds_round_to_model_frames():
    assert fe.seconds_to_samples(3.0) == 48000
    assert fe.seconds_to_samples(0.5) == 8000
    assert fe.seconds_to_samples(0.01) == 320  # at least one frame
    assert fe.seconds_to_samples(1.01) == 16000  # 50.5 frames rounds to even
    for bad in (0, -1, float("nan"), "3"):
        with pytest.raises(FrontendError):
            fe.seconds_to_samples(bad)


@pytest.mark.parametrize("n", [0, 399, 400, 8000, 47999, 48000, 48001, 56000, 56399, 56400, 100_003])
@pytest.mark.parametrize("window_s,hop_s", [(3.0, 1.0), (3.0, 3.0), (1.0, 0.25), (0.5, 0.5)])
def test_windows_follow_the_reference_rules(n, window_s, hop_s):
    got = fe.windows(n, window_s, hop_s)
    window, hop = fe.seconds_to_samples(window_s), fe.seconds_to_samples(hop_s)
    assert [(w.start, w.length) for w in got] == reference.window_bounds(n, window, hop, 400)
    covered = set()
    for k, w in enumerate(got):
        assert w.index == k and 400 <= w.length <= window and w.stop <= n
        covered.update(range(w.start, w.stop, 97))
    if n >= 400:
        assert got, "a signal of at least one frame gets a window"
        assert got[-1].stop >= n - 400  # at most a sub-frame tail is left out


def test_short_signal_is_one_short_window_never_padded():
    (w,) = fe.windows(20000, 3.0, 1.0)
    assert (w.start, w.length, w.end_s) == (0, 20000, 1.25)


def test_window_arguments_are_validated():
    with pytest.raises(FrontendError, match="hop"):
        fe.windows(48000, 1.0, 2.0)
    with pytest.raises(FrontendError):
        fe.windows(-1, 1.0, 1.0)


def test_cffi_declarations_cover_the_header():
    header = (ROOT / "native/include/edgeser/frontend.h").read_text()
    exported = set(re.findall(r"EDGESER_API[^;]*?\b(edgeser_\w+)\s*\(", header))
    build_script = (ROOT / "native/build_ffi.py").read_text()
    declared = set(re.findall(r"\b(edgeser_\w+)\s*\(", build_script))
    assert exported and exported <= declared, exported - declared
