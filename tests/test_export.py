"""``edgeser export``: checkpoints of every supported family -> verified bundles whose ONNX graph
reproduces the original model (the model card's code, or transformers' own forward), with
one-sentence errors for everything that cannot be exported faithfully.

Checkpoints are tiny but faithful (tests/checkpoints.py); nothing here touches the network:
the hub is a generated huggingface_hub cache read with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

NEEDS_EXPORT = "the export toolchain is not installed (pip install 'edgeser[export]')"
torch = pytest.importorskip("torch", reason=NEEDS_EXPORT)
transformers = pytest.importorskip("transformers", reason=NEEDS_EXPORT)
pytest.importorskip("onnx", reason=NEEDS_EXPORT)
pytest.importorskip("safetensors", reason=NEEDS_EXPORT)
pytest.importorskip("huggingface_hub", reason=NEEDS_EXPORT)
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
sf = pytest.importorskip("soundfile", reason="soundfile is not installed")

import huggingface_hub.constants as hf_constants  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import checkpoints  # noqa: E402
from edgeser import bundle as bundles  # noqa: E402
from edgeser.errors import BundleError, ExportError  # noqa: E402
from edgeser.export import ExportOptions, export_model  # noqa: E402
from edgeser.verification import verify

EVAL_WINDOWS = 8
ATOL = 1e-4
EMOTIONS = ["angry", "happy", "neutral", "sad"]
HUB_ID = "org/tiny-emotion"
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def export(model, out: Path | None, **options):
    """Export with few parity windows (the tiny models are fast; the gate still runs)."""
    options.setdefault("eval_windows", EVAL_WINDOWS)
    # FP32 unless a test asks for more: these tests check faithful loading and export.
    return export_model(ExportOptions(model=str(model), out=out, **{"quantize": "none", **options}))


def manifest(path: Path) -> dict:
    return json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))


def signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Raw speech-like audio at 16 kHz: a gliding harmonic tone with noise and an envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * 16000))
    t = np.arange(n) / 16000
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in (1, 2, 3, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.2 * voiced * envelope + 0.02 * rng.standard_normal(n)).astype(np.float32)


def normalised(x: np.ndarray) -> np.ndarray:
    """The model card's preprocessing: (x - mean) / sqrt(var + 1e-7) per utterance."""
    x = np.asarray(x, np.float64)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


INPUTS = {"1s": normalised(signal(1.0, seed=1)), "3.3s": normalised(signal(3.3, seed=2))}


def run_bundle(path: Path, x: np.ndarray):
    """(logits [n], embedding [hidden]) of the bundle's full graph for one normalised window."""
    graph = next(g for g in manifest(path)["graphs"] if g["role"] == "full")
    session = ort.InferenceSession(str(Path(path) / graph["file"]),
                                   providers=["CPUExecutionProvider"])
    logits, embedding = session.run(["logits", "embedding"],
                                    {"input_values": np.ascontiguousarray(x[None, :], np.float32)})
    return logits[0], embedding[0]


def assert_verifies(path: Path) -> None:
    report = verify(path)
    assert report.ok, report.problems
    assert report.windows_checked >= 1
    assert max(report.max_abs_error.values()) <= report.atol


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def read_state(directory: Path) -> dict:
    if (directory / "model.safetensors").exists():
        return load_file(str(directory / "model.safetensors"))
    return torch.load(str(directory / "pytorch_model.bin"), map_location="cpu", weights_only=True)


def edit_safetensors(directory: Path, edit) -> None:
    state = load_file(str(directory / "model.safetensors"))
    edit(state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))


def copy_checkpoint(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def use_hf_home(monkeypatch, hf_home: Path) -> None:
    """Point huggingface_hub at ``hf_home`` offline: the env for subprocesses, and the
    constants it read at import for this process."""
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "edgeser", *args], capture_output=True,
                          text=True, timeout=300, env=full_env)


def assert_one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgeser: ")
    return lines[0]


# The model card's EmotionModel (audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim), built
# from transformers' own backbone; the backbone attribute is the checkpoint's key prefix.


