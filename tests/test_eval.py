"""``edgeser eval``: metrics against hand-computed values, the labels CSV (bad rows listed, the
rest run), perturbations that do what they say (SNR, RT60, telephone band), laughter thresholds
and operating points written into a bundle that still verifies, compressed models against their
reference, the denoised path, the neutral-speech check, embeddings export, and a run on the real
recordings (skipped with a reason when they are absent).

Figures are tested in test_plots.py; these runs pass --no-plots where they do not need them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import speech_like

from edgeser import bundle as bundles
from edgeser.errors import BundleError, EvaluationError
from edgeser.evaluation import EvalRequest, evaluate, metrics, perturb, thresholds
from edgeser.evaluation.labels import read_labels
from edgeser.results import WindowResult

RATE = 16_000
TIMEOUT_S = 300


def cli(*args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(EDGESER_HOME=str(home), **(env or {}))
    return subprocess.run([sys.executable, "-m", "edgeser", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=full_env, stdin=subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six generated 2.5 s clips (two speakers of each sex) in a folder."""
    folder = tmp_path_factory.mktemp("clips")
    for k in range(6):
        sf.write(folder / f"c{k}.wav", speech_like(2.5, seed=k) * (0.5 + 0.1 * k), RATE)
    return folder


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def dimensional_csv(clips: Path) -> Path:
    rows = [f"c{k}.wav,{0.2 + 0.1 * k:.2f},{0.7 - 0.05 * k:.2f},{['happy', 'sad'][k % 2]},"
            f"s{k // 2},{['male', 'female'][k % 2]}" for k in range(6)]
    return write_csv(clips / "dims.csv", "file,arousal,valence,class,speaker,sex", rows)


def laughter_csv(clips: Path) -> Path:
    rows = ["c0.wav,0.5,1.5,female", "c0.wav,2.0,2.5,female", "c1.wav,,,male",
            "c2.wav,0,2.5,female", "c3.wav,,,male", "c4.wav,1.0,2.0,female", "c5.wav,,,male"]
    return write_csv(clips / "laughs.csv", "file,start,end,sex", rows)


# ------------------------------------------------------------------------------------------
# Metrics against hand-computed values
# ------------------------------------------------------------------------------------------


