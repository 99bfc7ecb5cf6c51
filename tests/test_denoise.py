"""The noise suppressor through Python (``edgeser.frontend.denoise``) and ``edgeser denoise``:
chunking invariance, latency, lengths, noise reduction on real speech, clean speech left alone,
hostile samples, the CLI's WAV output and its one-sentence errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from edgeser import frontend
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import FrontendError
from edgeser.frontend import denoise as dn
from edgeser.frontend._binding import lib

pytestmark = pytest.mark.skipif(lib is None, reason="the compiled frontend is not built")

SPEECH = ("ravdess__03-01-05-01-01-01-04.wav", "emodb__09a01Fa.wav", "kor__sub100122a00006.wav")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeser", "denoise", *args],
                          capture_output=True, text=True, timeout=120)


def speech(test_data_dir, name: str) -> np.ndarray:
    x, rate = sf.read(test_data_dir / "emotion" / name, dtype="float32")
    return frontend.resample(x, rate)


def white(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    scale = np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2)
                    / 10 ** (snr_db / 10))
    return (clean + scale * noise).astype(np.float32)


def segmental_snr_db(clean: np.ndarray, test: np.ndarray, frame: int = 320) -> float:
    """Mean over 20 ms frames where the clean signal is active (within 40 dB of its loudest
    frame) of each frame's SNR, clipped to [-10, 35] dB."""
    n = len(clean) // frame * frame
    c = clean[:n].reshape(-1, frame).astype(np.float64)
    err = c - test[:n].reshape(-1, frame)
    power = (c ** 2).sum(axis=1)
    active = power > 1e-4 * power.max()
    snr = 10 * np.log10(power[active] / np.maximum((err[active] ** 2).sum(axis=1), 1e-20))
    return float(np.mean(np.clip(snr, -10, 35)))


def switched_tone(rate: int, seconds: float) -> np.ndarray:
    """A 700 Hz tone on for 0.4 s in every 0.8 s over faint noise (speech-like pauses: a
    stationary tone is noise to the suppressor)."""
    t = np.arange(int(rate * seconds)) / rate
    on = (t % 0.8) < 0.4
    return (0.5 * on * np.sin(2 * np.pi * 700 * t) + 1e-3 * white(t.size, 3)).astype(np.float32)


# ------------------------------------------------------------------ a reference of the algorithm


