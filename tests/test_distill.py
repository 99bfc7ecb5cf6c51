"""``edgeser distill``: students of every family that ``edgeser export`` takes unchanged, trained
to their teacher's outputs on unlabelled audio, judged on held-out speakers; checkpoints, resume
and interruption that never leave anything half written; one sentence per bad input.

Teachers are tiny (tests/checkpoints.py); the replica teacher has layers that matter (their
residual branches scaled up) and a head fitted to its principal directions on the test audio, so
its outputs move and dropping a layer costs fidelity that training recovers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

NEEDS_EXPORT = "the export toolchain is not installed (pip install 'edgeser[export]')"
torch = pytest.importorskip("torch", reason=NEEDS_EXPORT)
pytest.importorskip("transformers", reason=NEEDS_EXPORT)
pytest.importorskip("onnx", reason=NEEDS_EXPORT)
sf = pytest.importorskip("soundfile", reason="soundfile is not installed")

from safetensors.torch import load_file, save_file  # noqa: E402

import checkpoints  # noqa: E402
from edgeser.errors import ExportError  # noqa: E402
from edgeser.export import (checkpoint, distill_data, distill_record, eval_audio, families,  # noqa: E402
                            students, weights)
from edgeser.export.distill import (DistillError, DistillInterrupted, DistillOptions,  # noqa: E402
                                    distill, parse_duration, work_dir)

SPEAKERS, FILES_PER_SPEAKER, FILE_S = 4, 2, 5.0
FAST = {"hop_s": 0.5, "holdout": 0.25, "lr": 1e-3, "batch_size": 8}


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


class Recorder:
    """A progress sink that keeps notes and can send SIGINT at a chosen training step."""

    def __init__(self, interrupt_at: int | None = None, during: str = "training") -> None:
        self.notes: list = []
        self.step = None
        self.count = 0
        self.interrupt_at, self.during = interrupt_at, during

    def start(self, description, total=None):
        self.step, self.count = description, 0

    def advance(self, units=1):
        before, self.count = self.count, self.count + units
        if (self.interrupt_at is not None and self.step.startswith(self.during)
                and before < self.interrupt_at <= self.count):
            os.kill(os.getpid(), signal.SIGINT)

    def note(self, message):
        self.notes.append(message)

    def status(self, text):
        pass


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("distill")


@pytest.fixture(scope="module")
def audio_dir(root) -> Path:
    """Speech-like vowel sequences, one folder per speaker."""
    folder = root / "audio"
    for s in range(SPEAKERS):
        (folder / f"spk{s}").mkdir(parents=True)
        for k in range(FILES_PER_SPEAKER):
            x = eval_audio._formant_vowels(FILE_S, seed=100 + 10 * s + k)
            sf.write(folder / f"spk{s}" / f"{k}.wav", x, 16000)
    return folder


def _fit_head(backbone, audio_dir: Path) -> tuple:
    """Head weights fitted to the three leading principal directions of the pooled outputs."""
    from edgeser import frontend as fe

    windows = []
    for path in sorted(audio_dir.rglob("*.wav"))[::2]:
        x, _ = sf.read(path, dtype="float32")
        windows += [fe.normalize(x[w.start:w.start + w.length]) for w in fe.windows(len(x), 3.0, 1.0)]
    with torch.no_grad():
        pooled = torch.stack([backbone(torch.from_numpy(w)[None]).last_hidden_state.mean(1)[0]
                              for w in windows]).numpy().astype(np.float64)
    mean = pooled.mean(0)
    _, singular, basis = np.linalg.svd(pooled - mean, full_matrices=False)
    spread = singular[:3] / np.sqrt(len(pooled))
    dense = np.zeros((32, 32))
    dense[:3] = 0.8 * basis[:3] / spread[:, None]
    out_proj = np.zeros((3, 32))
    out_proj[[0, 1, 2], [0, 1, 2]] = 0.2
    return dense, mean, out_proj


def replica_teacher(directory: Path, audio_dir: Path, *, layers: int = 3, seed: int = 0,
                    constant: bool = False) -> Path:
    """audeering layout; every layer changes the representation (residual branches x6)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    backbone = Wav2Vec2Model(Wav2Vec2Config(**checkpoints._small_backbone(layers=layers))).eval()
    with torch.no_grad():
        for layer in backbone.encoder.layers:
            layer.feed_forward.output_dense.weight.mul_(6.0)
            layer.attention.out_proj.weight.mul_(6.0)
    dense, mean, out_proj = _fit_head(backbone, audio_dir)
    if constant:
        out_proj[:] = 0.0
    state = {f"wav2vec2.{k}": v for k, v in backbone.state_dict().items()}
    state.update({
        "classifier.dense.weight": torch.tensor(dense, dtype=torch.float32),
        "classifier.dense.bias": torch.tensor(-(dense @ mean), dtype=torch.float32),
        "classifier.out_proj.weight": torch.tensor(out_proj, dtype=torch.float32),
        "classifier.out_proj.bias": torch.full((3,), 0.5)})
    config = dict(checkpoints.AUDEERING_CONFIG, num_hidden_layers=layers)
    return checkpoints._save(directory, config, state, fmt="safetensors",
                             weight_norm="parametrizations")