def test_ccc_matches_hand_computed_values():
    assert metrics.ccc([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # means 2 and 3, variances 2/3, covariance 2/3: 2 * 2/3 / (2/3 + 2/3 + 1) = 4/7
    assert metrics.ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)
    assert metrics.ccc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert metrics.ccc([1, 1], [1, 1]) is None
    assert metrics.ccc([1], [1]) is None


def test_class_scores_match_hand_computed_values():
    s = metrics.class_scores(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"],
                             ["a", "b", "c", "d"])
    assert s.confusion == ((1, 1, 0, 0), (0, 2, 0, 0), (1, 0, 0, 0), (0, 0, 0, 0))
    assert s.unweighted_accuracy == pytest.approx((0.5 + 1 + 0) / 3)  # d has no true files
    assert s.accuracy == pytest.approx(3 / 5)
    # F1: a 0.5 (P 1/2, R 1/2), b 0.8 (P 2/3, R 1), c 0 (never predicted); d is absent
    assert s.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_decisions_and_events_match_hand_computed_values():
    d = metrics.decisions([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (d.true_positives, d.false_positives, d.false_negatives, d.true_negatives) == (2, 1, 1, 1)
    assert (d.precision, d.recall, d.f1, d.accuracy) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 0.6))
    assert metrics.decisions([0, 0], [0, 0]).precision is None
    e = metrics.event_scores([(1, 2), (5, 6)], [(1.5, 2.5), (3, 4)])
    assert (e.precision, e.recall) == (0.5, 0.5)
    assert metrics.event_scores([(1, 2)], [(2, 3)]).precision == 0.0  # touching is not overlap
    truth = metrics.window_truth([0, 0, 1], [1, 1, 2], [(0.4, 1.2)])
    assert truth.tolist() == [True, True, False]  # 0.6 of the first windows, 0.2 of the last
    assert metrics.window_truth([0], [1], [(0.6, 2)]).tolist() == [False]


def _window(i: int, p: float | None) -> WindowResult:
    start = i * 8000
    scores = None if p is None else {"other": 1 - p, "laughter": p}
    return WindowResult(i, start, start + 16_000, -20.0, p is None, scores)


def test_threshold_sweep_counts_windows_and_events_by_hand():
    # windows of 1 s every 0.5 s; labelled laughter from 1.0 to 2.5 s covers at least half of
    # windows 1-4 (0.5-1.5 ... 2.0-3.0); the last window is silent
    windows = tuple(_window(i, p) for i, p in enumerate([0.1, 0.6, 0.9, 0.8, 0.3, None]))
    files = [thresholds.LaughterFile(windows, ((1.0, 2.5),))]
    rules = thresholds.EventRules("laughter", 0.0, 0.0)
    low, high = thresholds.sweep(files, [0.5, 0.85], rules)
    assert low.windows == metrics.Decisions(3, 0, 1, 2)  # TP, FP, FN, TN
    assert (low.events.events, low.events.correct_events, low.events.found_segments) == (1, 1, 1)
    assert high.windows == metrics.Decisions(1, 0, 3, 2)
    assert thresholds.counts(files) == (6, 4)


def test_rules_choose_thresholds_or_say_why_not():
    windows = tuple(_window(i, p) for i, p in enumerate([0.1, 0.6, 0.9, 0.8, 0.3, 0.7]))
    files = [thresholds.LaughterFile(windows, ((1.0, 2.5),))]
    rows = thresholds.sweep(files, thresholds.parse_grid("0.05:0.95:0.05"),
                            thresholds.EventRules("laughter", 0.0, 0.0))
    hp, best = thresholds.parse_rules("hp=precision>=0.99,best=f1")
    # laughter windows score 0.6, 0.9, 0.8, 0.3, the others 0.1 and 0.7: only thresholds above
    # 0.7 are precise, and of those 0.75 and 0.8 keep the most (two of four): the higher wins
    chosen = hp.choose(rows)
    assert (chosen.threshold, chosen.windows.precision, chosen.windows.recall) == (0.8, 1.0, 0.5)
    chosen = best.choose(rows)
    f1s = [r.windows.f1 for r in rows if r.windows.f1 is not None]  # None: nothing predicted
    assert chosen.windows.f1 == max(f1s)
    assert chosen.threshold == max(r.threshold for r in rows if r.windows.f1 == chosen.windows.f1)
    (never,) = thresholds.parse_rules("never=event-recall>=1")
    silent = [thresholds.LaughterFile(windows, ((10.0, 11.0),))]
    with pytest.raises(EvaluationError, match="no threshold from 0.05 to 0.95 meets"):
        never.choose(thresholds.sweep(silent, [0.05, 0.95], thresholds.EventRules(
            "laughter", 0.0, 0.0)))
    for bad in ("x", "x=loudness", "x=f1>=1.5", "=f1", "a=f1,a=recall"):
        with pytest.raises(EvaluationError):
            thresholds.parse_rules(bad)
    assert thresholds.parse_grid("0.5:0.99:0.01")[-1] == 0.99
    assert len(thresholds.parse_grid("0.5:0.99:0.01")) == 50
    for bad in ("0:0.5:0.1", "0.5:0.4:0.1", "0.2,1.0", "a:b:c"):
        with pytest.raises(EvaluationError):
            thresholds.parse_grid(bad)


# ------------------------------------------------------------------------------------------
# The labels CSV
# ------------------------------------------------------------------------------------------


def test_labels_list_bad_rows_by_line_and_keep_the_rest(clips):
    csv = write_csv(clips / "mixed.csv", "file,arousal,valence,extra,sex", [
        "c0.wav,0.5,0.4,x,M",              # 2: fine (relative path, sex normalised)
        f"{clips / 'c1.wav'},0.6,,y,f",     # 3: fine (absolute; valence missing)
        "nowhere.wav,0.5,0.5,z,m",         # 4: missing file
        "c2.wav,high,0.5,z,m",             # 5: not a number
        ",0.1,0.2,z,m",                    # 6: no file
        "c3.wav,0.1",                      # 7: too few fields
        "c0.wav,0.9,0.4,x,m",              # 8: listed again with other targets
        "c4.wav,,,z,m",                    # 9: no target
        "c5.wav,nan,0.2,z,m",              # 10: not finite
    ])
    got = read_labels(csv, ["arousal", "valence", "dominance"])
    assert got.dimensions == ("arousal", "valence")
    assert [f.name for f in got.files] == ["c0.wav", str(clips / "c1.wav")]
    assert got.files[0].values == {"arousal": 0.5, "valence": 0.4}
    assert got.files[0].sex == "male" and got.files[1].sex == "female"
    assert got.files[1].values == {"arousal": 0.6}
    lines = {b.line: b.problem for b in got.bad_rows}
    assert sorted(lines) == [4, 5, 6, 7, 8, 9, 10]
    assert "nowhere.wav does not exist" in lines[4]
    assert "'high' is not a number" in lines[5]
    assert "listed again (line 2)" in lines[8]
    assert "fields" in lines[7]


def test_laughter_labels_merge_segments_and_keep_files_without_laughter(clips):
    csv = write_csv(clips / "segs.csv", "file,start,end", [
        "c0.wav,1.0,1.5", "c0.wav,0.2,0.4", "c1.wav,,", "c2.wav,1.0,", "c3.wav,2,1"])
    got = read_labels(csv)
    assert got.has_segments
    assert [(f.name, f.segments) for f in got.files] == [
        ("c0.wav", ((0.2, 0.4), (1.0, 1.5))), ("c1.wav", ())]
    assert [b.line for b in got.bad_rows] == [5, 6]


def test_labels_without_a_file_or_target_column_are_refused(clips):
    with pytest.raises(EvaluationError, match="no 'file' column"):
        read_labels(write_csv(clips / "nofile.csv", "path,arousal", ["c0.wav,0.1"]), ["arousal"])
    with pytest.raises(EvaluationError, match="no target column"):
        read_labels(write_csv(clips / "notarget.csv", "file,speaker", ["c0.wav,a"]), ["arousal"])
    with pytest.raises(EvaluationError, match="does not exist"):
        read_labels(clips / "absent.csv")


# ------------------------------------------------------------------------------------------
# Perturbations
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [20.0, 10.0, 0.0, -5.0])
def test_noise_reaches_the_asked_snr(snr, clips, tmp_path):
    x = speech_like(3.0, seed=1)
    noise_path = tmp_path / "hum.wav"
    t = np.arange(RATE) / RATE
    sf.write(noise_path, 0.1 * np.sin(2 * np.pi * 50 * t) + 0.01 * speech_like(1.0, seed=9), RATE)
    others = [speech_like(2.0, seed=s) for s in (2, 3, 4, 5)]
    bank = perturb.NoiseBank([x, *others])
    bank.add_file(noise_path)
    for condition in (perturb.Condition("noise", snr, "white"),
                      perturb.Condition("noise", snr, "babble"),
                      perturb.Condition("noise", snr, "hum.wav", noise_path)):
        y, rate = condition.apply(x, condition.rng(0, 0), bank, 0)
        assert rate == RATE and len(y) == len(x)
        assert abs(perturb.snr_db(x, y) - snr) < 0.1, condition.key
        again, _ = condition.apply(x, condition.rng(0, 0), bank, 0)
        assert np.array_equal(y, again)  # seeded
        other, _ = condition.apply(x, condition.rng(0, 1), bank, 0)
        assert not np.array_equal(y, other)


