"""The NumPy-facing frontend: resampler against its reference, chunking, exact lengths and
timing, the quality figures promised in the README, and validation of every argument."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import os
import pickle
import re
import runpy
import shutil
import subprocess
import sys
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
HEADER = ROOT / "native/include/edgeser/frontend.h"
BUILD_FFI = ROOT / "native/build_ffi.py"


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


@pytest.mark.parametrize("rate_hz", EXACT_RATES + OTHER_RATES + [16001, 384000])
def test_stages_follow_the_plan(rate_hz):
    """16 kHz, rates below it and its multiples: one stage; other rates above it: a short stage
    to 32 kHz, then the sharp decimating stage of 32 kHz; each as the reference designs it."""
    info = fe.Resampler(rate_hz).info
    d = reference.design(rate_hz)
    two = rate_hz > 16000 and rate_hz % 16000 != 0
    assert len(info.stages) == len(d.stages) == (2 if two else 1)
    for got, want in zip(info.stages, d.stages):
        assert (got.rate_in_hz, got.rate_out_hz, got.up, got.down, got.taps_per_phase,
                got.phases, got.exact, got.table_bytes) == (
            want.rate_in_hz, want.rate_out_hz, want.up, want.down, want.taps, want.phases,
            want.exact, want.table_bytes)
        assert got.passband_hz == pytest.approx(want.passband_hz)
    assert info.stages[0].rate_in_hz == rate_hz and info.stages[-1].rate_out_hz == 16000
    if two:
        assert info.stages[0].rate_out_hz == 32000
        assert (info.stages[1].up, info.stages[1].down) == (1, 2)
        assert info.taps_per_phase > info.stages[0].taps_per_phase  # the filters composed
    assert info.exact == all(s.exact for s in info.stages)
    assert info.table_bytes == sum(s.table_bytes for s in info.stages) <= 256 * 1024
    assert (info.passband_hz, info.stopband_hz) == (info.stages[-1].passband_hz,
                                                    info.stages[-1].stopband_hz)


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


@pytest.mark.parametrize("rate_hz", [22050, 32000, 44100, 48000, 88200, 96000])
def test_passband_is_flat_to_7_khz(rate_hz):
    # Even-Hz tones sit on bin centres of the 1.5 s FFT (0.667 Hz bins), so no scalloping.
    for freq in (20, 100, 440, 1000, 2002, 3500, 5000, 6000, 6500, 6800, 7000):
        assert abs(_tone_levels_db(rate_hz, freq).max()) < 0.1, freq


@pytest.mark.parametrize("rate_hz", [22050, 32000, 44100, 48000, 88200, 96000])
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


# ------------------------------------------------------------------ the cffi declarations


def _build_ffi():
    """native/build_ffi.py as a module (loading it runs its own header check)."""
    spec = importlib.util.spec_from_file_location("edgeser_build_ffi", BUILD_FFI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cdef_equals_the_header():
    build = _build_ffi()
    header = HEADER.read_text()
    assert build.cdef_drift(header, build.CDEF) == []
    # The comparison is not vacuous: it saw every exported function, the enums with all their
    # values, the struct with all its fields and the defines the cdef names.
    found, defines = build.declarations(header)
    exported = set(re.findall(r"^EDGESER_API\b[^;(]*?\b(edgeser_\w+)\(", header, re.MULTILINE))
    assert len(exported) == 55
    assert {k.split()[1] for k in found if k.startswith("function ")} == exported
    assert len(found["enum edgeser_status"][1]) == 10
    assert found["enum edgeser_pcm_format"][1][-1] == ("EDGESER_PCM_F64", "6")
    assert [name for name, _ in found["struct edgeser_resampler_info"][1]][-2:] == [
        "table_bytes", "state_bytes"]
    assert "typedef edgeser_resampler" in found
    for name in ("edgeser_windower", "edgeser_event_tracker", "edgeser_summary"):
        assert f"typedef {name}" in found, name
    assert [n for n, _ in found["struct edgeser_window"][1]] == [
        "index", "start", "stop", "length", "level_dbfs", "silent", "is_final"]
    assert found["enum edgeser_normalization"][1] == [
        ("EDGESER_NORMALIZE_NONE", "0"), ("EDGESER_NORMALIZE_PER_WINDOW", "1")]
    _, cdef_defines = build.declarations(build.CDEF)
    assert set(cdef_defines) == {
        "EDGESER_VERSION_MAJOR", "EDGESER_VERSION_MINOR", "EDGESER_VERSION_PATCH",
        "EDGESER_TARGET_RATE_HZ", "EDGESER_MIN_RATE_HZ", "EDGESER_MAX_RATE_HZ",
        "EDGESER_TABLE_BUDGET_BYTES", "EDGESER_FRAME_SAMPLES", "EDGESER_MIN_WINDOW_SAMPLES",
        "EDGESER_DENOISE_MIN_RATE_HZ", "EDGESER_DENOISE_MAX_RATE_HZ",
        "EDGESER_DENOISE_FRAME_MAX_MS", "EDGESER_DENOISE_FLOOR_DB",
    }


# (what changes in a copy of the header, the old text, the new text, what the message must name)
HEADER_DRIFTS = [
    ("parameter type", "size_t out_capacity, size_t *n_out);\n\n/* End",
     "size_t out_capacity, uint32_t *n_out);\n\n/* End", "function edgeser_resampler_process"),
    ("parameter name", "size_t k, size_t *start,", "size_t index, size_t *start,",
     "function edgeser_window_bounds"),
    ("return type", "EDGESER_API unsigned edgeser_version_number(void);",
     "EDGESER_API uint32_t edgeser_version_number(void);", "function edgeser_version_number"),
    ("const dropped", "edgeser_normalize(const float *in", "edgeser_normalize(float *in",
     "function edgeser_normalize"),
    ("new function", "#ifdef __cplusplus\n}",
     "EDGESER_API edgeser_status edgeser_new_thing(size_t n);\n\n#ifdef __cplusplus\n}",
     "function edgeser_new_thing: in the header but not declared in the cdef"),
    ("removed function", "EDGESER_API void edgeser_resampler_destroy(edgeser_resampler *resampler);",
     "", "function edgeser_resampler_destroy: declared in the cdef but not in the header"),
    ("enum value", "EDGESER_ERR_NOMEM = 9 ", "EDGESER_ERR_NOMEM = 10 ",
     "enum edgeser_status: constant EDGESER_ERR_NOMEM is `10` in the header but `9`"),
    ("enum constant added", "EDGESER_PCM_F64 = 6 ", "EDGESER_PCM_F64 = 6,\n    EDGESER_PCM_S8 = 7 ",
     "enum edgeser_pcm_format: constant EDGESER_PCM_S8"),
    ("enum constants swapped", "    EDGESER_PCM_U8 = 1,   /* unsigned 8-bit, 128 = zero (WAV 8-bit) */\n"
     "    EDGESER_PCM_S16 = 2,", "    EDGESER_PCM_U8 = 2,\n    EDGESER_PCM_S16 = 1,",
     "enum edgeser_pcm_format: constant EDGESER_PCM_U8"),
    ("struct field type", "    int exact;", "    uint32_t exact;",
     "struct edgeser_resampler_info: field exact"),
    ("struct field added", "    size_t state_bytes;", "    size_t state_bytes;\n    double delay_s;",
     "struct edgeser_resampler_info: field delay_s"),
    ("struct fields reordered", "    uint32_t up;                /* L: rate_out / gcd */\n"
     "    uint32_t down;              /* M: rate_in / gcd */",
     "    uint32_t down;\n    uint32_t up;", "struct edgeser_resampler_info: the fields are in another order"),
    ("typedef changed", "typedef struct edgeser_resampler edgeser_resampler;",
     "typedef struct edgeser_resampler_s edgeser_resampler;", "typedef edgeser_resampler"),
    ("define removed", "#define EDGESER_TABLE_BUDGET_BYTES (256u * 1024u)", "",
     "#define EDGESER_TABLE_BUDGET_BYTES: named in the cdef but not defined in the header"),
    ("define not an integer", "#define EDGESER_MIN_RATE_HZ 1000u", "#define EDGESER_MIN_RATE_HZ 1e3",
     "#define EDGESER_MIN_RATE_HZ"),
]


@pytest.mark.parametrize("what,old,new,named", HEADER_DRIFTS, ids=[d[0] for d in HEADER_DRIFTS])
def test_header_drift_fails_naming_the_declaration(what, old, new, named):
    build = _build_ffi()
    header = HEADER.read_text()
    assert header.count(old) == 1, f"the test's anchor for {what!r} is not in the header once"
    problems = build.cdef_drift(header.replace(old, new), build.CDEF)
    assert problems, f"{what}: no drift found"
    assert any(named in line for line in problems), problems


def test_layout_and_comments_are_not_drift():
    build = _build_ffi()
    header = HEADER.read_text()
    reflowed = header.replace(
        "EDGESER_API edgeser_status edgeser_mixdown(const float *in, size_t n_frames, uint32_t channels,\n"
        "                                           float *out);",
        "EDGESER_API edgeser_status\nedgeser_mixdown( const float* in,  /* frames */ size_t n_frames,\n"
        "\tuint32_t channels, float * out ) ;  // mono",
    ).replace("EDGESER_ERR_NOMEM = 9 ", "EDGESER_ERR_NOMEM = 0x9 ")
    assert reflowed != header
    assert build.cdef_drift(reflowed, build.CDEF) == []


def test_the_build_stops_on_drift(tmp_path):
    (tmp_path / "native/include/edgeser").mkdir(parents=True)
    (tmp_path / "native/src").mkdir()
    shutil.copy(BUILD_FFI, tmp_path / "native/build_ffi.py")
    (tmp_path / "native/include/edgeser/frontend.h").write_text(
        HEADER.read_text().replace("EDGESER_ERR_NOMEM = 9 ", "EDGESER_ERR_NOMEM = 10 "))
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(tmp_path / "native/build_ffi.py"))
    message = str(info.value)
    assert "differ from" in message and "enum edgeser_status: constant EDGESER_ERR_NOMEM" in message


# ------------------------------------------------------------------ one backend, chosen at import

PRIMITIVES = ("StreamResampler", "mixdown", "pcm_to_float", "normalize", "rms_dbfs",
              "window_bounds", "StreamWindower", "StreamEvents", "StreamSummary")
# The methods of each stateful primitive, with the same parameters in both backends.
PRIMITIVE_METHODS = {
    "StreamResampler": ("info", "process", "flush", "reset"),
    "StreamWindower": ("push", "finish", "samples", "reset"),
    "StreamEvents": ("add", "finish", "reset"),
    "StreamSummary": ("add_window", "add_event", "totals", "reset"),
}
FRONTEND_DIR = ROOT / "edgeser/frontend"


def _function_bodies(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield node


def test_no_function_asks_which_backend_it_has():
    """The backend flag (and the native module's handles) appear only at module level: every
    function of the NumPy-facing API delegates to ``_backend`` without a branch on it."""
    flags = {"NATIVE", "BACKEND"}
    handles = {"lib", "ffi", "reference", "_native_backend", "_binding", "check"}
    for path in sorted(FRONTEND_DIR.glob("*.py")):
        for fn in _function_bodies(path):
            names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)}
            where = f"{path.name}:{fn.lineno}"
            assert not names & flags, f"{where} consults the backend flag {names & flags}"
            if path.name == "__init__.py":
                assert not names & handles, f"{where} reaches past the backend: {names & handles}"
                for test in (n.test for n in ast.walk(fn) if isinstance(n, (ast.If, ast.IfExp))):
                    tested = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
                    assert "_backend" not in tested, f"{where} branches on the backend"
    # ... and the one choice is made at module level of the package.
    tree = ast.parse((FRONTEND_DIR / "__init__.py").read_text())
    choices = [n for n in tree.body if isinstance(n, ast.If)
               and "NATIVE" in {m.id for m in ast.walk(n.test) if isinstance(m, ast.Name)}]
    assert len(choices) == 1


def test_the_chosen_backend_is_the_flagged_one():
    from edgeser.frontend import _binding

    assert fe.NATIVE is _binding.NATIVE
    assert fe._backend.__name__ == ("edgeser.frontend._native_backend" if fe.NATIVE
                                    else "edgeser.frontend.reference")
    assert fe.Resampler._Stream is fe._backend.StreamResampler
    assert isinstance(fe.Resampler(48000)._stream, fe._backend.StreamResampler)
    assert fe.Windower._Stream is fe._backend.StreamWindower
    assert fe.EventTracker._Stream is fe._backend.StreamEvents
    assert fe.StreamSummary._Stream is fe._backend.StreamSummary


def test_both_backends_define_the_same_primitives():
    if not fe.NATIVE:
        pytest.skip("edgeser._native is not built")
    from edgeser.frontend import _native_backend

    def params(obj):
        return list(inspect.signature(obj).parameters)

    for name in PRIMITIVES:
        native, ref = getattr(_native_backend, name), getattr(reference, name)
        assert params(native) == params(ref), name
    for cls, methods in PRIMITIVE_METHODS.items():
        for method in methods:
            native = getattr(getattr(_native_backend, cls), method)
            ref = getattr(getattr(reference, cls), method)
            assert params(native) == params(ref), f"{cls}.{method}"


def test_constants_are_the_contracts():
    from edgeser import contract

    assert fe.TARGET_RATE_HZ == contract.SAMPLE_RATE_HZ
    assert fe.FRAME_SAMPLES is contract.FRAME_SAMPLES
    assert fe.MIN_WINDOW_SAMPLES is contract.MIN_WINDOW_SAMPLES
    assert fe.SAMPLE_FORMATS is contract.SAMPLE_FORMATS
    assert fe._BYTES_PER_SAMPLE is contract.SAMPLE_FORMAT_BYTES
    assert reference.NORM_EPSILON is contract.NORM_EPSILON
    assert reference.SAMPLE_RATE_HZ is contract.SAMPLE_RATE_HZ
    # No module of the frontend binds a contract name to a value of its own.
    names = {n for n in vars(contract) if n.isupper()} | {"TARGET_RATE_HZ", "_BYTES_PER_SAMPLE"}
    for path in sorted(FRONTEND_DIR.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bound = {t.id for t in targets if isinstance(t, ast.Name)} & names
                assert not (bound and isinstance(node.value, (ast.Constant, ast.Dict, ast.Tuple,
                                                              ast.BinOp))), (path.name, bound)


def test_native_constants_agree_with_the_contract_and_the_reference():
    if not fe.NATIVE:
        pytest.skip("edgeser._native is not built")
    from edgeser import contract
    from edgeser.frontend import _native_backend
    from edgeser.frontend._binding import lib

    assert lib.EDGESER_TARGET_RATE_HZ == contract.SAMPLE_RATE_HZ
    assert (lib.EDGESER_MIN_RATE_HZ, lib.EDGESER_MAX_RATE_HZ, lib.EDGESER_TABLE_BUDGET_BYTES) == (
        reference.MIN_RATE_HZ, reference.MAX_RATE_HZ, reference.TABLE_BUDGET_BYTES)
    assert lib.EDGESER_FRAME_SAMPLES == contract.FRAME_SAMPLES
    assert lib.EDGESER_MIN_WINDOW_SAMPLES == contract.MIN_WINDOW_SAMPLES
    assert tuple(_native_backend.PCM_FORMATS) == contract.SAMPLE_FORMATS
    for name, code in _native_backend.PCM_FORMATS.items():
        assert lib.edgeser_pcm_bytes_per_sample(code) == contract.SAMPLE_FORMAT_BYTES[name], name


# One script computes everything the public API gives for a fixed set of inputs (results and
# error messages), calling each function twice; run with and without the compiled module.
_BATTERY = r"""
import pickle, sys, warnings
if sys.argv[1] == "hide":
    sys.modules["edgeser._native"] = None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import edgeser.frontend as fe
    from edgeser.errors import FrontendError

    def noise(n, seed):
        return (np.random.default_rng(seed).standard_normal(n) * 0.25).astype(np.float32)

    def attempt(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FrontendError as exc:
            return "FrontendError: " + str(exc)

    out = {"backend": fe.BACKEND}
    for round in range(2):
        for rate in (8000, 16000, 44100, 48000, 12345):
            x = noise(rate // 3 + 11, rate)
            r = fe.Resampler(rate)
            out[f"info {rate}"] = r.info
            chunks = [r.process(x[i:i + 997]) for i in range(0, len(x), 997)] + [r.flush()]
            out[f"stream {rate}"] = np.concatenate(chunks)
            out[f"flushed {rate}"] = attempt(r.process, x)
            r.reset()
            out[f"again {rate}"] = np.concatenate([r.process(x), r.flush()])
            out[f"resample {rate}"] = fe.resample(x, rate)
        frames = noise(3000, 1).reshape(500, 6)
        out["mono"] = fe.to_mono(frames)
        out["mono 1-D"] = fe.to_mono(frames[:, 0])
        raw = np.random.default_rng(2).integers(0, 256, 24 * 64, dtype=np.uint8).tobytes()
        for fmt in ("u8", "s16", "s24", "s32"):
            out["pcm " + fmt] = fe.pcm_to_float(raw, 2, fmt)
        floats = np.linspace(-1, 1, 48)
        out["pcm f32"] = fe.pcm_to_float(floats.astype(np.float32).tobytes(), 2, "f32")
        out["pcm f64"] = fe.pcm_to_float(floats.tobytes(), 3, "f64")
        out["normalize"] = fe.normalize(noise(16000, 3) + 0.3)
        out["normalize empty"] = fe.normalize(np.zeros(0, np.float32))
        out["rms"] = fe.rms_dbfs(noise(1000, 4))
        out["rms silence"] = fe.rms_dbfs(np.zeros(10, np.float32))
        out["windows"] = [fe.windows(n, 3.0, 1.0) for n in (0, 399, 400, 48000, 56399, 100003)]
        for rate in (16000, 44100, 48000):
            wx = noise(3 * rate + 999, rate + 1)
            wx[rate:rate + rate // 2] = 0.0
            windower = fe.Windower(rate, 16000, 4000, channels=2, silence_dbfs=-60.0)
            got = windower.push(np.stack([wx, wx / 2], 1)[:rate]) + windower.push(
                np.stack([wx, wx / 2], 1)[rate:]) + windower.finish()
            out[f"windower {rate}"] = [(w.index, w.start, w.samples, w.level_dbfs, w.silent)
                                       for w in got]
            out[f"windower samples {rate}"] = windower.samples
        raw = fe.Windower(8000, 3200, 3200, sample_format="s16", normalize=False)
        pcm16 = (noise(20000, 6) * 20000).astype("<i2").tobytes()
        out["windower s16"] = [(w.start, w.samples, w.level_dbfs)
                               for w in raw.push_pcm(pcm16) + raw.finish()]
        tracker = fe.EventTracker(0.6, release=0.4, min_duration=8000, merge_gap=4000)
        probabilities = np.random.default_rng(7).random(300)
        spans = [tracker.add(k * 4000, k * 4000 + 16000, None if k % 17 == 0 else float(p))
                 for k, p in enumerate(probabilities)] + [tracker.finish()]
        out["events"] = [tuple(vars(s).values()) for s in spans if s is not None]
        summary = fe.StreamSummary(3)
        for k in range(40):
            summary.add_window(None if k % 7 == 0 else noise(3, 100 + k).astype(float))
        summary.add_event(0, 12345)
        out["summary"] = tuple(vars(summary.totals()).values())
        bad_x = noise(100, 5)
        bad_x[37] = np.nan
        out["errors"] = [
            attempt(fe.Resampler, 999), attempt(fe.Resampler, 44100.5), attempt(fe.Resampler, "x"),
            attempt(fe.resample, bad_x, 48000), attempt(fe.normalize, bad_x),
            attempt(fe.rms_dbfs, np.zeros((2, 2))), attempt(fe.to_mono, np.zeros((4, 0))),
            attempt(fe.to_mono, np.zeros((2, 2, 2))), attempt(fe.pcm_to_float, b"\0\0", 1, "s8"),
            attempt(fe.pcm_to_float, b"\0\0", 0, "s16"), attempt(fe.pcm_to_float, b"\0\0\0", 1, "s16"),
            attempt(fe.pcm_to_float, np.array([np.nan]).tobytes(), 1, "f64"),
            attempt(fe.windows, 48000, 1.0, 2.0), attempt(fe.windows, -1, 1.0, 1.0),
            attempt(fe.seconds_to_samples, 1e305),
            attempt(fe.Windower, 16000, 8000, 9000), attempt(fe.EventTracker, 0.5, release=0.7),
            attempt(fe.StreamSummary, 0),
        ]
runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
out["warnings"] = [str(w.message) for w in runtime]
with open(sys.argv[2], "wb") as fh:
    pickle.dump(out, fh)
"""
_FALLBACK_MESSAGE = ("edgeser: the compiled frontend (edgeser._native) is missing; using the NumPy "
                     "reference frontend, which is much slower. Reinstall with a C compiler to fix "
                     "this.")


def _run_battery(tmp_path: Path, mode: str, **env):
    script = tmp_path / "battery.py"
    script.write_text(_BATTERY)
    result = tmp_path / f"{mode}.pickle"
    environ = {k: v for k, v in os.environ.items() if k != "EDGESER_REQUIRE_NATIVE"}
    run = subprocess.run([sys.executable, str(script), mode, str(result)], capture_output=True,
                         text=True, cwd=ROOT, env={**environ, **env}, timeout=300)
    return run, (pickle.loads(result.read_bytes()) if run.returncode == 0 else None)


def _assert_same(native, fallback, key=""):
    if isinstance(native, np.ndarray):
        assert fallback.dtype == native.dtype and fallback.shape == native.shape, key
        # The resampler and the normaliser compute in float32 (C) or float64 (NumPy); the
        # windower's windows are normalised, which scales those differences up by 1/std.
        atol = 1e-5 if key.startswith("windower") else 2e-6
        np.testing.assert_allclose(fallback, native, atol=atol, rtol=0, err_msg=key)
    elif isinstance(native, float):
        assert fallback == pytest.approx(native, abs=1e-4), key
    elif isinstance(native, (list, tuple)) and not isinstance(native, fe.Window):
        assert type(fallback) is type(native) and len(fallback) == len(native), key
        for a, b in zip(native, fallback):
            _assert_same(a, b, key)
    elif isinstance(native, fe.ResamplerInfo):
        assert type(fallback) is fe.ResamplerInfo, key
        _assert_same(tuple(vars(native).values()), tuple(vars(fallback).values()), key)
    else:
        assert fallback == native, key


def test_without_the_compiled_module_the_api_gives_the_same_results_and_warns_once(tmp_path):
    fallback_run, fallback = _run_battery(tmp_path, "hide")
    assert fallback_run.returncode == 0, fallback_run.stderr
    assert fallback["backend"] == "numpy"
    # The warning is raised once (at import) and printed once, however often the API is used.
    assert fallback["warnings"] == [_FALLBACK_MESSAGE]
    assert fallback_run.stderr.count(_FALLBACK_MESSAGE) == 1, fallback_run.stderr
    if not fe.NATIVE:
        pytest.skip("edgeser._native is not built: nothing to compare the fallback with")
    native_run, native = _run_battery(tmp_path, "native")
    assert native_run.returncode == 0, native_run.stderr
    assert native["backend"] == "native" and native["warnings"] == []
    assert _FALLBACK_MESSAGE not in native_run.stderr
    assert set(native) == set(fallback)
    for key in native:
        if key not in ("backend", "warnings"):
            _assert_same(native[key], fallback[key], key)
    assert all(m.startswith("FrontendError: ") for m in native["errors"])


def test_require_native_refuses_the_fallback(tmp_path):
    run, _ = _run_battery(tmp_path, "hide", EDGESER_REQUIRE_NATIVE="1")
    assert run.returncode != 0
    assert ("ImportError: EDGESER_REQUIRE_NATIVE=1 but the compiled frontend edgeser._native is "
            "missing") in run.stderr
    assert _FALLBACK_MESSAGE not in run.stderr