class RegressionHead(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = torch.nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = torch.nn.Dropout(config.final_dropout)
        self.out_proj = torch.nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        x = self.dropout(features)
        x = self.dense(x)
        x = torch.tanh(x)
        x = self.dropout(x)
        return self.out_proj(x)


class EmotionModel(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.prefix = config.model_type
        backbone = (transformers.Wav2Vec2Model if config.model_type == "wav2vec2"
                    else transformers.HubertModel)
        setattr(self, self.prefix, backbone(config))
        self.classifier = RegressionHead(config)

    def forward(self, input_values):
        outputs = getattr(self, self.prefix)(input_values)
        hidden_states = outputs[0]
        hidden_states = torch.mean(hidden_states, dim=1)
        logits = self.classifier(hidden_states)
        return hidden_states, logits


def model_card_model(directory: Path, *, layers: int | None = None) -> EmotionModel:
    """EmotionModel with the checkpoint's weights loaded strictly (legacy weight-norm keys
    renamed to the form transformers' modules use; with ``layers``, later layers dropped)."""
    config = transformers.AutoConfig.from_pretrained(str(directory))
    if layers is not None:
        config.num_hidden_layers = layers
    model = EmotionModel(config)
    state = {}
    for key, tensor in read_state(directory).items():
        key = (key.replace(".weight_g", ".parametrizations.weight.original0")
               .replace(".weight_v", ".parametrizations.weight.original1"))
        if layers is not None and ".encoder.layers." in key:
            if int(key.split(".encoder.layers.")[1].split(".")[0]) >= layers:
                continue
        state[key] = tensor
    model.load_state_dict(state, strict=True)
    return model.eval()


def model_card_outputs(model: EmotionModel, x: np.ndarray):
    with torch.inference_mode():
        pooled, logits = model(torch.from_numpy(x[None, :]))
    return logits[0].numpy(), pooled[0].numpy()


# ------------------------------------------------------------------------------------------
# Fixtures: checkpoints once per session, bundles once per module, all offline and in tmp
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    """EDGESER_HOME (stamps, default bundles) and the hub cache in tmp; the hub offline."""
    root = tmp_path_factory.mktemp("isolated")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESER_HOME", str(root / "edgeser-home"))
        use_hf_home(mp, root / "hf-empty")
        yield root


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    """Checkpoint directories by name, generated on first use."""
    root = tmp_path_factory.mktemp("checkpoints")
    made: dict = {}

    def get(name: str) -> Path:
        if name in made:
            return made[name]
        d = root / re.sub(r"[^A-Za-z0-9._-]", "-", name)
        kind, _, rest = name.partition(":")
        if kind == "audeering":  # audeering:<fmt>:<weight_norm>[:layers][:model_type][:seed]
            parts = rest.split(":")
            fmt, wn, layers, model_type, seed = parts + ["", "", "2", "wav2vec2", "0"][len(parts):]
            checkpoints.audeering(d, fmt=fmt, weight_norm=wn, layers=int(layers),
                                  model_type=model_type, seed=int(seed))
        elif kind == "seq":  # seq:<model_type>:<stable|plain>:<labels comma-separated>[:weighted]
            model_type, stability, labels, *weighted = rest.split(":")
            checkpoints.sequence_classifier(d, labels.split(","), model_type=model_type,
                                            stable=stability == "stable",
                                            weighted_layer_sum=weighted == ["weighted"])
        elif kind == "embedding":
            checkpoints.embedding_model(d, projection=8)
        else:  # pragma: no cover - a typo in a test
            raise KeyError(name)
        made[name] = d
        return d

    return get


@pytest.fixture(scope="module")
def bundles_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="module")
def exported(ckpts, bundles_dir):
    """Bundle paths by checkpoint name (plus option suffix), exported on first use."""
    made: dict = {}

    def get(name: str, **options) -> Path:
        key = name + repr(sorted(options.items()))
        if key not in made:
            out = bundles_dir / f"b{len(made)}"
            export(ckpts(name), out, **options)
            made[key] = out
        return made[key]

    return get


AUDEERING = "audeering:safetensors:parametrizations"
FORMS = [("safetensors", "parametrizations"), ("safetensors", "legacy"),
         ("bin", "parametrizations"), ("bin", "legacy")]


# ------------------------------------------------------------------------------------------
# 1. audeering family: both weight-norm key forms and both file formats load identically
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,weight_norm", FORMS)
def test_audeering_forms_give_a_verified_bundle(exported, fmt, weight_norm):
    path = exported(f"audeering:{fmt}:{weight_norm}")
    assert_verifies(path)
    m = manifest(path)
    wanted = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    assert [w["file"] for w in m["source"]["weights"]] == [wanted]
    assert m["source"]["family"] == "audeering-dimensional"
    assert m["source"]["kind"] == "local"


def test_audeering_forms_give_the_same_outputs(exported):
    x = INPUTS["3.3s"]
    outputs = {form: run_bundle(exported(f"audeering:{form[0]}:{form[1]}"), x) for form in FORMS}
    logits0, embedding0 = outputs[FORMS[0]]
    assert np.abs(logits0).max() > 1e-3  # not a degenerate model
    for form, (logits, embedding) in outputs.items():
        np.testing.assert_allclose(logits, logits0, atol=1e-6, rtol=0, err_msg=str(form))
        np.testing.assert_allclose(embedding, embedding0, atol=1e-6, rtol=0, err_msg=str(form))


def test_safetensors_is_read_when_both_files_exist(ckpts, exported, tmp_path):
    # The .bin beside it holds a different model: only safetensors may be read.
    both = copy_checkpoint(ckpts(AUDEERING), tmp_path / "both")
    other = ckpts("audeering:bin:legacy:2:wav2vec2:7")
    shutil.copy(other / "pytorch_model.bin", both / "pytorch_model.bin")
    bin_state, st_state = read_state(other), read_state(both)
    assert not torch.equal(bin_state["classifier.dense.weight"], st_state["classifier.dense.weight"])

    export(both, tmp_path / "bundle")

    m = manifest(tmp_path / "bundle")
    assert [w["file"] for w in m["source"]["weights"]] == ["model.safetensors"]
    assert m["source"]["weights"][0]["sha256"] == manifest(exported(AUDEERING))["source"]["weights"][0]["sha256"]
    for x in INPUTS.values():
        got = run_bundle(tmp_path / "bundle", x)
        want = run_bundle(exported(AUDEERING), x)
        np.testing.assert_allclose(got[0], want[0], atol=1e-6, rtol=0)
        np.testing.assert_allclose(got[1], want[1], atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------
# 2. Faithful to the model card's code
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [AUDEERING, "audeering:bin:legacy",
                                  "audeering:safetensors:parametrizations:2:hubert"])
@pytest.mark.parametrize("length", sorted(INPUTS))
def test_audeering_bundle_equals_the_model_card(ckpts, exported, name, length):
    x = INPUTS[length]
    reference = model_card_model(ckpts(name))
    want_logits, want_embedding = model_card_outputs(reference, x)
    logits, embedding = run_bundle(exported(name), x)
    assert logits.shape == (3,) and embedding.shape == (reference.config.hidden_size,)
    np.testing.assert_allclose(logits, want_logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(embedding, want_embedding, atol=ATOL, rtol=0)


def test_audeering_manifest_describes_the_model_card(ckpts, exported):
    m = manifest(exported(AUDEERING))
    config = json.loads((ckpts(AUDEERING) / "config.json").read_text())
    assert m["task"] == "emotion-dimensional"
    assert m["labels"] == ["arousal", "dominance", "valence"]
    assert (m["outputs"]["logits"]["kind"], m["outputs"]["logits"]["size"]) == ("regression", 3)
    assert m["outputs"]["embedding"]["size"] == config["hidden_size"]
    assert m["sample_rate_hz"] == 16000
    assert m["normalization"] == {"mode": "per-window",
                                  "origin": "preprocessor_config.json: do_normalize=true"}
    assert m["source"]["architecture"] == "Wav2Vec2ForSpeechClassification"
    assert m["pruning"] is None
    assert m["parity"]["windows"] == EVAL_WINDOWS
    assert m["parity"]["logits_max_abs_error"] <= ATOL


# ------------------------------------------------------------------------------------------
# 3. Sequence classification: transformers' own forward is the reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type,stability,variant", [
    ("wav2vec2", "stable", ""), ("wav2vec2", "plain", ""), ("hubert", "stable", ""),
    ("hubert", "plain", ""), ("wav2vec2", "stable", ":weighted"),
])
def test_sequence_classifier_equals_transformers(ckpts, exported, model_type, stability, variant):
    name = f"seq:{model_type}:{stability}:{','.join(EMOTIONS)}{variant}"
    cls = (transformers.Wav2Vec2ForSequenceClassification if model_type == "wav2vec2"
           else transformers.HubertForSequenceClassification)
    reference = cls.from_pretrained(str(ckpts(name))).eval()
    assert reference.config.use_weighted_layer_sum == (variant == ":weighted")
    pooled = []  # transformers' own pooled vector: what its classifier receives
    reference.classifier.register_forward_hook(lambda module, args, out: pooled.append(args[0]))
    path = exported(name)
    for x in INPUTS.values():
        with torch.inference_mode():
            want = reference(torch.from_numpy(x[None, :])).logits[0].numpy()
        logits, embedding = run_bundle(path, x)
        np.testing.assert_allclose(logits, want, atol=ATOL, rtol=0)
        np.testing.assert_allclose(embedding, pooled.pop()[0].numpy(), atol=ATOL, rtol=0)
        assert embedding.shape == (reference.config.classifier_proj_size,)
    m = manifest(path)
    assert m["task"] == "emotion-categorical"
    assert m["labels"] == EMOTIONS
    assert m["outputs"]["logits"]["kind"] == "class-logits"
    assert m["operating_points"] == {} and m["positive_label"] is None
    assert m["source"]["family"] == "sequence-classification"