@pytest.mark.parametrize("rt60_s", [0.3, 0.8])
def test_reverb_decays_60_db_in_the_rt60(rt60_s):
    rng = np.random.default_rng(0)
    h = perturb.room_impulse_response(rt60_s, RATE, rng)
    assert abs(perturb.decay_time_s(h, RATE) - rt60_s) / rt60_s < 0.1
    x = speech_like(2.0)
    y = perturb.reverberate(x, rt60_s, np.random.default_rng(1))
    assert len(y) == len(x)
    assert perturb.power(y) == pytest.approx(perturb.power(x), rel=1e-4)  # level kept
    assert np.corrcoef(x, y)[0, 1] < 0.99  # and the signal smeared


def test_telephone_keeps_300_to_3400_hz_at_8_khz_with_mu_law():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
    y, rate = perturb.telephone(x)
    assert rate == 8000 and len(y) == len(x) // 2
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / rate)
    band = spectrum[(freqs > 400) & (freqs < 3300)].mean()
    assert spectrum[freqs < 200].mean() < band * 1e-2   # only mu-law's noise floor is left
    assert spectrum[freqs > 3600].mean() < band * 1e-2
    assert len(np.unique(y)) <= 256  # 8-bit codes
    loud, _ = perturb.telephone(x * 20, gain_db=12)
    assert np.abs(loud).max() <= 1.0  # clipped at full scale


