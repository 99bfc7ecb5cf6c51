"""Noise suppression in the detection pipeline: after resampling to 16 kHz, before windowing and
before the VAD, its latency removed so window times stay exact and a stream equals file mode for
any chunking; the bundle's default and the options that override it; detect and serve carry it.

The wiring is tested with delay lines that stand in for the suppressor (same API, a known
latency): a pure delay must leave every result exactly as without it. The real suppressor
(``edgeser.frontend.denoise``) is then run through the same pipeline."""

from __future__ import annotations

import json
import shutil
import sys
import types

import numpy as np
import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")

from edgeser import Detector, bundle as bundles, frontend  # noqa: E402
from edgeser.serve.models import LoadedModel  # noqa: E402
from test_detect import feed_in_random_chunks, max_score_difference  # noqa: E402

DENOISE_MODULE = "edgeser.frontend.denoise"


class DelayLine:
    """The suppressor's API around ``gain * x`` delayed by ``latency`` samples."""

    latency = 240
    gain = 1.0

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.reset()

    @property
    def latency_samples(self) -> int:
        return self.latency

    def process(self, x: np.ndarray) -> np.ndarray:
        both = np.concatenate([self._tail, np.asarray(x, np.float32) * np.float32(self.gain)])
        out, self._tail = both[:len(x)], both[len(x):]
        return out

    def flush(self) -> np.ndarray:
        out, self._tail = self._tail, np.zeros(self.latency, np.float32)
        return out

    def reset(self) -> None:
        self._tail = np.zeros(self.latency, np.float32)


class Muting(DelayLine):
    latency = 160
    gain = 0.0


def stand_in(monkeypatch, cls: type) -> None:
    module = types.ModuleType(DENOISE_MODULE)
    module.NoiseSuppressor = cls
    monkeypatch.setitem(sys.modules, DENOISE_MODULE, module)


@pytest.fixture(scope="module")
def dimensional(tiny_bundles):
    return tiny_bundles("dimensional")


@pytest.fixture
def delay(monkeypatch):
    stand_in(monkeypatch, DelayLine)


def noisy(seconds: float, rate_hz: int = 16000, seed: int = 0) -> np.ndarray:
    x = speech_like(seconds, rate_hz, seed=seed, gap=(seconds / 3, seconds / 2))
    return x + (0.01 * np.random.default_rng(seed).standard_normal(len(x))).astype(np.float32)


def same_windows(a, b) -> None:
    assert [(w.index, w.start, w.stop, w.silent, w.level_dbfs) for w in a] == \
        [(w.index, w.start, w.stop, w.silent, w.level_dbfs) for w in b]


def assert_streams_equal_file_mode(detector, x, rate_hz, reference, seeds) -> None:
    for seed in seeds:
        windows, _, end = feed_in_random_chunks(detector.stream(rate_hz), x, seed, 4000)
        same_windows(windows, reference.windows)
        assert [w.speech_fraction for w in windows] == \
            [w.speech_fraction for w in reference.windows]
        assert max_score_difference(windows, list(reference.windows)) < 1e-4
        assert end.samples == reference.samples


# ------------------------------------------------------------------------------------------
# Wiring, with stand-ins
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_hz, seconds", [(16000, 5.3), (48000, 4.1), (16000, 0.05)])
def test_a_pure_delay_changes_nothing(dimensional, delay, rate_hz, seconds):
    x = noisy(seconds, rate_hz)
    plain = Detector.load(dimensional, threads=1).detect(x, rate_hz)
    denoised = Detector.load(dimensional, denoise=True, threads=1).detect(x, rate_hz)
    assert denoised.samples == plain.samples
    same_windows(denoised.windows, plain.windows)
    assert max_score_difference(denoised.windows, plain.windows) == 0.0


def test_the_vad_judges_the_suppressed_audio(dimensional, monkeypatch):
    x = noisy(4.0)
    loud = Detector.load(dimensional, min_speech=0.0, threads=1).detect(x, 16000)
    stand_in(monkeypatch, Muting)
    muted = Detector.load(dimensional, min_speech=0.0, denoise=True, threads=1).detect(x, 16000)
    assert all(w.silent and w.level_dbfs == -200.0 for w in muted.windows)
    assert not all(w.silent for w in loud.windows)
    assert [w.speech_fraction for w in muted.windows] == \
        [w.speech_fraction for w in Detector.load(dimensional, min_speech=0.0, threads=1)
         .detect(np.zeros_like(x), 16000).windows]


@pytest.mark.parametrize("rate_hz", [16000, 44100])
def test_streaming_equals_file_mode_with_denoise_and_vad(dimensional, monkeypatch, rate_hz):
    class HalfDelay(DelayLine):
        latency, gain = 480, 0.5

    stand_in(monkeypatch, HalfDelay)
    x = noisy(6.2, rate_hz, seed=3)
    detector = Detector.load(dimensional, denoise=True, vad=True, min_speech=0.2, threads=1)
    reference = detector.detect(x, rate_hz)
    plain = Detector.load(dimensional, threads=1).detect(x, rate_hz)
    # Half the amplitude, nothing else moved: every level 6.02 dB lower.
    assert [round(w.level_dbfs - p.level_dbfs, 3) for w, p in
            zip(reference.windows, plain.windows) if not p.silent] == \
        [-6.021] * sum(not p.silent for p in plain.windows)
    assert_streams_equal_file_mode(detector, x, rate_hz, reference, seeds=(0, 1, 2))


