"""Detection through the Python API (``edgeser.Detector``): windows exactly as the frontend cuts
them, scores equal to the bundle's graph on the normalised window, the silence gate, laughter
events, streaming equal to file mode for any chunking, constant memory, thread safety.

Bundles come from tiny generated checkpoints (``tiny_bundles`` in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")

from edgeser import Detector, DetectionOptions, frontend  # noqa: E402
from edgeser.errors import AudioError, BundleError, DetectionError  # noqa: E402
from edgeser.events import EventSettings, EventTracker  # noqa: E402
from edgeser.results import WindowResult  # noqa: E402
from edgeser.streaming import DetectionStream, StreamConfig  # noqa: E402
from edgeser.scoring import Scorer  # noqa: E402

STREAM_ATOL = 1e-4  # streaming vs file mode (the bound); FP32 bundles agree far closer


@pytest.fixture(scope="module")
def dimensional(tiny_bundles):
    return Detector.load(tiny_bundles("dimensional"), threads=1)


def feed_in_random_chunks(stream: DetectionStream, x: np.ndarray, seed: int, max_chunk: int):
    rng = np.random.default_rng(seed)
    windows, events = [], []
    i = 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk))
        step = stream.feed(x[i:i + n])
        windows += step.windows
        events += step.events
        i += n
    last = stream.close()
    return windows + list(last.windows), events + list(last.events), last.end


def max_score_difference(a: list[WindowResult], b: list[WindowResult]) -> float:
    worst = 0.0
    for wa, wb in zip(a, b):
        assert (wa.start, wa.stop, wa.silent) == (wb.start, wb.stop, wb.silent)
        if wa.scores is not None:
            worst = max(worst, max(abs(wa.scores[k] - wb.scores[k]) for k in wa.scores))
    return worst


# ------------------------------------------------------------------------------------------
# Windows and scores
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.03, 1.5, 3.0, 5.0, 7.33])
def test_windows_are_the_frontends_windows(dimensional, seconds):
    x = speech_like(seconds)
    result = dimensional.detect(x, 16000)
    expected = frontend.windows(len(x), dimensional.window_s, dimensional.hop_s)
    assert [(w.start, w.stop) for w in result.windows] == [(w.start, w.stop) for w in expected]
    assert [w.index for w in result.windows] == list(range(len(expected)))
    assert result.samples == len(x)
    assert result.windows[-1].stop == len(x)  # the tail is always covered, never padded


def test_scores_are_the_graph_on_each_normalised_window(tiny_bundles, dimensional):
    import onnxruntime as ort

    x = speech_like(5.3, seed=4)
    result = dimensional.detect(x, 16000)
    session = ort.InferenceSession(str(tiny_bundles("dimensional") / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    for w in result.windows:
        window = x[w.start:w.stop].astype(np.float64)
        normalised = ((window - window.mean()) / np.sqrt(window.var() + 1e-7)).astype(np.float32)
        logits = session.run(["logits"], {"input_values": normalised[None]})[0][0]
        assert w.top_label is None
        np.testing.assert_allclose([w.scores[k] for k in ("arousal", "dominance", "valence")],
                                   logits, atol=1e-5)
    means = np.mean([[w.scores[k] for k in ("arousal", "dominance", "valence")]
                     for w in result.windows], axis=0)
    np.testing.assert_allclose(list(result.summary.scores.values()), means, atol=1e-9)


def test_categorical_scores_are_probabilities_with_a_top_label(tiny_bundles):
    detector = Detector.load(tiny_bundles("categorical"), threads=1)
    result = detector.detect(speech_like(4.0, seed=2), 16000)
    for w in result.windows:
        assert set(w.scores) == {"angry", "happy", "neutral", "sad"}
        assert sum(w.scores.values()) == pytest.approx(1.0, abs=1e-6)
        assert w.top_label == max(w.scores, key=w.scores.get)
    distribution = result.summary.scores
    assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-6)
    assert result.summary.top_label == max(distribution, key=distribution.get)


def test_prototype_scores_are_cosine_similarities(tiny_bundles):
    detector = Detector.load(tiny_bundles("prototypes"), threads=1)
    result = detector.detect(speech_like(3.0, seed=3), 16000)
    assert detector.bundle.task == "emotion-prototypes"
    for w in result.windows:
        assert set(w.scores) == {"tone", "noise"}
        assert all(-1.0 - 1e-5 <= v <= 1.0 + 1e-5 for v in w.scores.values())
        assert w.top_label == max(w.scores, key=w.scores.get)


def test_batch_companions_do_not_change_a_windows_result(tiny_bundles):
    x = speech_like(12.0, seed=5)
    one = Detector.load(tiny_bundles("dimensional"), threads=1, batch_size=1).detect(x, 16000)
    eight = Detector.load(tiny_bundles("dimensional"), threads=1, batch_size=8).detect(x, 16000)
    assert max_score_difference(list(one.windows), list(eight.windows)) < 1e-5


def test_window_and_hop_overrides_round_to_model_frames(tiny_bundles):
    detector = Detector.load(tiny_bundles("dimensional"), window_s=1.01, hop_s=0.5)
    assert (detector.window_s, detector.hop_s) == (1.0, 0.5)  # 320-sample frames
    result = detector.detect(speech_like(2.0), 16000)
    assert [(w.start, w.stop) for w in result.windows] == [(0, 16000), (8000, 24000),
                                                           (16000, 32000)]


def test_hop_longer_than_window_is_refused(tiny_bundles):
    with pytest.raises(DetectionError, match="hop"):
        Detector.load(tiny_bundles("dimensional"), window_s=1.0, hop_s=2.0)


# ------------------------------------------------------------------------------------------
# Silence and short audio
# ------------------------------------------------------------------------------------------


def test_silent_windows_are_reported_not_scored(dimensional):
    x = np.concatenate([speech_like(3.0), np.zeros(3 * 16000, np.float32), speech_like(3.0)])
    result = dimensional.detect(x, 16000)
    silent = [w for w in result.windows if w.silent]
    assert [(w.start, w.stop) for w in silent] == [(48000, 96000)]
    assert silent[0].scores is None and silent[0].level_dbfs < -100
    voiced = [w for w in result.windows if not w.silent]
    assert result.summary.voiced_windows == len(voiced) == len(result.windows) - 1
    means = np.mean([list(w.scores.values()) for w in voiced], axis=0)
    np.testing.assert_allclose(list(result.summary.scores.values()), means, atol=1e-9)


def test_all_silent_audio_has_no_summary_scores(dimensional):
    result = dimensional.detect(np.zeros(5 * 16000, np.float32), 16000)
    assert all(w.silent for w in result.windows)
    assert result.summary.voiced_windows == 0 and result.summary.scores is None


def test_audio_shorter_than_one_frame_has_no_result(dimensional):
    with pytest.raises(AudioError, match="shorter than one model frame"):
        dimensional.detect(speech_like(0.02), 16000)  # 320 samples < 400
    with pytest.raises(AudioError, match="no audio"):
        dimensional.detect(np.zeros(0, np.float32), 16000)


def test_one_short_window_for_audio_shorter_than_a_window(dimensional):
    result = dimensional.detect(speech_like(0.5, rate_hz=44100), 44100)
    assert [(w.start, w.stop) for w in result.windows] == [(0, 8000)]
    assert not result.windows[0].silent


def test_nan_samples_are_refused_with_the_source_named(dimensional):
    x = speech_like(2.0)
    x[100] = np.nan
    with pytest.raises(AudioError, match="clip.wav"):
        dimensional.detect(x, 16000, source="clip.wav")


# ------------------------------------------------------------------------------------------
# Streaming == file mode
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_hz,channels", [(16000, 1), (48000, 2), (22050, 1), (44100, 3)])
def test_streaming_equals_file_mode_for_random_chunks(tmp_path, dimensional, rate_hz, channels):
    x = speech_like(9.7, rate_hz, channels, seed=rate_hz)
    path = tmp_path / "clip.wav"
    sf.write(path, x, rate_hz, subtype="FLOAT")
    from_file = dimensional.detect_file(path)
    for seed in range(3):
        stream = dimensional.stream(rate_hz, channels)
        windows, _, end = feed_in_random_chunks(stream, x if channels > 1 else x, seed, 7000)
        assert max_score_difference(windows, list(from_file.windows)) <= STREAM_ATOL
        assert end.samples == from_file.samples
        assert end.summary.voiced_windows == from_file.summary.voiced_windows


def test_streaming_int8_bundle_equals_file_mode(tiny_bundles, tmp_path):
    detector = Detector.load(tiny_bundles("dimensional-int8"), threads=1)
    x = speech_like(8.0, 48000, seed=9)
    path = tmp_path / "clip.flac"
    sf.write(path, x, 48000, subtype="PCM_24")
    from_file = detector.detect_file(path)
    windows, _, _ = feed_in_random_chunks(detector.stream(48000), sf.read(path, dtype="float32")[0],
                                          1, 5000)
    assert max_score_difference(windows, list(from_file.windows)) <= STREAM_ATOL


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_a_window_is_emitted_once_its_last_sample_is_fed(dimensional, rate_hz):
    """...and the resampler has seen its look-ahead past it: one sample at 16 kHz (the identity
    path), under 6.25 ms (300 samples) at 48 kHz."""
    lookahead = 1 if rate_hz == 16000 else 300
    stream = dimensional.stream(rate_hz)
    x = speech_like(5.0, rate_hz)
    end_of_window_0 = 3 * rate_hz
    assert stream.feed(x[:end_of_window_0]).windows == ()
    step = stream.feed(x[end_of_window_0:end_of_window_0 + lookahead])
    assert [(w.start, w.stop) for w in step.windows] == [(0, 48000)]
    step = stream.feed(x[end_of_window_0 + lookahead:end_of_window_0 + rate_hz + lookahead])
    assert [(w.start, w.stop) for w in step.windows] == [(16000, 64000)]


def test_stream_memory_stays_flat(dimensional):
    """A long stream holds no history: traced memory after 20 more minutes of audio is within
    one window's worth of buffers of what it was after the first minute."""
    stream = dimensional.stream(16000)
    chunk = speech_like(1.0, seed=11)
    for _ in range(60):
        stream.feed(chunk)
    tracemalloc.start()
    try:
        stream.feed(chunk)
        baseline, _ = tracemalloc.get_traced_memory()
        for _ in range(1200):
            stream.feed(chunk)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - baseline < 4 * 48000 * 4  # bytes: a few windows of float32
    assert stream.close().end.summary.windows == 1261 - 2