def test_perturbation_specs_parse_or_say_what_is_wrong(tmp_path):
    cafe = tmp_path / "cafe.wav"
    got = perturb.parse_perturbations(["noise:20,10,0", "reverb:0.3,0.8", "phone", "babble:5",
                                       "gain:+6", "noise:20"], [cafe])
    assert [c.key for c in got] == ["clean", "white-20dB", "white-10dB", "white-0dB",
                                    "cafe.wav-20dB", "cafe.wav-10dB", "cafe.wav-0dB",
                                    "reverb-0.3s", "reverb-0.8s", "phone", "babble-5dB",
                                    "gain+6dB"]
    assert [c.key for c in perturb.parse_perturbation(f"noise:{cafe}:5")] == ["cafe.wav-5dB"]
    for bad in ("noise", "reverb:-1", "reverb:x", "snow:3", "gain"):
        with pytest.raises(EvaluationError, match="--perturb"):
            perturb.parse_perturbations([bad])
    with pytest.raises(EvaluationError, match="--noise-file"):
        perturb.parse_perturbations(["phone"], [cafe])


# ------------------------------------------------------------------------------------------
# Operating points
# ------------------------------------------------------------------------------------------


@pytest.fixture()
def laughter_copy(tiny_bundles, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_bundles("laughter"), tmp_path / "laughter"))


def test_operating_points_are_written_with_their_origin_and_verify_passes(laughter_copy, clips,
                                                                          tmp_path):
    csv = laughter_csv(clips)
    report = tmp_path / "report"
    result = ok(cli("eval", "--model", str(laughter_copy), "--labels", str(csv),
                    "--thresholds", "0.5:0.99:0.01", "--report", str(report), "--no-plots",
                    "--no-stability", "--write-operating-points", "balanced=f1,open=recall>=0.5",
                    home=tmp_path / "home"))
    doc = json.loads((report / "report.json").read_text())
    table = doc["thresholds"]["laughter"]["raw"]
    assert [r["threshold"] for r in table["rows"]][:3] == [0.5, 0.51, 0.52]
    assert len(table["rows"]) == 50 and table["files"] == 6
    for row in table["rows"]:
        w = row["windows"]
        assert w["true_positives"] + w["false_negatives"] == table["positive_windows"]
        assert sum(w[k] for k in ("true_positives", "false_positives", "false_negatives",
                                  "true_negatives")) == table["windows"]
    best_f1 = max(r["windows"]["f1"] for r in table["rows"] if r["windows"]["f1"] is not None)
    expected = max(r["threshold"] for r in table["rows"] if r["windows"]["f1"] == best_f1)
    loaded = bundles.load(laughter_copy, rehash=True)
    assert loaded.operating_points["balanced"] == pytest.approx(expected)
    assert loaded.operating_points["default"] == 0.5  # the others stay
    origin = loaded.manifest.operating_point_origins["balanced"]
    assert origin.rule == "f1" and origin.files == 6
    assert origin.labels_sha256 == __import__("hashlib").sha256(csv.read_bytes()).hexdigest()
    assert (origin.windows, origin.positive_windows) == (table["windows"],
                                                         table["positive_windows"])
    assert origin.measured["f1"] == pytest.approx(best_f1)
    assert "operating point balanced" in result.stdout
    verified = ok(cli("verify", str(laughter_copy), home=tmp_path / "home"))
    assert verified.stdout.strip().endswith("OK")
    # and detection runs at the new point
    ok(cli("detect", str(clips / "c0.wav"), "--model", str(laughter_copy), "--operating-point",
           "balanced", "-f", "json", home=tmp_path / "home"))