@pytest.fixture(scope="module")
def teacher(root, audio_dir) -> Path:
    return replica_teacher(root / "teacher", audio_dir)


def options(teacher: Path, audio: Path, out: Path, cache: Path, **extra) -> DistillOptions:
    values = {**FAST, "steps": 60, "student_layers": 1, **extra}
    return DistillOptions(teacher=str(teacher), audio=audio, out=out, cache_dir=cache, **values)


@pytest.fixture(scope="module")
def trained(root, teacher, audio_dir):
    """A one-layer student of the three-layer replica teacher, 60 steps."""
    return distill(options(teacher, audio_dir, root / "students" / "s1", root / "cache"),
                   Recorder())


def read_record(student: Path) -> dict:
    return json.loads((student / "config.json").read_text())[students.RECORD_KEY]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    if out.parent.exists():
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
        assert leftovers == []


def load_like_export(directory: Path):
    """What edgeser export does to read a checkpoint (every weight used, shapes equal)."""
    ckpt = checkpoint.read(directory, str(directory))
    family, built = families.build(ckpt.config, str(directory), state_dict=ckpt.state_dict)
    weights.load(built, ckpt.state_dict, str(directory))
    return family, built


def cli(monkeypatch, capsys, *args: str):
    from edgeser.cli import main

    monkeypatch.setattr(sys, "argv", ["edgeser", "distill", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


# ------------------------------------------------------------------------------------------
# The student: export, detection, fidelity, record
# ------------------------------------------------------------------------------------------


def test_student_exports_unchanged_and_its_bundle_detects(trained, root, audio_dir):
    from edgeser import Detector
    from edgeser.export import ExportOptions, export_model

    student = trained.student
    assert sorted(p.name for p in student.iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json"]
    config = json.loads((student / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ForSpeechClassification"]
    assert config["num_hidden_layers"] == 1
    result = export_model(ExportOptions(model=str(student), out=root / "bundles" / "s1",
                                        quantize="none", eval_windows=8))
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["source"]["family"] == "audeering-dimensional"
    record = manifest["distillation"]
    assert record["faithful"] is trained.faithful
    assert record["teacher"]["weights"] == read_record(student)["teacher"]["weights"]
    assert bool(record["export_check"]["reasons"]) is not trained.faithful
    x, _ = sf.read(next(audio_dir.rglob("*.wav")), dtype="float32")
    detection = Detector.load(result.bundle, threads=1).detect(x, 16000)
    assert detection.windows and all(w.scores is not None for w in detection.windows
                                     if not w.silent)


def test_training_raises_heldout_ccc_over_the_untrained_truncation(trained):
    held = trained.record["heldout"]
    before, after = held["before_training"], held
    assert after["ccc_min"] > before["ccc_min"] + 0.1, (before["ccc_min"], after["ccc_min"])
    assert min(m["ccc"] for m in after["outputs"].values()) == after["ccc_min"]
    training = trained.record["training"]
    assert training["loss_last"] < 0.5 * training["loss_first"]


def test_record_names_teacher_audio_settings_and_results(trained, teacher, audio_dir):
    record = read_record(trained.student)
    assert record == {**trained.record, "student": record["student"]}
    sha = checkpoint.read(teacher, "t").weights[0].sha256
    assert record["teacher"]["weights"] == [{"file": "model.safetensors", "sha256": sha}]
    assert record["teacher"]["layers"] == 3 and record["student"]["layers_kept"] == [2]
    assert record["student"]["frozen_frontend"] is True
    assert record["student"]["weights"][0]["sha256"] == checkpoint.read(
        trained.student, "s").weights[0].sha256
    audio = record["audio"]
    assert audio["files"] == SPEAKERS * FILES_PER_SPEAKER
    seconds = sum(sf.info(str(p)).duration for p in audio_dir.rglob("*.wav"))
    assert audio["seconds"] == pytest.approx(seconds, abs=0.01)
    assert audio["split"].startswith("by speaker (first folder level: 4 folders")
    assert audio["heldout"]["speakers"] == 1 and audio["training"]["speakers"] == 3
    assert record["settings"]["steps"] == 60 and record["settings"]["seed"] == 0
    assert record["min_ccc"] == 0.9 and record["faithful"] == (not record["failures"])
    spread = record["heldout"]["teacher_spread"]
    assert spread["near_constant"] == [] and all(m["std"] > 0.02 for m in spread["outputs"].values())
    # held-out files are never trained on: no held-out speaker among the training files
    corpus = distill_data.scan(audio_dir)
    train, held = distill_data.split(corpus, 0.25, 0)
    assert {corpus.files[i].group for i in train}.isdisjoint({corpus.files[i].group for i in held})
    assert set(trained.heldout.files) == {corpus.files[i].rel for i in held}


def test_teacher_outputs_are_cached_once(trained, root, teacher, audio_dir):
    caches = [p for p in (root / "cache").iterdir() if (p / "meta.json").is_file()]
    assert len(caches) == 1
    stamp = (caches[0] / "meta.json").stat().st_mtime_ns
    for wav in audio_dir.rglob("*.wav"):  # a copy or remount changes mtimes, not content
        os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**12))
    again = distill(options(teacher, audio_dir, root / "students" / "again", root / "cache",
                            steps=1), Recorder())
    assert (caches[0] / "meta.json").stat().st_mtime_ns == stamp
    assert again.record["audio"] == trained.record["audio"]


def test_a_written_student_can_be_judged_again_on_its_heldout_audio(trained, root, teacher,
                                                                     audio_dir):
    from edgeser.export.distill import heldout

    again = heldout(options(teacher, audio_dir, root / "students" / "judge", root / "cache"),
                    Recorder())
    assert again.files == trained.heldout.files
    np.testing.assert_array_equal(again.refs, trained.heldout.refs)
    np.testing.assert_allclose(again.teacher_logits, trained.heldout.teacher_logits)
    assert not (root / "students" / "judge").exists()


# ------------------------------------------------------------------------------------------
# Resume, interruption, nothing half written
# ------------------------------------------------------------------------------------------


def test_resume_continues_to_the_same_student_as_an_uninterrupted_run(root, teacher, audio_dir):
    cache = root / "cache"
    whole = distill(options(teacher, audio_dir, root / "resume" / "whole", cache, steps=6,
                            checkpoint_every=2), Recorder())
    out = root / "resume" / "parts"
    with pytest.raises(DistillInterrupted, match="interrupted at step 3 of 6.*--resume"):
        distill(options(teacher, audio_dir, out, cache, steps=6, checkpoint_every=2),
                Recorder(interrupt_at=3))
    assert_nothing_written(out)
    kept = torch.load(str(work_dir(out) / "checkpoint.pt"), weights_only=True)
    assert kept["step"] == 3
    with pytest.raises(DistillError, match="left a checkpoint.*--resume"):
        distill(options(teacher, audio_dir, out, cache, steps=6, checkpoint_every=2), Recorder())
    resumed = distill(options(teacher, audio_dir, out, cache, steps=6, checkpoint_every=2,
                              resume=True), Recorder())
    assert resumed.record["training"]["resumed"] is True
    assert resumed.record["training"]["steps_done"] == 6
    assert not work_dir(out).exists()
    a, b = load_file(str(whole.student / "model.safetensors")), load_file(
        str(resumed.student / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_interrupted_teacher_pass_resumes_to_the_same_cache(root, teacher, audio_dir,
                                                               monkeypatch):
    from edgeser.export import teacher_cache

    monkeypatch.setattr(teacher_cache, "SHARD_WINDOWS", 16)
    out = root / "teacher-pass" / "student"
    with pytest.raises(DistillInterrupted, match="during the teacher pass"):
        distill(options(teacher, audio_dir, out, root / "cache-split", steps=1, seed=7),
                Recorder(interrupt_at=40, during="teacher outputs"))
    assert_nothing_written(out)
    [partial] = list((root / "cache-split").iterdir())
    shards = sorted(p.name for p in partial.glob("shard-*"))
    assert shards and not (partial / "meta.json").exists()
    assert not list(partial.glob(".*tmp*"))
    resumed = distill(options(teacher, audio_dir, out, root / "cache-split", steps=1, seed=7),
                      Recorder())
    assert sorted(p.name for p in partial.glob("shard-*"))[:len(shards)] == shards
    whole = distill(options(teacher, audio_dir, root / "teacher-pass" / "whole",
                            root / "cache-whole", steps=1, seed=7), Recorder())
    a, b = teacher_cache.load(partial), teacher_cache.load(root / "cache-whole" / partial.name)
    np.testing.assert_array_equal(a.refs, b.refs)
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-6)
    assert resumed.record["heldout"]["outputs"] == whole.record["heldout"]["outputs"]


def test_a_crash_while_writing_keeps_the_checkpoint_and_no_student(root, teacher, audio_dir,
                                                                   monkeypatch):
    import safetensors.torch

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    out = root / "crash" / "student"
    with pytest.raises(OSError):
        distill(options(teacher, audio_dir, out, root / "cache", steps=2), Recorder())
    assert_nothing_written(out)
    assert torch.load(str(work_dir(out) / "checkpoint.pt"), weights_only=True)["step"] == 2


# ------------------------------------------------------------------------------------------
# Fidelity verdicts: min-ccc, near-constant teachers
# ------------------------------------------------------------------------------------------


def test_an_unfaithful_student_is_written_and_its_bundle_says_so(root, teacher, audio_dir, capsys):
    from edgeser import bundle
    from edgeser.export import ExportOptions, export_model

    result = distill(options(teacher, audio_dir, root / "students" / "strict", root / "cache",
                             steps=2, min_ccc=0.9999), Recorder())
    assert result.faithful is False and result.student.is_dir()
    assert any("not faithful" in w for w in result.warnings)
    capsys.readouterr()
    exported = export_model(ExportOptions(model=str(result.student),
                                          out=root / "bundles" / "strict", quantize="none",
                                          eval_windows=4))
    err = capsys.readouterr().err
    assert "warning:" in err and "not faithful" in err and "faithful=false" in err
    record = bundle.load(exported.bundle).manifest.distillation
    assert record["faithful"] is False
    assert record["export_check"]["faithful"] is False


def test_export_checks_the_record_instead_of_trusting_it(trained):
    config = json.loads((trained.student / "config.json").read_text())
    ckpt_weights = checkpoint.read(trained.student, "s").weights
    messages: list = []
    honest = distill_record.for_manifest(config, ckpt_weights, "s", warn=messages.append)
    assert honest["faithful"] is trained.faithful
    forged = json.loads(json.dumps(config))
    forged[students.RECORD_KEY]["faithful"] = True
    forged[students.RECORD_KEY]["heldout"]["outputs"]["arousal"]["ccc"] = 0.5
    assert distill_record.for_manifest(forged, ckpt_weights, "s", warn=messages.append)[
        "faithful"] is False
    other_weights = (checkpoint.WeightFile("model.safetensors", "0" * 64),)
    assert distill_record.for_manifest(config, other_weights, "s", warn=messages.append)[
        "faithful"] is False
    assert distill_record.for_manifest(config, ckpt_weights, "s", layers=None,
                                       warn=messages.append)["faithful"] is trained.faithful
    pruned = distill_record.for_manifest(config, ckpt_weights, "s", layers=2, warn=messages.append)
    assert pruned["faithful"] is False
    assert distill_record.for_manifest({"model_type": "wav2vec2"}, ckpt_weights, "s") is None
    assert any("not the ones the record was written for" in m for m in messages)


def test_a_near_constant_teacher_is_warned_about(root, audio_dir):
    flat = replica_teacher(root / "flat-teacher", audio_dir, constant=True)
    result = distill(options(flat, audio_dir, root / "students" / "flat", root / "cache",
                             steps=2), Recorder())
    assert any("barely move" in w and "proves nothing" in w for w in result.warnings)
    assert result.record["teacher_near_constant"] == ["arousal", "dominance", "valence"]


# ------------------------------------------------------------------------------------------
# Families and students
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["categorical", "laughter", "embedding"])
def test_every_family_gives_a_student_export_loads(kind, root, audio_dir):
    teacher_dir = root / f"teacher-{kind}"
    if kind == "categorical":
        checkpoints.sequence_classifier(teacher_dir, ["angry", "happy", "neutral", "sad"],
                                        layers=2, weighted_layer_sum=True)
    elif kind == "laughter":
        checkpoints.sequence_classifier(teacher_dir, ["other", "laughter"], layers=2, seed=5)
    else:
        checkpoints.embedding_model(teacher_dir)
    # laughter also trains on augmented copies; the categorical student matches hidden states
    extra = ({"augment": 1} if kind == "laughter" else
             {"match_hidden": 0.5} if kind == "categorical" else {})
    result = distill(options(teacher_dir, audio_dir, root / "students" / kind, root / "cache",
                             steps=3, **extra), Recorder())
    family, built = load_like_export(result.student)
    teacher_family, teacher_built = load_like_export(teacher_dir)
    assert family.name == teacher_family.name and built.task == teacher_built.task
    assert built.labels == teacher_built.labels
    held = result.record["heldout"]
    if kind == "embedding":
        assert "prototype-scores" in held["outputs"] and "embedding_cosine_mean" in held
    else:
        assert set(held["outputs"]) == set(teacher_built.labels) and "top1_agreement" in held
    if kind == "laughter":
        assert result.record["audio"]["training"]["augmented_windows"] == \
            result.record["audio"]["training"]["windows"]
        decisions = held["laughter"]
        assert decisions["threshold"] == 0.5
        assert {"window_precision", "window_recall", "event_precision", "event_recall"} <= set(decisions)


def test_a_student_initialised_from_the_first_layers_is_the_pruned_teacher(root, teacher,
                                                                         audio_dir):
    result = distill(options(teacher, audio_dir, root / "students" / "first2", root / "cache",
                             student_layers=None, init_layers=(0, 1), steps=1, lr=1e-12),
                     Recorder())
    _, student = load_like_export(result.student)
    ckpt = checkpoint.read(teacher, "t")
    _, pruned = families.build(ckpt.config, "t", layers=2)
    weights.load(pruned, ckpt.state_dict, "t", layers_kept=2)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(student.module(x)[0].numpy(), pruned.module(x)[0].numpy(),
                                   atol=1e-4)


def test_the_tiny_preset_narrows_every_width_and_exports(root, teacher, audio_dir):
    result = distill(options(teacher, audio_dir, root / "students" / "tiny", root / "cache",
                             student_layers=None, preset="tiny", steps=2, match_hidden=1.0),
                     Recorder())
    config = json.loads((result.student / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["intermediate_size"], set(config["conv_dim"])) == (2, 16, 1, 64, {8})
    assert result.record["student"]["frozen_frontend"] is False
    load_like_export(result.student)


def test_a_shorter_positional_conv_keeps_the_teachers_centre_taps(root, teacher):
    """Output frame t reads the same input frames in student and teacher: with the teacher's
    far taps at zero, the student's front end is the teacher's exactly."""
    state = load_file(str(teacher / "model.safetensors"))
    gain = "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    kernel = checkpoints.AUDEERING_CONFIG["num_conv_pos_embeddings"]
    assert state[gain].shape[-1] == kernel == 16
    state[gain][..., :4] = 0.0
    state[gain][..., 12:] = 0.0
    centre = shutil.copytree(teacher, root / "centre-teacher")
    save_file(state, str(centre / "model.safetensors"))
    _, built = load_like_export(centre)
    shape = students.backbone_shape(built.load_target.wav2vec2.config)
    plan = students.plan(shape, layers=shape.layers, pos_conv_kernel=8)
    assert plan.keeps_conv and plan.keeps_encoder and "positional conv 8 of 16 taps" in plan.describe()
    config = students.student_config(checkpoint.read(centre, "t").config, plan)
    assert config["num_conv_pos_embeddings"] == 8
    _, student = families.build(config, "student")
    students.initialise(built.load_target.state_dict(), student.load_target, "wav2vec2", plan,
                        "audeering-dimensional")
    student.module.eval()
    from edgeser.export import training

    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 16000)).astype(np.float32))
    with torch.no_grad():
        wanted = training.Net(built, "wav2vec2", "cpu").encoder_input(x)
        got = training.Net(student, "wav2vec2", "cpu").encoder_input(x)
        np.testing.assert_allclose(got.numpy(), wanted.numpy(), atol=1e-5)
        np.testing.assert_allclose(student.module(x)[0].numpy(), built.module(x)[0].numpy(),
                                   atol=1e-5)


def test_frontend_only_trains_a_shorter_positional_conv_for_the_teachers_transformer(
        root, teacher, audio_dir):
    result = distill(options(teacher, audio_dir, root / "students" / "front", root / "cache",
                             student_layers=None, frontend_only=True, pos_conv_kernel=8,
                             steps=80), Recorder())
    config = json.loads((result.student / "config.json").read_text())
    assert config["num_hidden_layers"] == 3 and config["num_conv_pos_embeddings"] == 8
    record = result.record
    assert record["settings"]["frontend_only"] is True
    assert record["settings"]["loss"].startswith("front end only")
    assert record["training"]["loss_last"] < 0.6 * record["training"]["loss_first"]
    held = record["heldout"]  # this teacher amplifies every change: untrained, CCC is near 0
    assert held["ccc_min"] > 0.9 and held["ccc_min"] > held["before_training"]["ccc_min"] + 0.3
    # the transformer and head are the teacher's, bit for bit; the front end was trained
    mine = load_file(str(result.student / "model.safetensors"))
    theirs = load_file(str(teacher / "model.safetensors"))
    front = ("feature_extractor.", "feature_projection.", "pos_conv_embed.")
    rest = [k for k in mine if not any(f in k for f in front)]
    assert rest and all(torch.equal(mine[k], theirs[k]) for k in rest)
    assert not torch.equal(mine["wav2vec2.feature_projection.projection.bias"],
                           theirs["wav2vec2.feature_projection.projection.bias"])
    load_like_export(result.student)


def test_frontend_only_narrows_the_conv_and_training_recovers_fidelity(root, teacher, audio_dir):
    result = distill(options(teacher, audio_dir, root / "students" / "front-conv", root / "cache",
                             student_layers=None, frontend_only=True, conv_dim=(12, 12, 12),
                             pos_conv_kernel=8, steps=80, lr=1e-4), Recorder())
    config = json.loads((result.student / "config.json").read_text())
    assert config["conv_dim"] == [12, 12, 12, 16, 16, 16, 16]
    assert config["num_hidden_layers"] == 3
    held = result.record["heldout"]  # this teacher amplifies every change
    assert held["ccc_min"] > held["before_training"]["ccc_min"] + 0.1
    student = result.record["student"]
    assert "conv 12,12,12,16,16,16,16 of 16 channels" in student["description"]
    assert student["conv_refit"]["windows"] > 0 and len(student["conv_refit"]["residuals"]) == 3
    load_like_export(result.student)


def _conv_error(teacher_built, student_built, x) -> float:
    from edgeser.export import training

    with torch.no_grad():
        wanted = training.Net(teacher_built, "wav2vec2", "cpu").encoder_input(x)
        got = training.Net(student_built, "wav2vec2", "cpu").encoder_input(x)
        return float(training.frontend_loss(got, wanted))


def test_narrowed_conv_layers_refitted_by_least_squares_come_closer_to_the_teacher(teacher,
                                                                                 audio_dir):
    """Narrowing the first conv layers and refitting the next ones on some windows brings the
    front end's output on other windows clearly closer to the teacher's than slicing alone."""
    from edgeser import frontend as fe

    _, built = load_like_export(teacher)
    shape = students.backbone_shape(built.load_target.wav2vec2.config)
    plan = students.plan(shape, layers=shape.layers, conv_dim=(8, 8, 8))
    assert plan.shape.conv_dim == (8, 8, 8, 16, 16, 16, 16)
    assert "conv 8,8,8,16,16,16,16 of 16 channels" in plan.describe()
    config = students.student_config(checkpoint.read(teacher, "t").config, plan)
    _, student = families.build(config, "student")
    state = built.load_target.state_dict()
    students.initialise(state, student.load_target, "wav2vec2", plan, "audeering-dimensional")
    student.module.eval()
    windows = []
    for path in sorted(audio_dir.rglob("*.wav")):
        x, _ = sf.read(path, dtype="float32")
        windows.append(fe.normalize(x[:48000]))
    fit, judge = torch.from_numpy(np.stack(windows[:4])), torch.from_numpy(np.stack(windows[4:]))
    sliced = _conv_error(built, student, judge)
    residuals = students.reconstruct_conv(built.load_target.wav2vec2.feature_extractor.conv_layers,
                                          student.load_target.wav2vec2.feature_extractor.conv_layers,
                                          fit, students.conv_kept(state, "wav2vec2", plan))
    assert len(residuals) == 3  # conv 1-3 read narrowed inputs; 4-6 keep the teacher's weights
    refitted = _conv_error(built, student, judge)
    assert refitted < 0.7 * sliced, (sliced, refitted)  # measured: about half


def test_student_plans():
    reference = students.Shape(12, 1024, 16, 4096, (512,) * 7, 16)
    default = students.plan(reference)
    assert default.init_layers == (0, 4, 7, 11) and default.keeps_conv
    chosen = students.plan(reference, init_layers=students.parse_layers("0,4,8,11"))
    assert chosen.shape.layers == 4
    tiny = students.plan(reference, preset="tiny").shape
    assert (tiny.layers, tiny.hidden_size, tiny.num_attention_heads, tiny.intermediate_size,
            max(tiny.conv_dim)) == (2, 256, 4, 1024, 256)
    narrow = students.plan(reference, layers=6, ffn_dim=2048)
    assert narrow.shape.intermediate_size == 2048 and narrow.init_layers == (0, 2, 4, 7, 9, 11)
    assert students.parse_widths("256") == 256
    assert students.parse_widths("256,256,128") == (256, 256, 128)
    with pytest.raises(ExportError, match="comma-separated list of widths"):
        students.parse_widths("wide")
    short = students.plan(reference, layers=12, pos_conv_kernel=32, conv_dim=256)
    assert short.keeps_encoder and not short.keeps_conv and short.shape.pos_conv_kernel == 32
    for kwargs, words in (
        ({"pos_conv_kernel": 256}, "larger than the teacher"),
        ({"conv_dim": 1024}, "larger than the teacher"), ({"conv_dim": (256,) * 8}, "names 8"),
        ({"layers": 14}, "larger than the teacher"), ({"ffn_dim": 8192}, "larger than the teacher"),
        ({"layers": 12}, "not smaller"), ({"init_layers": (0, 12)}, "0..11"),
        ({"init_layers": (4, 0)}, "increasing"), ({"layers": 3, "init_layers": (0, 1)}, "names 2"),
        ({"hidden_size": 300}, "multiple of 16"), ({"preset": "huge"}, "not a preset")):
        with pytest.raises(ExportError, match=words):
            students.plan(reference, **kwargs)
    with pytest.raises(ExportError, match="comma-separated"):
        students.parse_layers("0,four")


def test_durations_and_speaker_patterns(tmp_path):
    assert parse_duration("90m") == 5400 and parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("soon", "2x", "0m"):
        with pytest.raises(DistillError):
            parse_duration(bad)
    for name in ("ravdess__03-01-01-01-01-01-01.wav", "ravdess__03-01-02-01-01-01-02.wav",
                 "emodb__03a01Fa.wav", "emodb__08a01Fd.wav"):
        sf.write(tmp_path / name, np.zeros(1600, np.float32) + 0.1, 16000)
    corpus = distill_data.scan(tmp_path, r"^(emodb__\d\d)|^ravdess__.*-(\d\d)\.wav$")
    assert sorted(corpus.groups()) == ["01", "02", "emodb__03", "emodb__08"]
    assert corpus.grouping.startswith("by speaker (--speaker-pattern: 4 speakers")
    assert distill_data.scan(tmp_path).grouping == "by file (no speaker folders)"


def test_a_time_budget_stops_training_and_says_so(root, teacher, audio_dir):
    result = distill(options(teacher, audio_dir, root / "students" / "budget", root / "cache",
                             steps=None, time_budget_s=0.001), Recorder())
    assert result.record["training"]["stopped_by"] == "time budget"
    assert any("time budget stopped training" in w for w in result.warnings)


def test_the_schedule_is_planned_to_end_inside_the_time_budget(root, teacher, audio_dir):
    """--steps larger than the budget allows must not stretch the warm-up and decay beyond it."""
    recorder = Recorder()
    result = distill(options(teacher, audio_dir, root / "students" / "planned", root / "cache",
                             steps=100_000, time_budget_s=6.0), recorder)
    planned = result.record["settings"]["steps"]
    assert 1 <= planned < 100_000
    assert any(n.startswith("the time budget allows about") for n in recorder.notes)
    assert result.record["training"]["steps_done"] >= 0.5 * planned


# ------------------------------------------------------------------------------------------
# Bad input: one sentence each, exit 1, nothing written
# ------------------------------------------------------------------------------------------


def _bad_inputs(root: Path, teacher: Path, audio_dir: Path) -> dict:
    empty = root / "bad" / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    texts = root / "bad" / "texts"
    texts.mkdir(exist_ok=True)
    (texts / "notes.txt").write_text("no audio here")
    broken = root / "bad" / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    one = root / "bad" / "one"
    one.mkdir(exist_ok=True)
    shutil.copy(next(audio_dir.rglob("*.wav")), one / "only.wav")
    not_a_model = root / "bad" / "not-a-model"
    not_a_model.mkdir(exist_ok=True)
    t, a = str(teacher), str(audio_dir)
    return {
        "empty folder": (["--teacher", t, "--audio", str(empty)], "holds no audio files"),
        "no audio files": (["--teacher", t, "--audio", str(texts)], "holds no audio files"),
        "unreadable audio": (["--teacher", t, "--audio", str(broken)], "holds no readable audio"),
        "too little audio": (["--teacher", t, "--audio", str(one)],
                             "too little audio for a held-out split"),
        "teacher cannot load": (["--teacher", str(not_a_model), "--audio", a],
                                "the teacher cannot be loaded"),
        "student larger": (["--teacher", t, "--audio", a, "--student-layers", "5"],
                           "larger than the teacher"),
        "bad duration": (["--teacher", t, "--audio", a, "--time-budget", "soon"],
                         "is not a duration"),
        "front end only, fewer layers": (["--teacher", t, "--audio", a, "--frontend-only",
                                          "--student-layers", "1", "--conv-dim", "8"],
                                         "--frontend-only keeps the teacher's transformer"),
        "front end only, nothing narrower": (["--teacher", t, "--audio", a, "--frontend-only"],
                                             "not smaller than the teacher"),
    }


@pytest.mark.parametrize("case", ["empty folder", "no audio files", "unreadable audio",
                                  "too little audio", "teacher cannot load", "student larger",
                                  "bad duration", "front end only, fewer layers",
                                  "front end only, nothing narrower"])
def test_bad_input_is_one_sentence_and_writes_nothing(case, root, teacher, audio_dir, monkeypatch,
                                                      capsys):
    args, words = _bad_inputs(root, teacher, audio_dir)[case]
    out = root / "bad-out" / case.replace(" ", "-")
    code, stdout, stderr = cli(monkeypatch, capsys, *args, "--out", str(out),
                               "--cache", str(root / "cache"))
    assert code == 1, stderr
    assert words in stderr and "Traceback" not in stderr
    assert stderr.startswith("edgeser: ") and stderr.count("\n") == 1, stderr
    assert_nothing_written(out)
    assert not work_dir(out).exists()


def test_resuming_with_another_teacher_is_refused(root, teacher, audio_dir, monkeypatch, capsys):
    out = root / "other" / "student"
    with pytest.raises(DistillInterrupted):
        distill(options(teacher, audio_dir, out, root / "cache", steps=4), Recorder(interrupt_at=1))
    other = shutil.copytree(teacher, root / "other-teacher")
    state = load_file(str(other / "model.safetensors"))
    state["classifier.out_proj.bias"] = state["classifier.out_proj.bias"] + 0.1
    save_file(state, str(other / "model.safetensors"))
    code, _, stderr = cli(monkeypatch, capsys, "--teacher", str(other), "--audio", str(audio_dir),
                          "--out", str(out), "--student-layers", "1", "--resume",
                          "--cache", str(root / "cache"))
    assert code == 1 and "trained from another teacher" in stderr and stderr.count("\n") == 1
    assert_nothing_written(out)
    assert (work_dir(out) / "checkpoint.pt").is_file()


def test_cli_distils_and_prints_the_heldout_table(root, teacher, audio_dir, monkeypatch, capsys):
    out = root / "cli" / "student"
    code, stdout, stderr = cli(monkeypatch, capsys, "--teacher", str(teacher), "--audio",
                               str(audio_dir), "--out", str(out), "--student-layers", "1",
                               "--steps", "2", "--hop", "0.5", "--holdout", "0.25",
                               "--cache", str(root / "cache"))
    assert code == 0, stderr
    assert "CCC trained" in stdout and "arousal" in stdout and "edgeser export --model" in stdout
    assert (out / "config.json").is_file()
