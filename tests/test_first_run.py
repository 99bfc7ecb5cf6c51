"""A new user's first run: what they type first, and the sentences they get back.

Inputs are checked before any model is resolved, every option's default is in the rendered
help, a checkpoint's own preprocessing is honoured, a degraded bundle says so wherever it is
used, commands that only run bundles name the command that makes one, and the default
evaluation audio needs nothing beyond the export extra.
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import soundfile as sf

import checkpoints
from test_detect_cli import cli, error_lines
from edgeser import Detector, bundle
from edgeser.detector import DEFAULT_MODEL_ID
from edgeser.export import ExportOptions, eval_audio, export_model, preprocessing
from edgeser.export.quantize import RECIPES, Recipe

WINDOWS = dict(eval_windows=12, calibration_windows=8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return checkpoints.audeering_trained_like(tmp_path_factory.mktemp("ckpt") / "emotion")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    t = np.arange(5 * 22050) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2, 22050)
    return path


# ------------------------------------------------------------------------------------------
# Inputs before models
# ------------------------------------------------------------------------------------------


def test_a_missing_input_is_named_before_any_model_is_resolved(tmp_path):
    # No bundle exists under this EDGESER_HOME: resolving the default model would say so (or
    # offer an export); the typo must be reported first and alone.
    result = cli("detect", "typo.wav", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert error_lines(result.stderr) == ["edgeser: typo.wav: no such file or folder."]
    assert "export" not in result.stderr and "bundle" not in result.stderr
    assert "Traceback" not in result.stderr


def test_several_missing_inputs_are_each_named_once(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("detect", "a.wav", "empty", "b.flac", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    lines = error_lines(result.stderr)
    assert lines[0] == "edgeser: a.wav: no such file or folder."
    assert lines[1].startswith("edgeser: empty: is a folder with no audio files")
    assert lines[2] == "edgeser: b.flac: no such file or folder."
    assert lines[3] == "edgeser: none of the 3 inputs can be read."
    assert len(lines) == 4 and "bundle" not in result.stderr


def test_a_failed_input_among_good_ones_is_said_once_on_stderr(tiny_bundles, clip, tmp_path):
    result = cli("detect", str(clip), "gone.wav", "-m", str(tiny_bundles("dimensional")),
                 home=tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("gone.wav: no such file or folder.") == 1
    assert "no such file" not in result.stdout  # the table only marks the row as failed
    assert "gone.wav" in result.stdout and "failed" in result.stdout


# ------------------------------------------------------------------------------------------
# Help shows every default
# ------------------------------------------------------------------------------------------


def _option_blocks(help_text: str) -> dict[str, str]:
    """Option name -> its whole help block (wrapped lines joined), from the Options section."""
    section = help_text.split("Options:", 1)[1]
    blocks: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^  (?:-\w, )?(--[\w-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line
        elif current is not None:
            blocks[current] += " " + line.strip()
    return blocks


@pytest.mark.parametrize("command", ["detect", "export", "bench", "eval", "denoise", "distill"])
def test_help_states_the_default_of_every_option_that_takes_a_value(command, tmp_path):
    result = cli(command, "--help", home=tmp_path, env={"COLUMNS": "100", "TERM": "dumb"})
    assert result.returncode == 0, result.stderr
    blocks = _option_blocks(result.stdout)
    assert len(blocks) > (1 if command == "denoise" else 5), result.stdout
    for name, block in blocks.items():
        takes_value = "<" in block.split("  ")[1] if "  " in block else False
        if name == "--help" or not takes_value:
            continue  # flags are off unless given
        assert "[default:" in block or "[required]" in block, f"{command} {name}: {block}"
    if command == "detect":
        joined = " ".join(blocks["--model"].replace("- ", "-").split())
        assert DEFAULT_MODEL_ID in joined.replace(" ", "")


def test_help_text_keeps_square_brackets(tmp_path):
    """Rich markup would eat "[default: ...]"; the help renders it literally."""
    result = cli("detect", "--help", home=tmp_path, env={"COLUMNS": "200"})
    assert "[default: the bundle's]" in result.stdout
    assert "[default: table]" in result.stdout


# ------------------------------------------------------------------------------------------
# preprocessor_config.json
# ------------------------------------------------------------------------------------------


def _raw_checkpoint(checkpoint, tmp_path):
    import shutil

    raw = tmp_path / "raw-ckpt"
    shutil.copytree(checkpoint, raw)
    config = dict(checkpoints.PREPROCESSOR, do_normalize=False)
    (raw / "preprocessor_config.json").write_text(json.dumps(config))
    return raw


@pytest.mark.parametrize("do_normalize", [True, False])
def test_windows_are_prepared_as_the_checkpoints_feature_extractor_does(do_normalize, tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    config = dict(checkpoints.PREPROCESSOR, do_normalize=do_normalize)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    prep = preprocessing.read(tmp_path, "ckpt")
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(tmp_path))
    rng = np.random.default_rng(3)
    window = (0.2 * rng.standard_normal(16000) + 0.05).astype(np.float32)
    expected = extractor(window, sampling_rate=16000, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(prep.window(window), expected, atol=1e-5)
    assert prep.normalization_mode == ("per-window" if do_normalize else "none")


def test_a_checkpoint_without_preprocessor_config_is_normalised_like_the_extractor_default(tmp_path):
    prep = preprocessing.read(tmp_path, "ckpt")
    assert prep.do_normalize and "default" in prep.origin


def test_a_preprocessor_config_for_another_rate_is_refused(tmp_path):
    from edgeser.errors import ExportError

    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        dict(checkpoints.PREPROCESSOR, sampling_rate=8000, do_normalize="yes")))
    with pytest.raises(ExportError, match="sampling_rate is 8000.*do_normalize is 'yes'"):
        preprocessing.read(tmp_path, "ckpt")


def test_do_normalize_false_gives_a_bundle_and_runtime_that_feed_raw_samples(checkpoint, tmp_path, clip):
    raw = _raw_checkpoint(checkpoint, tmp_path)
    out = tmp_path / "bundle"
    export_model(ExportOptions(model=str(raw), out=out, quantize="none", eval_windows=6))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["normalization"]["mode"] == "none"
    assert "do_normalize=false" in manifest["normalization"]["origin"]
    with np.load(out / "reference.npz") as ref:
        x = ref["input_0"][0]
    assert abs(float(np.std(x)) - 1.0) > 0.1  # raw samples, not unit variance

    # The runtime feeds each window's raw samples: the scores equal the graph on them.
    import onnxruntime as ort

    from edgeser import audio
    from edgeser import frontend as fe

    detector = Detector.load(out)
    result = detector.detect_file(clip)
    samples, info = audio.read_mono(clip)
    x16 = fe.resample(samples, info.rate_hz)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    first = result.windows[0]
    logits = session.run(["logits"], {"input_values": x16[None, first.start:first.stop]})[0][0]
    got = [first.scores[label] for label in detector.bundle.labels]
    np.testing.assert_allclose(got, logits, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Degraded bundles say so wherever they are used
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def degraded_bundle(checkpoint, tmp_path_factory):
    """A bundle that fails the gate: static INT8 calibrated on near-silent noise."""
    folder = tmp_path_factory.mktemp("quiet")
    rng = np.random.default_rng(0)
    for k in range(3):
        sf.write(folder / f"q{k}.wav", (1e-4 * rng.standard_normal(48000)).astype(np.float32), 16000)
    harmful = Recipe.static(per_channel=False, float_nodes=(), name="harmful")
    out = tmp_path_factory.mktemp("bundles") / "degraded"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(RECIPES, "harmful", lambda: harmful)
        export_model(ExportOptions(model=str(checkpoint), out=out, recipe="harmful",
                                   calibration=folder, allow_degraded=True, **WINDOWS))
    return out


def test_a_degraded_bundle_knows_its_verdict(degraded_bundle, tiny_bundles):
    gate = bundle.load(degraded_bundle).gate
    assert gate.degraded and gate.failures and "CCC" in gate.failures[0]
    assert not bundle.load(tiny_bundles("dimensional")).gate.degraded


def test_detect_warns_once_and_the_json_carries_the_verdict(degraded_bundle, clip, tmp_path):
    result = cli("detect", str(clip), "-m", str(degraded_bundle), "-f", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "fidelity gate" in line]
    assert len(warnings) == 1 and warnings[0].startswith("edgeser: warning: model bundle")
    assert "--allow-degraded" in warnings[0]
    gate = json.loads(result.stdout)["model"]["fidelity_gate"]
    failures = bundle.load(degraded_bundle).gate.failures
    assert gate == {"passed": False, "failures": list(failures)}


def test_detect_on_a_sound_bundle_reports_a_passed_gate(tiny_bundles, clip, tmp_path):
    result = cli("detect", str(clip), "-m", str(tiny_bundles("dimensional")), "-f", "json",
                 home=tmp_path)
    assert result.returncode == 0 and "fidelity gate" not in result.stderr
    assert json.loads(result.stdout)["model"]["fidelity_gate"] == {"passed": True, "failures": []}


def test_verify_reports_degraded_with_the_failing_metrics(degraded_bundle, tmp_path):
    result = cli("verify", str(degraded_bundle), home=tmp_path)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("DEGRADED: failed the fidelity gate at export (")
    for failure in bundle.load(degraded_bundle).gate.failures:
        assert failure in last
    assert "\nOK\n" not in result.stdout + "\n"


# ------------------------------------------------------------------------------------------
# bench and verify on things that are not bundles
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["verify"], ["bench", "--no-cold-start", "--model"]])
def test_a_checkpoint_given_to_bench_or_verify_gets_the_export_command(command, checkpoint, tmp_path):
    result = cli(*command, str(checkpoint), home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert f"`edgeser export --model {checkpoint.resolve()} --out BUNDLE_DIR`" in line
    assert f"`edgeser {command[0]}" in line


def test_bench_without_the_default_bundle_names_the_export_command(tmp_path):
    result = cli("bench", "--no-cold-start", home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert f"`edgeser export --model {DEFAULT_MODEL_ID} --out BUNDLE_DIR`" in line


def test_verify_of_a_checkpoint_already_exported_on_first_use_verifies_that_bundle(
        checkpoint, tmp_path):
    home = tmp_path / "home"
    first = cli("detect", "--yes", "-m", str(checkpoint), "-f", "json",
                str(_tone(tmp_path / "t.wav")), home=home)
    assert first.returncode == 0, first.stderr
    result = cli("verify", str(checkpoint), home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "OK"


def _tone(path):
    t = np.arange(2 * 16000) / 16000
    sf.write(path, 0.2 * np.sin(2 * np.pi * 300 * t), 16000)
    return path


# ------------------------------------------------------------------------------------------
# Default evaluation audio with the export extra only
# ------------------------------------------------------------------------------------------


def test_formant_resonator_equals_the_recursive_filter():
    from scipy.signal import lfilter

    rng = np.random.default_rng(1)
    x = rng.standard_normal(9000)
    for centre_hz in (270, 1090, 3010):
        r = np.exp(-np.pi * 90 / 16000)
        expected = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * centre_hz / 16000), r * r], x)
        got = eval_audio._filter(x, eval_audio.resonator_response(centre_hz))
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_default_evaluation_audio_needs_neither_espeak_nor_scipy(monkeypatch):
    monkeypatch.setattr(eval_audio.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "scipy", None)  # any scipy import now fails
    monkeypatch.setitem(sys.modules, "scipy.signal", None)
    evaluation = eval_audio.default(3.0, 1.0, 5)
    assert len(evaluation) == 5 and "formant" in evaluation.description
    assert all(np.isfinite(w).all() and abs(float(w.std()) - 1) < 1e-3 for w in evaluation.windows)