def test_writing_operating_points_refuses_what_would_break_the_bundle(laughter_copy,
                                                                      tiny_bundles):
    before = (laughter_copy / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="operating_points"):
        bundles.write_operating_points(laughter_copy, {"x": (1.5, None)})
    assert (laughter_copy / "manifest.json").read_bytes() == before
    with pytest.raises(BundleError, match="laughter"):
        bundles.write_operating_points(tiny_bundles("categorical"), {"x": (0.5, None)})
    (laughter_copy / "model.onnx").write_bytes(b"changed")
    with pytest.raises(BundleError):
        bundles.write_operating_points(laughter_copy, {"x": (0.5, None)})
    assert (laughter_copy / "manifest.json").read_bytes() == before


# ------------------------------------------------------------------------------------------
# Models against each other, denoising, neutral speech
# ------------------------------------------------------------------------------------------


def test_an_int8_model_is_compared_with_the_fp32_export_of_its_checkpoint(tiny_bundles, clips):
    ev = evaluate(EvalRequest(models=(str(tiny_bundles("dimensional")),
                                      str(tiny_bundles("dimensional-int8"))),
                              labels=str(dimensional_csv(clips)), perturb=("noise:10",),
                              stability=True, bias=False))
    doc = ev.document
    by_name = {m["name"]: m for m in doc["models"]}
    assert by_name["dimensional-int8"]["reference"] == "dimensional"
    assert by_name["dimensional-int8"]["reference_why"] == "the FP32 export of its checkpoint"
    assert by_name["dimensional"]["reference"] is None
    cells = {(c["model"], c["condition"]): c for c in doc["results"]}
    assert set(cells) == {(m, c) for m in by_name for c in ("clean", "white-10dB")}
    fid = cells[("dimensional-int8", "white-10dB")]["fidelity"]
    assert fid["unit"] == "windows" and fid["count"] >= 6
    assert min(fid["ccc"].values()) > 0.9
    clean = cells[("dimensional", "clean")]["metrics"]
    assert set(clean["ccc"]) == {"arousal", "valence"} and clean["files"] == 6
    assert set(clean["class_means"]) == {"happy", "sad"}
    sexes = cells[("dimensional", "clean")]["by_sex"]
    assert set(sexes["groups"]) == {"female", "male"}
    stab = doc["stability"]["dimensional"]
    assert stab["conditions"] == ["clean", "gain+1dB", "gain-1dB", "white-40dB"]
    assert all(0 <= v < 0.05 for v in stab["std"].values())


def test_denoised_audio_goes_through_the_noise_suppressors_denoise(monkeypatch, tiny_bundles,
                                                                   clips):
    calls = []

    def stand_in(x, rate_hz):  # removes everything: no window is left to call laughter
        calls.append((len(x), rate_hz))
        return np.zeros_like(x)

    module = types.ModuleType("edgeser.frontend.denoise")
    module.denoise = stand_in
    monkeypatch.setitem(sys.modules, "edgeser.frontend.denoise", module)
    ev = evaluate(EvalRequest(models=(str(tiny_bundles("laughter")),),
                              labels=str(laughter_csv(clips)), perturb=("phone",),
                              denoise="both", stability=False, bias=False,
                              thresholds="0.3,0.5,0.7"))
    assert sorted(set(calls)) == [(20_000, 8000), (40_000, 16_000)]  # 2.5 s, clean and phone
    assert len(calls) == 12  # 6 files, 2 conditions
    cells = {(c["condition"], c["processing"]): c["metrics"] for c in ev.document["results"]}
    assert set(cells) == {(c, p) for c in ("clean", "phone") for p in ("raw", "denoised")}
    assert cells[("clean", "raw")]["windows"]["true_positives"] > 0
    assert cells[("clean", "denoised")]["windows"]["true_positives"] == 0
    tables = ev.document["thresholds"]["laughter"]
    assert set(tables) == {"raw", "denoised"}


def test_the_real_noise_suppressor_runs_when_present(tiny_bundles, clips):
    pytest.importorskip("edgeser.frontend.denoise",
                        reason="edgeser.frontend.denoise is not part of this tree")
    ev = evaluate(EvalRequest(models=(str(tiny_bundles("laughter")),),
                              labels=str(laughter_csv(clips)), denoise="denoised",
                              stability=False, bias=False, thresholds="0.5"))
    assert [c["processing"] for c in ev.document["results"]] == ["denoised"]
    assert ev.document["results"][0]["metrics"]["files"] == 6