def reference_stream(x: np.ndarray, rate: int) -> np.ndarray:
    """The suppressor's algorithm (native/src/denoise.c, its constants copied) in float64
    NumPy, one frame at a time: the n + latency samples that process and flush write."""
    from scipy.special import exp1

    frame = 256
    while frame * 2 * 1000 <= rate * 64:
        frame *= 2
    hop, bins = frame // 2, frame // 2 + 1
    hop_s = hop / rate
    a_smooth, a_presence, a_noise = (np.exp(-hop_s / tau) for tau in (0.072, 0.010, 0.072))
    sub_frames, init_frames = int(1.5 / (8 * hop_s) + 0.5), int(0.1 / hop_s + 0.5)
    floor, xi_min, gain_min = 1e-12 * hop, 10 ** -2.5, 10 ** (-15 / 20)
    snr = 10 ** 1.5
    prior_ratio = 0.3 / 0.7 * (1 + snr)
    window = np.sin(np.pi * np.arange(frame) / frame)

    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    stream = np.concatenate([np.zeros(frame - hop), np.clip(x, -65536.0, 65536.0),
                             np.zeros(frame)])
    n_frames = (x.size + frame) // hop
    z = np.zeros(n_frames * hop + frame)
    smooth = noise = sub_min = ring = None
    presence, stuck, clean = np.zeros(bins), np.zeros(bins), np.zeros(bins)
    sub_count = ring_pos = 0
    for f in range(n_frames):
        spec = np.fft.rfft(stream[f * hop:f * hop + frame] * window)
        power = spec.real ** 2 + spec.imag ** 2
        padded = np.concatenate([[power[1]], power, [power[-2]]])
        sf_ = 0.25 * padded[:-2] + 0.5 * power + 0.25 * padded[2:]
        smooth = np.maximum(sf_ if f == 0 else a_smooth * smooth + (1 - a_smooth) * sf_, floor)
        if f == 0:
            ring, sub_min, noise = np.tile(smooth, (8, 1)), smooth.copy(), np.zeros(bins)
        sub_min = np.minimum(sub_min, smooth)
        smin = np.minimum(sub_min, ring.min(axis=0))
        closing = sub_count + 1 >= sub_frames
        if closing:
            ring[ring_pos], sub_min = sub_min, smooth.copy()
        presence = a_presence * presence + (1 - a_presence) * (smooth > 5 * smin)
        if f < init_frames:
            noise = noise + (power - noise) / (f + 1)
        else:
            g = np.minimum(power / noise, 1e4)
            ph1 = 1 / (1 + prior_ratio * np.exp(-np.minimum(g * snr / (1 + snr), 80)))
            stuck = 0.9 * stuck + 0.1 * ph1
            ph1 = np.where(stuck > 0.99, np.minimum(ph1, 0.99), ph1)
            noise = a_noise * noise + (1 - a_noise) * ((1 - ph1) * power + ph1 * noise)
        noise = np.maximum(np.maximum(noise, smin), floor)
        ring_pos, sub_count = ((ring_pos + 1) % 8, 0) if closing else (ring_pos, sub_count + 1)

        g = np.minimum(power / noise, 1e4)
        prev = np.minimum(clean / noise, 1e4)
        weight = 0.93 + 0.02 * (prev / (1 + prev)) ** 2
        xi = np.maximum(weight * prev + (1 - weight) * np.maximum(g - 1, 0), xi_min)
        v = np.maximum(g * xi / (1 + xi), 1e-6)
        g1 = np.minimum(xi / (1 + xi) * np.exp(0.5 * exp1(v)), 1.0)
        clean = g1 ** 2 * power
        q = np.minimum(1 - presence, 0.5)
        p = 1 / (1 + q / (1 - q) * (1 + xi) * np.exp(-np.minimum(v, 80)))
        gain = np.maximum(np.exp(p * np.log(np.maximum(g1, gain_min))
                                 + (1 - p) * np.log(gain_min)), gain_min)
        z[f * hop:f * hop + frame] += np.fft.irfft(gain * spec, frame) * window
    return np.concatenate([np.zeros(hop), z])[:x.size + frame]