def test_laughter_is_inferred_with_operating_points(exported):
    path = exported("seq:wav2vec2:stable:other,laughter",
                    operating_points=(("high-precision", 0.95),))
    assert_verifies(path)
    m = manifest(path)
    assert m["task"] == "laughter"
    assert m["labels"] == ["other", "laughter"]
    assert m["positive_label"] == "laughter"
    assert m["operating_points"] == {"default": 0.5, "high-precision": 0.95}
    assert m["default_operating_point"] == "default"
    assert m["window_s"] < 3.0  # shorter windows than the emotion default


def test_laughter_task_on_a_four_class_model_is_refused(ckpts, tmp_path):
    with pytest.raises(ExportError, match="two-class"):
        export(ckpts(f"seq:wav2vec2:stable:{','.join(EMOTIONS)}"), tmp_path / "b", task="laughter")
    assert_nothing_written(tmp_path / "b")


def test_operating_point_on_a_non_laughter_model_is_refused(ckpts, tmp_path):
    with pytest.raises(ExportError, match="laughter"):
        export(ckpts(f"seq:wav2vec2:stable:{','.join(EMOTIONS)}"), tmp_path / "b",
               operating_points=(("high-precision", 0.95),))
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 4. Embedding models with class prototypes
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A CSV of generated clips: tones at 22050 Hz, noise at 48000 Hz, rows interleaved so that
    first-seen order (tone, noise) differs from sorted order."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(3)
    rows = []
    for k, seconds in enumerate((2.0, 4.5)):
        t = np.arange(int(seconds * 22050)) / 22050
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t)
        sf.write(root / f"tone{k}.wav", tone.astype(np.float32), 22050, subtype="PCM_16")
        rows.append(f"tone{k}.wav,tone")
        noise = 0.1 * rng.standard_normal(int(seconds * 48000))
        sf.write(root / f"noise{k}.wav", noise.astype(np.float32), 48000, subtype="FLOAT")
        rows.append(f"noise{k}.wav,noise")
    (root / "clips.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root / "clips.csv"


def test_prototypes_bundle(ckpts, exported, clips):
    from edgeser import audio
    from edgeser import frontend as fe

    path = exported("embedding", prototypes=clips)
    assert_verifies(path)
    m = manifest(path)
    assert m["task"] == "emotion-prototypes"
    assert m["labels"] == ["tone", "noise"]
    assert m["prototypes"]["labels"] == ["tone", "noise"]
    vectors = np.asarray(m["prototypes"]["vectors"], np.float64)
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert m["outputs"]["logits"]["kind"] == "similarity"
    assert m["outputs"]["embedding"]["size"] == 8

    # Each prototype is the normalised mean of its clips' unit (window-averaged) embeddings,
    # computed with the runtime's own frontend; the logits are cosine similarities to them.
    per_class: dict = {}
    for line in clips.read_text().splitlines()[1:]:
        clip, label = line.split(",")
        samples, info = audio.read_mono(clips.parent / clip)
        x16 = fe.resample(samples, info.rate_hz)
        embeddings = []
        for w in fe.windows(len(x16), m["window_s"], m["hop_s"]):
            window = fe.normalize(x16[w.start: w.stop])
            logits, embedding = run_bundle(path, window)
            e = embedding.astype(np.float64)
            np.testing.assert_allclose(logits, vectors @ (e / np.linalg.norm(e)), atol=1e-5, rtol=0)
            embeddings.append(e)
        mean = np.mean(embeddings, axis=0)
        per_class.setdefault(label, []).append(mean / np.linalg.norm(mean))
    for k, label in enumerate(m["labels"]):
        proto = np.mean(per_class[label], axis=0)
        np.testing.assert_allclose(vectors[k], proto / np.linalg.norm(proto), atol=1e-4, rtol=0)


def test_embedding_model_without_prototypes_is_refused(ckpts, tmp_path):
    with pytest.raises(ExportError, match="--prototypes"):
        export(ckpts("embedding"), tmp_path / "b")
    assert_nothing_written(tmp_path / "b")


def test_prototypes_of_one_class_are_refused(ckpts, clips, tmp_path):
    csv = tmp_path / "one.csv"
    csv.write_text(f"path,label\n{clips.parent / 'tone0.wav'},tone\n{clips.parent / 'tone1.wav'},tone\n")
    with pytest.raises(ExportError, match="two classes"):
        export(ckpts("embedding"), tmp_path / "b", prototypes=csv)
    assert_nothing_written(tmp_path / "b")


def test_prototype_clip_that_is_missing_is_named(ckpts, clips, tmp_path):
    csv = tmp_path / "missing.csv"
    csv.write_text(f"path,label\n{clips.parent / 'tone0.wav'},tone\n"
                   f"{tmp_path / 'no-such-clip.wav'},noise\n")
    with pytest.raises(ExportError, match="no-such-clip.wav"):
        export(ckpts("embedding"), tmp_path / "b", prototypes=csv)
    assert_nothing_written(tmp_path / "b")


def test_prototypes_for_a_classifier_are_refused(ckpts, clips, tmp_path):
    with pytest.raises(ExportError, match="embedding models"):
        export(ckpts(AUDEERING), tmp_path / "b", prototypes=clips)
    assert_nothing_written(tmp_path / "b")


@pytest.mark.parametrize("name", [AUDEERING, f"seq:wav2vec2:stable:{','.join(EMOTIONS)}"])
def test_prototypes_task_for_a_classifier_is_refused(ckpts, clips, tmp_path, name):
    with pytest.raises(ExportError, match="needs an embedding model"):
        export(ckpts(name), tmp_path / "b", task="emotion-prototypes", prototypes=clips)
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 5. Pruning
# ------------------------------------------------------------------------------------------

FOUR_LAYERS = "audeering:safetensors:parametrizations:4"


def test_pruned_bundle_equals_the_model_card_with_fewer_layers(ckpts, exported):
    path = exported(FOUR_LAYERS, layers=2)
    assert_verifies(path)
    assert manifest(path)["pruning"] == {"layers_kept": 2, "layers_in_checkpoint": 4}
    pruned = model_card_model(ckpts(FOUR_LAYERS), layers=2)
    full = model_card_model(ckpts(FOUR_LAYERS))
    x = INPUTS["3.3s"]
    logits, embedding = run_bundle(path, x)
    want_logits, want_embedding = model_card_outputs(pruned, x)
    np.testing.assert_allclose(logits, want_logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(embedding, want_embedding, atol=ATOL, rtol=0)
    # The dropped layers mattered: the full model gives other outputs.
    assert np.abs(model_card_outputs(full, x)[1] - embedding).max() > 1e-3


def test_pruning_to_more_layers_than_the_checkpoint_has_is_refused(ckpts, tmp_path):
    with pytest.raises(ExportError, match="--layers 5"):
        export(ckpts(FOUR_LAYERS), tmp_path / "b", layers=5)
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 6. Every weight is accounted for
# ------------------------------------------------------------------------------------------


def _extra(state):
    state["classifier.extra.weight"] = torch.zeros(3, 3)


def _missing(state):
    del state["classifier.out_proj.bias"]


def _reshaped(state):
    state["classifier.out_proj.weight"] = torch.zeros(4, 32)


@pytest.mark.parametrize("edit,words", [
    (_extra, ["unused", "classifier.extra.weight"]),
    (_missing, ["missing", "classifier.out_proj.bias"]),
    (_reshaped, ["shapes differ", "classifier.out_proj.weight", "(4, 32)", "(3, 32)"]),
], ids=["extra", "missing", "shape"])
def test_mismatched_weights_are_named(ckpts, tmp_path, edit, words):
    ckpt = copy_checkpoint(ckpts(AUDEERING), tmp_path / "ckpt")
    edit_safetensors(ckpt, edit)
    with pytest.raises(ExportError) as info:
        export(ckpt, tmp_path / "b")
    for word in words:
        assert word in str(info.value)
    assert_nothing_written(tmp_path / "b")


def test_layers_beyond_the_config_are_unused_weights(ckpts, tmp_path):
    ckpt = copy_checkpoint(ckpts(FOUR_LAYERS), tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(dict(config, num_hidden_layers=2)))
    with pytest.raises(ExportError) as info:
        export(ckpt, tmp_path / "b")
    message = str(info.value)
    assert "unused" in message
    assert "wav2vec2.encoder.layers.2." in message
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 7. Unsafe or unknown files
# ------------------------------------------------------------------------------------------


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("how", ["torch.save", "raw-pickle"])
def test_pickled_payload_is_refused_unopened(ckpts, tmp_path, how):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copy(ckpts(AUDEERING) / "config.json", ckpt / "config.json")
    marker = tmp_path / "pwned"
    state = {"classifier.dense.weight": torch.zeros(2, 2), "evil": Payload(marker)}
    if how == "torch.save":
        torch.save(state, str(ckpt / "pytorch_model.bin"))
    else:
        (ckpt / "pytorch_model.bin").write_bytes(pickle.dumps(state))
    with pytest.raises(ExportError) as info:
        export(ckpt, tmp_path / "b")
    assert "pytorch_model.bin" in str(info.value)
    assert "refused" in str(info.value)
    assert not marker.exists(), "the pickle's payload ran"
    assert_nothing_written(tmp_path / "b")


def test_unknown_architecture_lists_the_supported_ones(ckpts, tmp_path):
    ckpt = copy_checkpoint(ckpts(AUDEERING), tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(dict(config, architectures=["Wav2Vec2ForCTC"])))
    with pytest.raises(ExportError) as info:
        export(ckpt, tmp_path / "b")
    message = str(info.value)
    assert "Wav2Vec2ForCTC" in message
    for supported in ("Wav2Vec2ForSpeechClassification", "Wav2Vec2ForSequenceClassification",
                      "HubertForSequenceClassification", "Wav2Vec2Model"):
        assert supported in message


def test_missing_config_is_refused(ckpts, tmp_path):
    ckpt = copy_checkpoint(ckpts(AUDEERING), tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    with pytest.raises(ExportError, match="config.json"):
        export(ckpt, tmp_path / "b")


def test_missing_weights_are_refused(ckpts, tmp_path):
    ckpt = copy_checkpoint(ckpts(AUDEERING), tmp_path / "ckpt")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(ExportError, match="no weights"):
        export(ckpt, tmp_path / "b")


def test_invalid_backbone_config_is_one_sentence(ckpts, tmp_path):
    # transformers' HubertConfig refuses vocab_size null (wav2vec2 configs allow it)
    ckpt = copy_checkpoint(ckpts("audeering:safetensors:parametrizations:2:hubert"), tmp_path / "c")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(dict(config, vocab_size=None)))
    with pytest.raises(ExportError, match="not a valid hubert configuration") as info:
        export(ckpt, tmp_path / "b")
    assert "vocab_size" in str(info.value)
    assert "\n" not in str(info.value)


def test_revision_for_a_local_directory_is_refused(ckpts, tmp_path):
    with pytest.raises(ExportError, match="--revision applies to hub ids"):
        export(ckpts(AUDEERING), tmp_path / "b", revision="v1")


def test_missing_directory_is_refused(tmp_path):
    with pytest.raises(ExportError, match="not a checkpoint directory"):
        export(tmp_path / "no-such-checkpoint", tmp_path / "b")
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 8. Hub ids through huggingface_hub's cache (offline)
# ------------------------------------------------------------------------------------------


@pytest.fixture
def hub(ckpts, tmp_path, monkeypatch):
    """A hub cache holding HUB_ID at main -> HUB_COMMIT; EDGESER_HOME in tmp."""
    checkpoints.hub_cache(tmp_path / "hf", HUB_ID, ckpts(AUDEERING), commit=HUB_COMMIT)
    use_hf_home(monkeypatch, tmp_path / "hf")
    monkeypatch.setenv("EDGESER_HOME", str(tmp_path / "home"))
    return tmp_path


def test_hub_id_exports_to_the_default_location(hub, exported):
    result = export(HUB_ID, None)
    expected = hub / "home" / "bundles" / "org--tiny-emotion@main"
    assert Path(result.bundle).resolve() == expected.resolve()
    assert_verifies(expected)
    m = manifest(expected)
    assert m["model_id"] == HUB_ID
    assert m["source"]["kind"] == "hub"
    assert m["source"]["model"] == HUB_ID
    assert m["source"]["commit"] == HUB_COMMIT
    assert m["source"]["revision"] == "main"
    # The same weights as the local directory, so the same outputs.
    x = INPUTS["1s"]
    np.testing.assert_allclose(run_bundle(expected, x)[0], run_bundle(exported(AUDEERING), x)[0],
                               atol=1e-6, rtol=0)


def test_hub_revision_not_in_the_cache_is_refused_offline(hub):
    with pytest.raises(ExportError) as info:
        export(HUB_ID, hub / "b", revision="v2")
    assert "cannot reach the hub" in str(info.value)
    assert "not in the local cache" in str(info.value)
    assert "'v2'" in str(info.value)
    assert_nothing_written(hub / "b")


def test_unknown_hub_id_is_refused_offline(hub):
    with pytest.raises(ExportError, match="org/no-such-model") as info:
        export("org/no-such-model", hub / "b")
    assert "cannot reach the hub" in str(info.value)
    assert_nothing_written(hub / "b")


def test_tampered_hub_blob_is_refused(hub):
    snapshot = hub / "hf" / "hub" / "models--org--tiny-emotion" / "snapshots" / HUB_COMMIT
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="sha256") as info:
        export(HUB_ID, hub / "b")
    assert "model.safetensors" in str(info.value)
    assert_nothing_written(hub / "b")


def test_hub_export_through_the_cli(hub):
    # COLUMNS: the summary table crops cells to the console width (80 when piped), which would
    # cut a long tmp path short; the path itself is what this test checks.
    env = {"HF_HOME": str(hub / "hf"), "HF_HUB_OFFLINE": "1", "EDGESER_HOME": str(hub / "home"),
           "COLUMNS": "400"}
    result = cli("export", "--model", HUB_ID, "--eval-windows", str(EVAL_WINDOWS),
                 "--quantize", "none", env=env)
    assert result.returncode == 0, result.stderr
    expected = hub / "home" / "bundles" / "org--tiny-emotion@main"
    assert str(expected) in result.stdout
    assert_verifies(expected)
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# 9. Atomic writes
# ------------------------------------------------------------------------------------------


def test_failed_parity_gate_leaves_nothing(ckpts, tmp_path, monkeypatch):
    from edgeser.export import parity

    monkeypatch.setattr(parity, "FP32_ATOL", 0.0)
    out = tmp_path / "bundles" / "tiny"
    with pytest.raises(ExportError, match="differs from PyTorch") as info:
        export(ckpts(AUDEERING), out)
    assert "nothing was written" in str(info.value)
    assert_nothing_written(out)
    assert list(out.parent.iterdir()) == []


def test_existing_bundle_is_replaced_only_with_overwrite(ckpts, tmp_path):
    out = tmp_path / "bundle"
    export(ckpts(AUDEERING), out)
    first = manifest(out)
    with pytest.raises((BundleError, ExportError)) as info:
        export(ckpts(AUDEERING), out)
    assert "already exists" in str(info.value)
    assert len(str(info.value).strip().splitlines()) == 1
    assert manifest(out) == first  # untouched

    export(ckpts("audeering:safetensors:parametrizations:2:wav2vec2:5"), out, overwrite=True)
    assert manifest(out)["source"]["weights"] != first["source"]["weights"]
    assert_verifies(out)
    assert not list(tmp_path.glob(".bundle.*"))


# ------------------------------------------------------------------------------------------
# 10. The command line
# ------------------------------------------------------------------------------------------


def test_export_help_lists_the_options():
    result = cli("export", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--layers", "--operating-point", "--prototypes", "--revision",
                   "--out", "--task", "--eval-audio", "--force"):
        assert option in result.stdout


def test_export_malformed_operating_point_is_a_usage_error(ckpts):
    result = cli("export", "--model", str(ckpts(AUDEERING)), "--operating-point", "nonsense")
    assert result.returncode == 2
    assert "NAME=THRESHOLD" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_of_a_bad_model_dir_is_one_sentence(tmp_path):
    result = cli("export", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "b"),
                 env={"EDGESER_HOME": str(tmp_path / "home")})
    line = assert_one_sentence_error(result)
    assert "missing" in line
    assert_nothing_written(tmp_path / "b")