def test_a_missing_noise_suppressor_is_one_sentence(monkeypatch, tiny_bundles, clips):
    monkeypatch.setitem(sys.modules, "edgeser.frontend.denoise", None)
    with pytest.raises(EvaluationError, match="--denoise needs the noise suppressor"):
        evaluate(EvalRequest(models=(str(tiny_bundles("laughter")),),
                             labels=str(laughter_csv(clips)), denoise="both"))


# espeak-ng's command line (-v VOICE -s WPM -p PITCH -w OUT TEXT): copies one of three
# recordings per voice, chosen by the sentence's length.
FAKE_ESPEAK = """#!/bin/sh
while [ $# -gt 1 ]; do
  case "$1" in -v) voice=$2; shift 2;; -w) out=$2; shift 2;; -s|-p) shift 2;; *) shift;; esac
done
cp "{folder}/$voice-$(( ${{#1}} % 3 )).wav" "$out"
"""


def fake_espeak(folder: Path) -> Path:
    from edgeser.evaluation import bias

    for v, voice in enumerate(bias.VOICES):
        for k in range(3):
            sf.write(folder / f"{voice}-{k}.wav", speech_like(1.5, 22050, seed=10 * v + k), 22050)
    fake = folder / "espeak-ng"
    fake.write_text(FAKE_ESPEAK.format(folder=folder))
    fake.chmod(0o755)
    return fake