def test_the_bundles_default_is_honoured_and_overridable(dimensional, delay, tmp_path):
    copy = tmp_path / "denoised"
    shutil.copytree(dimensional, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["denoise"] = True
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert bundles.load(copy).manifest.denoise is True
    assert Detector.load(copy, threads=1).run_info.denoise is True
    assert Detector.load(copy, denoise=False, threads=1).run_info.denoise is False
    assert Detector.load(dimensional, threads=1).run_info.denoise is False


def test_detect_and_serve_carry_the_setting(dimensional, delay, tmp_path):
    from typer.testing import CliRunner

    from edgeser.cli import app

    wav = tmp_path / "x.wav"
    sf.write(wav, noisy(3.5), 16000)
    result = CliRunner().invoke(app, ["detect", str(wav), "-m", str(dimensional), "--denoise",
                                      "-f", "jsonl", "--threads", "1"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout.splitlines()[0])
    assert run["model"]["denoise"] is True

    detector = Detector.load(dimensional, threads=1)
    model = LoadedModel(detector, 1, batch_wait_s=0.0)
    try:
        stream, run_info = model.open(16000, 1, "s", {"denoise": True})
        assert run_info.denoise is True and detector.run_info.denoise is False
        x = noisy(3.5)
        windows, _, _ = feed_in_random_chunks(stream, x, 0, 3000)
        reference = Detector.load(dimensional, denoise=True, threads=1).detect(x, 16000)
        same_windows(windows, reference.windows)
        model.release()
    finally:
        model.retire()


# ------------------------------------------------------------------------------------------
# The real suppressor
# ------------------------------------------------------------------------------------------


@pytest.fixture
def suppressor():
    from edgeser.frontend._binding import lib

    if lib is None:
        pytest.skip("the compiled frontend is not built (the suppressor is native code only)")
    from edgeser.frontend import denoise

    return denoise


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_the_real_suppressor_keeps_window_times_and_stream_equals_file(dimensional, suppressor,
                                                                       rate_hz):
    x = noisy(5.0, rate_hz, seed=7)
    plain = Detector.load(dimensional, threads=1).detect(x, rate_hz)
    detector = Detector.load(dimensional, denoise=True, vad=True, threads=1)
    reference = detector.detect(x, rate_hz)
    assert reference.samples == plain.samples
    assert [(w.start, w.stop) for w in reference.windows] == \
        [(w.start, w.stop) for w in plain.windows]
    assert_streams_equal_file_mode(detector, x, rate_hz, reference, seeds=(0, 1))


def test_the_real_suppressor_lowers_noise_and_detect_runs_it(dimensional, suppressor, tmp_path):
    rng = np.random.default_rng(11)
    x = np.concatenate([speech_like(3.0, seed=11), np.zeros(48000, np.float32)])
    x = (x + 0.02 * rng.standard_normal(len(x))).astype(np.float32)
    plain = Detector.load(dimensional, threads=1).detect(x, 16000)
    denoised = Detector.load(dimensional, denoise=True, threads=1).detect(x, 16000)
    # The last window holds only noise: the suppressor takes it down by several dB.
    assert denoised.windows[-1].level_dbfs < plain.windows[-1].level_dbfs - 3
    # Exactly the module's own one-shot result is what the windows see.
    expected = suppressor.denoise(x, 16000)
    last = denoised.windows[-1]
    assert last.level_dbfs == pytest.approx(frontend.rms_dbfs(expected[last.start:last.stop]),
                                             abs=1e-3)


def test_serve_runs_the_real_suppressor(dimensional, suppressor, tmp_path):
    import os
    import subprocess

    q = np.round(noisy(3.5, seed=5) * 32768).clip(-32768, 32767)
    pcm = q.astype("<i2").tobytes()
    stdin = (b'{"op":"open","stream":"s","rate_hz":16000,"channels":1,"sample_format":"s16"}\n'
             + f'{{"op":"audio","stream":"s","bytes":{len(pcm)}}}\n'.encode() + pcm)
    served = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model",
                             str(dimensional), "--stdio", "--denoise", "--threads", "1"],
                            input=stdin, capture_output=True, timeout=120,
                            env=dict(os.environ, EDGESER_HOME=str(tmp_path)))
    assert served.returncode == 0, served.stderr
    records = [json.loads(line) for line in served.stdout.decode().splitlines()]
    (run,) = [r for r in records if r["type"] == "run"]
    assert run["model"]["denoise"] is True
    reference = Detector.load(dimensional, denoise=True, threads=1).detect(q / 32768, 16000)
    windows = [r for r in records if r["type"] == "window"]
    assert [(w["start_sample"], w["end_sample"], w["silent"]) for w in windows] == \
        [(w.start, w.stop, w.silent) for w in reference.windows]
    assert [w["level_dbfs"] for w in windows] == \
        pytest.approx([w.level_dbfs for w in reference.windows], abs=1e-4)