def test_export_of_an_unsupported_checkpoint_is_one_sentence(ckpts, tmp_path):
    ckpt = copy_checkpoint(ckpts(AUDEERING), tmp_path / "ckpt")
    edit_safetensors(ckpt, _missing)
    result = cli("export", "--model", str(ckpt), "--out", str(tmp_path / "b"),
                 env={"EDGESER_HOME": str(tmp_path / "home")})
    line = assert_one_sentence_error(result)
    assert "classifier.out_proj.bias" in line
    assert_nothing_written(tmp_path / "b")


# ------------------------------------------------------------------------------------------
# 11. The runtime never imports torch
# ------------------------------------------------------------------------------------------


def test_runtime_and_cli_do_not_import_torch():
    code = ("import edgeser, edgeser.bundle, edgeser.frontend, edgeser.audio, edgeser.cli, sys; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "assert 'transformers' not in sys.modules, 'transformers was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_task_that_contradicts_the_head_is_refused(tmp_path):
    ckpt = checkpoints.audeering(tmp_path / "ckpt")
    with pytest.raises(ExportError, match="needs class-logits outputs"):
        export_model(ExportOptions(model=str(ckpt), out=tmp_path / "b", quantize="none",
                                   task="emotion-categorical", eval_windows=4))
    assert not (tmp_path / "b").exists()


def test_tiny_audeering_config_is_the_published_one_shrunk():
    """The fixtures stay faithful to the checkpoint users deploy first: same keys and values
    as the published config except the sizes."""
    if not checkpoints.REFERENCE_CONFIG.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{checkpoints.REFERENCE_CONFIG} is missing; CI=true requires it")
        pytest.skip(f"published reference config not found at {checkpoints.REFERENCE_CONFIG}")
    published = json.loads(checkpoints.REFERENCE_CONFIG.read_text())
    sizes = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "conv_dim", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups"}
    assert set(published) == set(checkpoints.AUDEERING_CONFIG)
    for key, value in published.items():
        if key not in sizes:
            assert checkpoints.AUDEERING_CONFIG[key] == value, key
    assert len(checkpoints.AUDEERING_CONFIG["conv_dim"]) == len(published["conv_dim"])