def test_neutral_speech_reports_valence_shift_and_spread_per_voice(tiny_bundles, clips,
                                                                   tmp_path, monkeypatch):
    from edgeser import Detector, audio
    from edgeser.evaluation import bias

    fake = fake_espeak(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    model = tiny_bundles("dimensional")
    ev = evaluate(EvalRequest(models=(str(model),), labels=str(dimensional_csv(clips)),
                              stability=False))
    section = ev.document["neutral_speech"]
    assert section["problem"] is None
    voices = section["models"]["dimensional"]["voices"]
    assert list(voices) == [*bias.VOICES, "all voices"]
    # the same sentence by the first voice, synthesised and scored directly
    detector = Detector.load(model)
    values = []
    for k, text in enumerate(bias.NEUTRAL_SENTENCES):
        wav = tmp_path / f"s{k}.wav"
        subprocess.run([str(fake), "-v", bias.VOICES[0], "-s", "160", "-p", "50", "-w", str(wav),
                        text], check=True)
        samples, info = audio.read_mono(wav)
        values.append(detector.detect(samples, info.rate_hz).summary.scores["valence"])
    first = voices[bias.VOICES[0]]
    assert first["sentences"] == len(bias.NEUTRAL_SENTENCES)
    assert first["mean"] == pytest.approx(np.mean(values), abs=1e-5)
    assert first["shift"] == pytest.approx(np.mean(values) - 0.5, abs=1e-5)
    assert first["spread"] == pytest.approx(np.std(values), abs=1e-5)
    monkeypatch.setenv("PATH", "/nonexistent")
    ev = evaluate(EvalRequest(models=(str(model),), labels=str(dimensional_csv(clips)),
                              stability=False))
    assert ev.document["neutral_speech"]["problem"] == bias.NOT_INSTALLED


# ------------------------------------------------------------------------------------------
# Embeddings export
# ------------------------------------------------------------------------------------------


def test_detect_exports_each_windows_embedding_as_the_graph_gives_it(tiny_bundles, clips,
                                                                     tmp_path):
    import onnxruntime as ort
    from edgeser import frontend

    model = tiny_bundles("categorical")
    out = tmp_path / "emb.npz"
    result = ok(cli("detect", str(clips / "c0.wav"), str(clips / "c1.wav"), "--model",
                    str(model), "--embeddings", str(out), "-f", "json", "--window", "1", "--hop",
                    "0.5",
                    home=tmp_path / "home"))
    doc = json.loads(result.stdout)
    data = np.load(out)
    windows = [(f["source"], w) for f in doc["files"] for w in f["windows"] if not w["silent"]]
    assert len(data["embedding"]) == len(windows) == 8  # 4 windows of 1 s in 2.5 s, twice
    assert [(s, w["start_s"], w["end_s"]) for s, w in windows] == \
        list(zip(data["source"], data["start_s"], data["end_s"]))
    session = ort.InferenceSession(str(model / "model.onnx"))
    samples, _ = sf.read(clips / "c1.wav", dtype="float32")
    k = list(data["source"]).index(str(clips / "c1.wav")) + 1  # its second window
    start, stop = round(data["start_s"][k] * RATE), round(data["end_s"][k] * RATE)
    x = frontend.normalize(samples[start:stop])[None]
    expected = session.run(None, {session.get_inputs()[0].name: x})[1][0]
    assert np.allclose(data["embedding"][k], expected, atol=1e-5)
    parquet = tmp_path / "emb.parquet"
    run = cli("detect", str(clips / "c0.wav"), "--model", str(model), "--embeddings",
              str(parquet), "--window", "1", "--hop", "0.5", home=tmp_path / "home")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert run.returncode == 1 and 'pip install "edgeser[parquet]"' in run.stderr
        assert not parquet.exists()
    else:
        ok(run)
        table = pq.read_table(parquet)
        assert table.column_names == ["source", "window", "start_s", "end_s", "embedding"]
        assert table.num_rows == sum(1 for s, _ in windows if s == str(clips / "c0.wav"))
    bad = cli("detect", str(clips / "c0.wav"), "--model", str(model), "--embeddings",
              str(tmp_path / "emb.txt"), home=tmp_path / "home")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("edgeser: ") and ".npz or .parquet" in bad.stderr


# ------------------------------------------------------------------------------------------
# The real recordings
# ------------------------------------------------------------------------------------------


def test_eval_on_the_real_recordings(test_data_dir, tiny_bundles, tmp_path):
    """The shared emotion set's own labels.csv (class column ``emotion``, speaker, sex), three
    models and two conditions: a complete, sane report."""
    labels = test_data_dir / "emotion" / "labels.csv"
    report = tmp_path / "report"
    result = cli("eval", "--model", str(tiny_bundles("categorical")), "--labels", str(labels),
                 "--class-column", "emotion", "--max-files", "16", "--perturb", "noise:10",
                 "--perturb", "reverb:0.5", "--report", str(report), "--no-plots",
                 "--no-stability", home=tmp_path / "home")
    ok(result)
    doc = json.loads((report / "report.json").read_text())
    assert doc["labels"]["files_used"] == 16 and doc["labels"]["bad_rows"] == []
    assert doc["labels"]["sha256"] == __import__("hashlib").sha256(labels.read_bytes()).hexdigest()
    cells = {c["condition"]: c["metrics"] for c in doc["results"]}
    assert set(cells) == {"clean", "white-10dB", "reverb-0.5s"}
    for m in cells.values():
        assert 0 <= m["unweighted_accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
        assert sum(map(sum, m["confusion"])) == m["files"]
        assert m["files"] + sum(m["skipped_classes"].values()) == 16
        assert m["files"] >= 4  # angry, happy, neutral, sad are in the set
    by_sex = doc["results"][0]["by_sex"]
    assert set(by_sex["groups"]) == {"female", "male"}
    text = (report / "report.md").read_text()
    for heading in ("## Models", "## Conditions", "## Results against the labels",
                    "## Between sexes"):
        assert heading in text
    assert "| clean | raw | " in text
    assert not any(p.name.startswith(".report") for p in tmp_path.iterdir())  # no temp left


def test_a_report_replaces_an_earlier_report_but_nothing_else(tiny_bundles, clips, tmp_path):
    from edgeser.evaluation import write_report

    ev = evaluate(EvalRequest(models=(str(tiny_bundles("dimensional")),),
                              labels=str(dimensional_csv(clips)), stability=False, bias=False))
    dest = tmp_path / "report"
    write_report(dest, ev, plots=False)
    (dest / "report.md").write_text("old")
    write_report(dest, ev, plots=False)
    assert (dest / "report.md").read_text().startswith("# edgeser evaluation")
    assert json.loads((dest / "report.json").read_text())["report_schema"] == 1
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    with pytest.raises(EvaluationError, match="not an edgeser report"):
        write_report(other, ev, plots=False)
    assert [p.name for p in other.iterdir()] == ["cat.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "report"]  # no temp left