@pytest.mark.parametrize("rate", [SAMPLE_RATE_HZ, 8000, 44100])
def test_native_output_follows_the_reference(rate):
    """The C code computes the documented algorithm: its output differs from the float64
    reference by less than -80 dB of the signal (measured: -135 dB; float32 rounding and the C
    exponential-integral approximation)."""
    x = at_snr(switched_tone(rate, 3.0), white(3 * rate, 11), 5)
    x[rate // 2:rate // 2 + 50] = np.nan
    s = dn.NoiseSuppressor(rate)
    native = np.concatenate([s.process(x), s.flush()]).astype(np.float64)
    expected = reference_stream(x, rate)
    assert native.shape == expected.shape
    err_db = 10 * np.log10(np.sum((native - expected) ** 2) / np.sum(expected ** 2))
    assert err_db < -80


# ------------------------------------------------------------------ the stream


def test_rates_match_the_header():
    assert (dn.MIN_RATE_HZ, dn.MAX_RATE_HZ) == (lib.EDGESER_DENOISE_MIN_RATE_HZ,
                                                lib.EDGESER_DENOISE_MAX_RATE_HZ)


@pytest.mark.parametrize("rate", [8000, SAMPLE_RATE_HZ, 22050, 44100, 48000])
def test_latency_is_one_frame_of_at_most_64_ms(rate):
    s = dn.NoiseSuppressor(rate)
    assert s.latency_samples == s.frame_samples
    assert s.latency_samples & (s.latency_samples - 1) == 0
    assert 0.032 < s.latency_samples / rate <= 0.064


def test_chunking_does_not_change_the_output():
    x = at_snr(switched_tone(SAMPLE_RATE_HZ, 3.0), white(3 * SAMPLE_RATE_HZ), 5)
    whole = dn.NoiseSuppressor()
    expected = np.concatenate([whole.process(x), whole.flush()])
    rng = np.random.default_rng(7)
    for sizes in ([1] * 700 + [x.size], [0, 513, 0, 1024, 1025], list(rng.integers(0, 4000, 40))):
        s = dn.NoiseSuppressor()
        bounds = np.minimum(np.cumsum([0, *sizes]), x.size)
        parts = [s.process(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        parts += [s.process(x[bounds[-1]:]), s.flush()]
        for a, b, part in zip(bounds[:-1], bounds[1:], parts):
            assert part.size == b - a
        np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_process_returns_as_many_samples_delayed_by_the_latency():
    rate = SAMPLE_RATE_HZ
    x = switched_tone(rate, 4.0)
    s = dn.NoiseSuppressor(rate)
    y = s.process(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    lag = s.latency_samples
    steady = np.flatnonzero(((np.arange(x.size) / rate) % 0.8 > 0.1)
                            & ((np.arange(x.size) / rate) % 0.8 < 0.3)
                            & (np.arange(x.size) > rate))
    steady = steady[steady + lag < x.size]
    errors = {d: np.sum((y[steady + lag] - x[steady + d]) ** 2) for d in (-1, 0, 1)}
    assert errors[0] < 1e-2 * np.sum(x[steady] ** 2)
    assert errors[0] * 10 < min(errors[-1], errors[1])
    assert s.flush().size == lag


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1025, 50_000])
@pytest.mark.parametrize("rate", [8000, SAMPLE_RATE_HZ, 48000])
def test_denoise_keeps_the_length_and_the_alignment(n, rate):
    x = switched_tone(rate, n / rate + 1e-9)[:n]
    y = dn.denoise(x, rate)
    assert y.dtype == np.float32 and y.shape == (n,)
    if n >= 1.5 * rate:  # the latency is removed: the steady tone lines up with the input
        steady = slice(rate + rate // 10, rate + 3 * rate // 10)
        assert np.sum((y[steady] - x[steady]) ** 2) < 1e-2 * np.sum(x[steady] ** 2)


def test_flush_ends_the_stream_and_reset_starts_anew():
    x = switched_tone(SAMPLE_RATE_HZ, 1.0)
    s = dn.NoiseSuppressor()
    first = np.concatenate([s.process(x), s.flush()])
    with pytest.raises(FrontendError, match="reset"):
        s.process(x)
    with pytest.raises(FrontendError, match="reset"):
        s.flush()
    s.reset()
    np.testing.assert_array_equal(np.concatenate([s.process(x), s.flush()]), first)


def test_nonfinite_samples_are_taken_as_zero_and_the_output_is_finite():
    x = at_snr(switched_tone(SAMPLE_RATE_HZ, 2.0), white(2 * SAMPLE_RATE_HZ), 10)
    bad = np.zeros(x.size, bool)
    bad[::97] = True
    bad[5000:5400] = True
    hostile = x.copy()
    hostile[bad] = np.resize(np.array([np.nan, np.inf, -np.inf], np.float32), bad.sum())
    zeroed = np.where(bad, np.float32(0), x)
    y = dn.denoise(hostile, SAMPLE_RATE_HZ)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y, dn.denoise(zeroed, SAMPLE_RATE_HZ))


def test_silence_dc_and_clipping():
    n = 3 * SAMPLE_RATE_HZ
    assert not dn.denoise(np.zeros(n, np.float32), SAMPLE_RATE_HZ).any()
    dc = dn.denoise(np.full(n, 0.5, np.float32), SAMPLE_RATE_HZ)
    assert np.isfinite(dc).all() and abs(dc[2 * SAMPLE_RATE_HZ:].mean()) < 0.5 * 10 ** (-10 / 20)
    clipped = np.clip(4 * switched_tone(SAMPLE_RATE_HZ, 3.0) + 0.1 * white(n), -1, 1)
    clipped[::1000] = 1e30
    y = dn.denoise(clipped, SAMPLE_RATE_HZ)
    assert np.isfinite(y).all() and np.abs(y).max() < 1e6


@pytest.mark.parametrize("rate", [7999, 192_001, 16000.5, True, "16000", float("inf"), 10 ** 400])
def test_bad_rates_are_one_frontend_error(rate):
    with pytest.raises(FrontendError):
        dn.NoiseSuppressor(rate)


def test_only_mono_arrays():
    s = dn.NoiseSuppressor()
    with pytest.raises(FrontendError, match="1-D"):
        s.process(np.zeros((100, 2), np.float32))
    with pytest.raises(FrontendError, match="numeric"):
        s.process(["a", "b"])


# ------------------------------------------------------------------ real speech


@pytest.mark.parametrize("name", SPEECH)
def test_noisy_speech_gets_cleaner(test_data_dir, name):
    """Real speech in white noise at 5 dB: the segmental SNR rises by at least 3 dB (measured:
    4.9 to 6.0 dB on these clips)."""
    clean = speech(test_data_dir, name)
    noisy = at_snr(clean, white(clean.size, 1), 5)
    gain_db = segmental_snr_db(clean, dn.denoise(noisy, SAMPLE_RATE_HZ)) - \
        segmental_snr_db(clean, noisy)
    assert gain_db >= 3.0


@pytest.mark.parametrize("name", SPEECH)
def test_clean_speech_is_barely_changed(test_data_dir, name):
    """Measured correlation 0.995 to 0.9999."""
    clean = speech(test_data_dir, name)
    assert np.corrcoef(clean, dn.denoise(clean, SAMPLE_RATE_HZ))[0, 1] >= 0.98


# ------------------------------------------------------------------ the command


def test_cli_writes_a_mono_wav_at_the_input_rate_or_16k(test_data_dir, tmp_path):
    clean, rate = sf.read(test_data_dir / "emotion" / SPEECH[1], dtype="float32")
    stereo = np.stack([clean, 0.5 * clean], axis=1) + 0.01 * white(2 * clean.size).reshape(-1, 2)
    src = tmp_path / "in.wav"
    sf.write(src, stereo, rate, subtype="PCM_16")
    out = tmp_path / "out.wav"

    result = run_cli(str(src), str(out))
    assert result.returncode == 0, result.stderr
    info = sf.info(out)
    assert (info.format, info.samplerate, info.channels, info.frames) == ("WAV", rate, 1,
                                                                           clean.size)
    assert info.subtype == "PCM_16"
    assert str(out) in result.stdout

    result = run_cli(str(src), str(out), "--rate", str(SAMPLE_RATE_HZ))
    assert result.returncode == 0, result.stderr
    info = sf.info(out)
    assert info.samplerate == SAMPLE_RATE_HZ and info.channels == 1
    assert info.frames == -(-clean.size * SAMPLE_RATE_HZ // rate)
    y, _ = sf.read(out, dtype="float32")
    mono = frontend.resample(stereo.mean(axis=1), rate)
    assert np.std(y) < np.std(mono)  # the added noise went down
    assert np.corrcoef(y, mono)[0, 1] > 0.9


def test_cli_keeps_float_precision_for_float_input(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, 3.0 * switched_tone(SAMPLE_RATE_HZ, 3.0), SAMPLE_RATE_HZ, subtype="FLOAT")
    assert run_cli(str(src), str(out)).returncode == 0
    assert sf.info(out).subtype == "FLOAT"
    assert np.abs(sf.read(out)[0]).max() > 1.0  # not clipped


def test_cli_bad_input_is_one_sentence_and_exit_1(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    out = tmp_path / "out.wav"
    for src in (text, tmp_path / "missing.wav"):
        result = run_cli(str(src), str(out))
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and src.name in lines[0] and "Traceback" not in result.stderr
        assert not out.exists()
    assert list(tmp_path.iterdir()) == [text]  # no temp file left behind


def test_cli_rate_outside_the_suppressor_range(tmp_path):
    src, out = tmp_path / "low.wav", tmp_path / "out.wav"
    sf.write(src, switched_tone(4000, 1.0), 4000, subtype="PCM_16")
    result = run_cli(str(src), str(out))
    assert result.returncode == 1 and "low.wav" in result.stderr and "4000 Hz" in result.stderr
    assert not out.exists()
    assert run_cli(str(src), str(out), "--rate", str(SAMPLE_RATE_HZ)).returncode == 0
    assert sf.info(out).samplerate == SAMPLE_RATE_HZ


def test_cli_other_resampling_rates_are_usage_errors(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, switched_tone(SAMPLE_RATE_HZ, 0.5), SAMPLE_RATE_HZ)
    assert run_cli(str(src), str(tmp_path / "out.wav"), "--rate", "8000").returncode == 2


def test_cli_unwritable_output_is_one_sentence(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, switched_tone(SAMPLE_RATE_HZ, 0.5), SAMPLE_RATE_HZ)
    result = run_cli(str(src), str(tmp_path / "no" / "such" / "dir" / "out.wav"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "out.wav" in result.stderr