def test_detection_never_imports_torch(tiny_bundles, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, speech_like(3.5), 16000)
    code = textwrap.dedent(f"""
        import sys
        from edgeser import Detector
        result = Detector.load({str(tiny_bundles('dimensional'))!r}).detect_file({str(path)!r})
        assert len(result.windows) == 2, result.windows
        heavy = sorted(m for m in ("torch", "transformers", "onnx") if m in sys.modules)
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------------
# Laughter events
# ------------------------------------------------------------------------------------------


def window(index: int, p: float | None, hop: int = 4000, length: int = 16000) -> WindowResult:
    start = index * hop
    scores = None if p is None else {"other": 1 - p, "laughter": p}
    return WindowResult(index, start, start + length, -20.0, p is None, scores,
                        None if p is None else ("laughter" if p >= 0.5 else "other"))


def track(probabilities, threshold=0.5, min_duration=0, merge_gap=0):
    tracker = EventTracker(EventSettings("laughter", threshold, min_duration, merge_gap))
    events = []
    for i, p in enumerate(probabilities):
        events += tracker.add(window(i, p))
    return events + tracker.finish()


def test_events_are_unions_of_windows_above_threshold():
    events = track([0.1, 0.7, 0.9, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.8, 0.3])
    assert [(e.start, e.stop, e.windows) for e in events] == [(4000, 28000, 3),
                                                              (36000, 52000, 1)]
    assert events[0].peak == 0.9 and (events[0].peak_start, events[0].peak_stop) == (8000, 24000)
    assert events[0].duration_s == 1.5


def test_merge_gap_joins_and_min_duration_drops():
    probabilities = [0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]  # gap between events: 8000 samples
    assert len(track(probabilities, merge_gap=7999)) == 2
    merged = track(probabilities, merge_gap=8000)
    assert [(e.start, e.stop, e.windows) for e in merged] == [(0, 40000, 2)]
    assert track([0.1, 0.9, 0.1, 0.1, 0.1, 0.1], min_duration=16001) == []


def test_silent_windows_end_events():
    assert len(track([0.9, None, None, None, None, 0.9])) == 2


def test_operating_points_choose_the_threshold(tiny_bundles):
    path = tiny_bundles("laughter")
    assert Detector.load(path).threshold == 0.5
    assert Detector.load(path, operating_point="high-precision").threshold == 0.9
    assert Detector.load(path, threshold=0.7).threshold == 0.7
    with pytest.raises(DetectionError, match="high-precision"):
        Detector.load(path, operating_point="loose")
    with pytest.raises(DetectionError, match="laughter"):
        Detector.load(tiny_bundles("dimensional"), threshold=0.5)


def test_laughter_events_follow_the_window_probabilities(tiny_bundles):
    x = np.concatenate([speech_like(2.0, seed=1), 0.3 * np.random.default_rng(2).standard_normal(
        32000).astype(np.float32), speech_like(2.0, seed=3)])
    probe = Detector.load(tiny_bundles("laughter"), threads=1).detect(x, 16000)
    p = sorted(w.scores["laughter"] for w in probe.windows if w.scores)
    threshold = float(np.median(p))
    result = Detector.load(tiny_bundles("laughter"), threads=1, threshold=threshold,
                           merge_gap_s=0.0).detect(x, 16000)
    tracker = EventTracker(EventSettings("laughter", threshold, 0, 0))
    expected = [e for w in result.windows for e in tracker.add(w)] + tracker.finish()
    assert result.events == tuple(expected) and expected
    for e in result.events:
        assert 0 <= e.start < e.stop <= result.samples and e.peak >= threshold
    assert result.summary.events == len(result.events)
    stream = Detector.load(tiny_bundles("laughter"), threads=1, threshold=threshold,
                           merge_gap_s=0.0).stream(16000)
    _, events, _ = feed_in_random_chunks(stream, x, 0, 3000)
    assert [(e.start, e.stop) for e in events] == [(e.start, e.stop) for e in result.events]


def test_a_release_threshold_keeps_started_events_going(tiny_bundles):
    """--release (hysteresis) reaches the tracker: the detector's events equal the tracker's with
    the same release, and a release below the threshold never gives fewer event windows."""
    x = np.concatenate([speech_like(2.0, seed=1), 0.3 * np.random.default_rng(2).standard_normal(
        32000).astype(np.float32), speech_like(2.0, seed=3)])
    path = tiny_bundles("laughter")
    probe = Detector.load(path, threads=1).detect(x, 16000)
    p = sorted(w.scores["laughter"] for w in probe.windows if w.scores)
    threshold, release = float(np.quantile(p, 0.75)), float(np.quantile(p, 0.25))
    plain = Detector.load(path, threads=1, threshold=threshold, merge_gap_s=0.0).detect(x, 16000)
    held = Detector.load(path, threads=1, threshold=threshold, release=release,
                         merge_gap_s=0.0)
    result = held.detect(x, 16000)
    tracker = EventTracker(EventSettings("laughter", threshold, 0, 0, release))
    expected = [e for w in result.windows for e in tracker.add(w)] + tracker.finish()
    assert result.events == tuple(expected) and expected
    assert sum(e.windows for e in result.events) >= sum(e.windows for e in plain.events)
    assert held.run_info.release == release
    with pytest.raises(DetectionError, match="at most the threshold"):
        Detector.load(path, threshold=0.5, release=0.6)
    with pytest.raises(DetectionError, match="laughter"):
        Detector.load(tiny_bundles("dimensional"), release=0.3)


# ------------------------------------------------------------------------------------------
# Threads, bundles, files
# ------------------------------------------------------------------------------------------


def test_concurrent_calls_on_one_detector_equal_serial_calls(tiny_bundles):
    detector = Detector.load(tiny_bundles("categorical"), threads=1)
    signals = [speech_like(4.0 + k, seed=k) for k in range(6)]
    serial = [detector.detect(x, 16000) for x in signals]
    got: dict[int, object] = {}

    def work(k: int) -> None:
        got[k] = detector.detect(signals[k], 16000)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [got[k].windows for k in range(6)] == [r.windows for r in serial]


def test_a_stream_fed_from_two_threads_at_once_is_refused():
    entered, release = threading.Event(), threading.Event()

    def slow_run(batch):
        entered.set()
        release.wait(timeout=30)
        return np.zeros((len(batch), 1), np.float32), np.zeros((len(batch), 1), np.float32)

    config = StreamConfig(run=slow_run, scorer=Scorer(("x",), "regression"), window=800,
                          hop=800, min_samples=400, silence_dbfs=-60.0, normalize=True,
                          batch_size=1, new_tracker=lambda: None)
    stream = DetectionStream(config, 16000)
    worker = threading.Thread(target=stream.feed, args=(speech_like(0.06),))
    worker.start()
    try:
        assert entered.wait(timeout=30)
        with pytest.raises(DetectionError, match="another thread"):
            stream.feed(speech_like(0.05))
    finally:
        release.set()
        worker.join(timeout=30)
    stream.close()
    with pytest.raises(DetectionError, match="closed"):
        stream.feed(speech_like(0.05))


def test_a_tampered_bundle_is_refused(tiny_bundles, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundles("categorical"), copy)
    with open(copy / "model.onnx", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(BundleError, match="model.onnx"):
        Detector.load(copy)


def test_missing_default_bundle_names_the_export_command(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESER_HOME", str(tmp_path))
    with pytest.raises(BundleError, match="edgeser export --model audeering/"):
        Detector.load()


def test_truncated_file_is_detected_with_a_warning(dimensional, tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, speech_like(4.0), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 16000])  # header still says 4 s
    result = dimensional.detect_file(path)
    assert result.samples == 4 * 16000 - 8000
    assert len(result.warnings) == 1 and "truncated" in result.warnings[0]


def test_options_object_and_keywords_are_exclusive(tiny_bundles):
    with pytest.raises(TypeError):
        Detector.load(tiny_bundles("dimensional"), options=DetectionOptions(), threads=1)


# ------------------------------------------------------------------------------------------
# The native windower and event tracker behind the stream
# ------------------------------------------------------------------------------------------


def _level_logits(batch: np.ndarray):
    """A stand-in laughter model: the louder the window, the more 'laughter' (raw windows)."""
    rms = np.sqrt(np.mean(np.asarray(batch, np.float64) ** 2, axis=1))
    logits = np.stack([np.zeros_like(rms), 40.0 * (rms - 0.1)], axis=1).astype(np.float32)
    return logits, np.zeros((len(batch), 1), np.float32)


def _bursts(rate_hz: int, seed: int = 0) -> np.ndarray:
    """Quiet noise with loud bursts of several lengths, and a stretch of digital silence."""
    rng = np.random.default_rng(seed)
    x = 0.02 * rng.standard_normal(12 * rate_hz)
    for start_s, length_s in ((1.0, 0.6), (2.0, 0.3), (4.0, 1.5), (8.5, 0.4), (9.2, 0.4)):
        a, b = int(start_s * rate_hz), int((start_s + length_s) * rate_hz)
        x[a:b] = 0.4 * rng.standard_normal(b - a)
    x[int(6 * rate_hz):int(7.5 * rate_hz)] = 0.0
    return x.astype(np.float32)


def _offline_events(windows, threshold, release, merge_gap):
    """The event rule stated offline: hysteresis activity, then unions joined across gaps."""
    events, on, current = [], False, None
    for w in windows:
        p = None if w.scores is None else w.scores["laughter"]
        on = p is not None and p >= (release if on else threshold)
        if not on:
            continue
        if current is not None and w.start - current[1] > merge_gap:
            events.append(tuple(current))
            current = None
        current = [w.start, w.stop] if current is None else [current[0], max(current[1], w.stop)]
    return events + ([tuple(current)] if current is not None else [])


@pytest.mark.parametrize("rate_hz,release", [(16000, 0.7), (44100, 0.3), (48000, 0.5)])
def test_stream_events_with_hysteresis_follow_the_rule_for_any_chunking(rate_hz, release):
    settings = EventSettings("laughter", 0.7, 0, 4000, release=release)
    config = StreamConfig(run=_level_logits, scorer=Scorer(("other", "laughter"), "class-logits"),
                          window=8000, hop=1600, min_samples=400, silence_dbfs=-60.0,
                          normalize=False, batch_size=4,
                          new_tracker=lambda: EventTracker(settings))
    x = _bursts(rate_hz)
    whole = DetectionStream(config, rate_hz, live=False)
    step = whole.feed(x)
    last = whole.close()
    windows = list(step.windows + last.windows)
    events = list(step.events + last.events)
    assert [(w.start, w.stop) for w in windows] == [
        (w.start, w.stop) for w in frontend.windows(last.end.samples, 0.5, 0.1)]
    assert any(w.silent for w in windows) and events
    assert [(e.start, e.stop) for e in events] == _offline_events(windows, 0.7, release, 4000)
    assert last.end.summary.events == len(events)
    for seed in range(2):
        w2, e2, end = feed_in_random_chunks(DetectionStream(config, rate_hz), x, seed, 3000)
        assert [(w.start, w.stop, w.silent) for w in w2] == [(w.start, w.stop, w.silent)
                                                              for w in windows]
        assert max_score_difference(w2, windows) <= STREAM_ATOL
        assert [(e.start, e.stop) for e in e2] == [(e.start, e.stop) for e in events]
        assert end.samples == last.end.samples


def test_stream_windows_are_the_native_windowers(dimensional):
    """DetectionStream's windows are the frontend Windower's: same positions, levels, silence."""
    x = speech_like(6.3, 44100, seed=12)
    x[44100:3 * 44100] = 0.0
    result = dimensional.detect(x, 44100)
    windower = frontend.Windower(44100, dimensional._window, dimensional._hop,
                                 silence_dbfs=dimensional._silence_dbfs)
    prepared = windower.push(x) + windower.finish()
    assert [(w.start, w.stop, w.silent) for w in result.windows] == [
        (p.start, p.stop, p.silent) for p in prepared]
    assert [w.level_dbfs for w in result.windows] == [p.level_dbfs for p in prepared]
