"""Model bundles: manifest validation, atomic publishing, hash checks with the stamp, path safety,
the reference-window self-check and ``edgeser verify``. Bundles are built here, without torch; the
ONNX graphs are tiny hand-made ones (``onnx.helper``), so tests that need one skip without onnx."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeser import bundle as bundles
from edgeser.bundle import hashing
from edgeser.errors import BundleError, EdgeserError
from edgeser.verification import verify

N_LOGITS = 3
HIDDEN = 4
LABELS = ["arousal", "dominance", "valence"]
NEEDS_ONNX = "building the tiny test graph needs the onnx package (test extra)"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private EDGESER_HOME for every test (stamps land there, never in the user's cache)."""
    path = tmp_path / "edgeser-home"
    monkeypatch.setenv("EDGESER_HOME", str(path))
    return path


def base_manifest(**changes) -> dict:
    m = {
        "schema_version": 1,
        "format": "edgeser-bundle",
        "model_id": "test/tiny-dim",
        "task": "emotion-dimensional",
        "labels": list(LABELS),
        "outputs": {
            "logits": {"kind": "regression", "size": N_LOGITS, "meaning": ", ".join(LABELS)},
            "embedding": {"size": HIDDEN, "meaning": "mean-pooled hidden states"},
        },
        "sample_rate_hz": 16000,
        "normalization": {"mode": "per-window", "epsilon": 1e-7},
        "window_s": 3.0,
        "hop_s": 1.0,
        "min_samples": 400,
        "silence_dbfs": -60.0,
        "operating_points": {},
        "default_operating_point": None,
        "positive_label": None,
        "prototypes": None,
        "graphs": [
            {
                "file": "model.onnx",
                "role": "full",
                "opset": 17,
                "inputs": {"input_values": ["batch", "samples"]},
                "outputs": {"logits": ["batch", N_LOGITS], "embedding": ["batch", HIDDEN]},
            }
        ],
        "engines": [],
        "quantization": {"method": "none"},
        "pruning": None,
        "source": {
            "model": "test/tiny-dim",
            "kind": "hub",
            "revision": "main",
            "commit": None,
            "architecture": "Tiny",
            "family": "test",
            "weights": [{"file": "model.safetensors", "sha256": "0" * 64}],
        },
        "parity": {"max_abs_error": 0.0},
        "reference_windows": {"file": "reference.npz", "count": 2, "atol": 1e-5},
        "tools": {"edgeser": "0.1.0"},
        "created_utc": "2025-01-01T00:00:00Z",
    }
    m.update(changes)
    return m


def with_files(m: dict) -> dict:
    """A manifest with a plausible ``files`` section (validation only; not hashed)."""
    out = copy.deepcopy(m)
    out["files"] = {
        "model.onnx": {"sha256": "a" * 64, "bytes": 10},
        "reference.npz": {"sha256": "b" * 64, "bytes": 20},
    }
    return out


def tiny_onnx_bytes() -> bytes:
    """input_values [batch, samples] -> logits [batch, 3] (from the mean) and embedding [batch, 4]
    (from the mean and the mean square); opset 17, as the bundle contract requires."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(1, N_LOGITS)).astype(np.float32)
    b1 = rng.normal(size=(N_LOGITS,)).astype(np.float32)
    w2 = rng.normal(size=(2, HIDDEN)).astype(np.float32)

    def const(name, array):
        return helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.ravel().tolist())

    nodes = [
        helper.make_node("ReduceMean", ["input_values"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("MatMul", ["mean", "w1"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b1"], ["logits"]),
        helper.make_node("Mul", ["input_values", "input_values"], ["square"]),
        helper.make_node("ReduceMean", ["square"], ["mean_square"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["mean", "mean_square"], ["stats"], axis=1),
        helper.make_node("MatMul", ["stats", "w2"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", "samples"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_LOGITS]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN]),
        ],
        initializer=[const("w1", w1), const("b1", b1), const("w2", w2)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def reference_arrays(model_bytes: bytes | None) -> dict[str, np.ndarray]:
    """Two normalised windows and their outputs: from ONNX Runtime when a graph is given, else
    arbitrary numbers (for tests that never run the graph)."""
    rng = np.random.default_rng(1)
    arrays = {}
    session = None
    if model_bytes is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    for i, samples in enumerate((1600, 3200)):
        x = rng.normal(size=(1, samples)).astype(np.float32)
        if session is not None:
            logits, embedding = session.run(["logits", "embedding"], {"input_values": x})
        else:
            logits = rng.normal(size=(1, N_LOGITS)).astype(np.float32)
            embedding = rng.normal(size=(1, HIDDEN)).astype(np.float32)
        arrays.update({f"input_{i}": x, f"logits_{i}": logits, f"embedding_{i}": embedding})
    return arrays


def make_bundle(dest: Path, *, real_graph: bool = False, manifest: dict | None = None):
    """Stage and commit a bundle: a real tiny ONNX graph, or placeholder bytes for tests that only
    exercise loading and hashing."""
    model = tiny_onnx_bytes() if real_graph else b"not really onnx, only hashed" * 8
    with bundles.stage_bundle(dest) as stage:
        (stage.path / "model.onnx").write_bytes(model)
        np.savez(stage.path / "reference.npz", **reference_arrays(model if real_graph else None))
        (stage.path / "extra").mkdir()
        (stage.path / "extra" / "notes.txt").write_text("free-form extra file\n")
        return stage.commit(manifest or base_manifest())


def edit_manifest(root: Path, change) -> None:
    """Rewrite ``manifest.json`` in place through ``change(manifest)``."""
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def rehash_in_manifest(root: Path, name: str) -> None:
    data = (root / name).read_bytes()
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    edit_manifest(root, lambda m: m["files"].__setitem__(name, entry))


def tamper_same_size(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeser", *args], capture_output=True, text=True, timeout=120
    )


# ---------------------------------------------------------------- manifest validation


def test_a_good_manifest_has_no_problems():
    assert bundles.validate_manifest(with_files(base_manifest())) == []


def test_unknown_keys_are_allowed_for_forward_compatibility():
    m = with_files(base_manifest(future_field={"anything": [1, 2]}))
    assert bundles.validate_manifest(m) == []


def test_every_problem_is_listed_not_just_the_first():
    m = with_files(base_manifest(task="sarcasm", window_s=-1, sample_rate_hz=8000, labels=[]))
    del m["source"]
    m["reference_windows"]["atol"] = float("nan")
    problems = bundles.validate_manifest(m)
    text = "; ".join(problems)
    for phrase in ("task", "window_s", "sample_rate_hz", "labels", "missing source", "atol"):
        assert phrase in text, (phrase, problems)
    assert len(problems) >= 6


def test_not_a_dict_is_one_problem():
    assert bundles.validate_manifest([1, 2]) == ["manifest is not a JSON object"]


def test_laughter_needs_operating_points_and_a_positive_label_among_labels():
    m = with_files(
        base_manifest(
            task="laughter",
            labels=["no-laugh", "laugh"],
            outputs={
                "logits": {"kind": "class-logits", "size": 2, "meaning": "logits"},
                "embedding": {"size": HIDDEN, "meaning": "pooled"},
            },
            positive_label="laughter",
        )
    )
    text = "; ".join(bundles.validate_manifest(m))
    assert "operating_points must not be empty" in text
    assert "positive_label must be one of labels" in text
    assert "default_operating_point" in text
    m.update(operating_points={"balanced": 0.5}, default_operating_point="balanced",
             positive_label="laugh")
    assert bundles.validate_manifest(m) == []
    m["operating_points"] = {"balanced": 1.0}
    assert any("(0, 1)" in p for p in bundles.validate_manifest(m))


def test_prototypes_are_required_for_the_prototype_task_and_must_be_rectangular():
    m = with_files(base_manifest(task="emotion-prototypes"))
    assert any("prototypes are required" in p for p in bundles.validate_manifest(m))
    m["prototypes"] = {"labels": ["a", "b"], "vectors": [[1.0, 2.0], [3.0]]}
    assert any("rectangular" in p for p in bundles.validate_manifest(m))
    m["prototypes"] = {"labels": ["a", "b"], "vectors": [[1.0, 2.0]]}
    assert any("one row per prototype" in p for p in bundles.validate_manifest(m))
    m["prototypes"] = {"labels": ["a", "b"], "vectors": [[1.0, 2.0], [3.0, 4.0]]}
    assert bundles.validate_manifest(m) == []


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "a\\b", "./model.onnx", ""])
def test_unsafe_file_names_are_problems(name):
    m = with_files(base_manifest())
    m["files"][name] = {"sha256": "c" * 64, "bytes": 1}
    assert any(repr(name) in p for p in bundles.validate_manifest(m))


def test_graph_and_reference_files_must_be_listed():
    m = with_files(base_manifest())
    del m["files"]["model.onnx"]
    problems = bundles.validate_manifest(m)
    assert any("graphs[0].file 'model.onnx' is not listed" in p for p in problems)


def test_newer_schema_is_a_problem_saying_upgrade():
    problems = bundles.validate_manifest(with_files(base_manifest(schema_version=3)))
    assert "bundle schema 3 is newer than this edgeser supports (2); upgrade edgeser" in problems


# ---------------------------------------------------------------- staging and publishing


def test_commit_publishes_a_bundle_that_loads(tmp_path):
    dest = tmp_path / "bundles" / "test--tiny@main"
    published = make_bundle(dest)

    assert published.path == dest.absolute()
    assert sorted(published.manifest.files) == ["extra/notes.txt", "model.onnx", "reference.npz"]
    data = (dest / "model.onnx").read_bytes()
    assert published.manifest.files["model.onnx"] == bundles.FileEntry(
        hashlib.sha256(data).hexdigest(), len(data))
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk == published.manifest.to_json()
    assert on_disk["schema_version"] == bundles.SCHEMA_VERSION  # written in the current schema
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp dir left

    loaded = bundles.load(dest)
    assert loaded.manifest == published.manifest
    assert loaded.task == "emotion-dimensional"
    assert loaded.labels == tuple(LABELS)
    assert (loaded.window_s, loaded.hop_s, loaded.min_samples) == (3.0, 1.0, 400)
    assert loaded.silence_dbfs == -60.0
    assert loaded.operating_points == {}
    assert loaded.default_operating_point is None and loaded.positive_label is None
    assert loaded.prototypes is None
    assert loaded.model_id == "test/tiny-dim"
    assert loaded.graph_path() == dest.absolute() / "model.onnx"
    with pytest.raises(BundleError, match="no graph with role 'encoder'"):
        loaded.graph_path("encoder")


def test_prototypes_property_is_a_float32_matrix(tmp_path):
    protos = {"labels": ["calm", "angry"], "vectors": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]}
    m = base_manifest(task="emotion-prototypes", prototypes=protos)
    b = make_bundle(tmp_path / "b", manifest=m)
    assert b.prototypes.dtype == np.float32 and b.prototypes.shape == (2, 4)


def test_an_exception_in_the_block_publishes_nothing(tmp_path):
    dest = tmp_path / "b"
    with pytest.raises(RuntimeError, match="export crashed"):
        with bundles.stage_bundle(dest) as stage:
            (stage.path / "model.onnx").write_bytes(b"half")
            raise RuntimeError("export crashed")
    assert [p.name for p in tmp_path.iterdir() if p.name != "edgeser-home"] == []


def test_leaving_the_block_without_commit_publishes_nothing(tmp_path):
    dest = tmp_path / "b"
    with bundles.stage_bundle(dest) as stage:
        (stage.path / "model.onnx").write_bytes(b"x")
        staged = stage.path
    assert staged.name.startswith(".b.tmp-")
    assert not staged.exists() and not dest.exists()


def test_commit_with_an_invalid_manifest_publishes_nothing(tmp_path):
    dest = tmp_path / "b"
    with pytest.raises(BundleError) as info:
        make_bundle(dest, manifest=base_manifest(task="sarcasm", hop_s=10.0))
    message = str(info.value)
    assert str(dest) in message and "task" in message and "hop_s" in message
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_commit_lists_missing_graph_files(tmp_path):
    dest = tmp_path / "b"
    with pytest.raises(BundleError, match="'model.onnx' is not listed in files"):
        with bundles.stage_bundle(dest) as stage:
            np.savez(stage.path / "reference.npz", **reference_arrays(None))
            stage.commit(base_manifest())
    assert not dest.exists()


def test_commit_refuses_symlinks_in_the_stage(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("secret")
    with pytest.raises(BundleError, match="symlink"):
        with bundles.stage_bundle(tmp_path / "b") as stage:
            (stage.path / "model.onnx").symlink_to(outside)
            stage.commit(base_manifest())
    assert not (tmp_path / "b").exists()


def test_existing_destination_is_refused_without_overwrite(tmp_path):
    dest = tmp_path / "b"
    first = make_bundle(dest)
    before = (dest / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="already exists"):
        make_bundle(dest, manifest=base_manifest(model_id="other"))
    assert (dest / "manifest.json").read_bytes() == before
    assert bundles.load(dest).manifest == first.manifest


def test_overwrite_replaces_and_leaves_no_siblings(tmp_path):
    dest = tmp_path / "bundles" / "b"
    make_bundle(dest)
    with bundles.stage_bundle(dest, overwrite=True) as stage:
        (stage.path / "model.onnx").write_bytes(b"second model")
        np.savez(stage.path / "reference.npz", **reference_arrays(None))
        stage.commit(base_manifest(model_id="second"))
    assert bundles.load(dest).model_id == "second"
    assert (dest / "model.onnx").read_bytes() == b"second model"
    assert not (dest / "extra").exists()
    assert [p.name for p in dest.parent.iterdir()] == ["b"]


def test_stale_temp_dirs_are_ignored(tmp_path):
    stale = tmp_path / ".b.tmp-deadbeef"
    stale.mkdir()
    make_bundle(tmp_path / "b")
    assert stale.is_dir() and bundles.load(tmp_path / "b").model_id == "test/tiny-dim"


# ---------------------------------------------------------------- loading and hashing


def test_missing_directory_and_manifest(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        bundles.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is not a directory"):
        bundles.load(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="has no manifest.json") as info:
        bundles.load(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)
    assert isinstance(info.value, EdgeserError)


def test_invalid_json_manifest(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    (dest / "manifest.json").write_text('{"schema_version": 1,')
    with pytest.raises(BundleError, match=r"manifest.json is not valid JSON \(.* line 1"):
        bundles.load(dest)


def test_invalid_manifest_names_every_problem(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    edit_manifest(dest, lambda m: m.update(task="sarcasm", labels="abc", min_samples=0))
    with pytest.raises(BundleError) as info:
        bundles.load(dest)
    message = str(info.value)
    assert message.startswith(f"model bundle {dest} has an invalid manifest: ")
    assert "task" in message and "labels" in message and "min_samples" in message
    assert message.count("; ") >= 2


def test_newer_schema_is_refused_with_one_sentence(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    edit_manifest(dest, lambda m: m.update(schema_version=3, task="something-new"))
    with pytest.raises(BundleError) as info:
        bundles.load(dest)
    assert str(info.value) == (
        f"model bundle {dest}: bundle schema 3 is newer than this edgeser supports (2); "
        "upgrade edgeser."
    )


def test_missing_file(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    (dest / "reference.npz").unlink()
    with pytest.raises(BundleError, match="reference.npz is missing"):
        bundles.load(dest)


def test_size_mismatch(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    size = (dest / "model.onnx").stat().st_size
    with open(dest / "model.onnx", "ab") as f:
        f.write(b"!")
    expected = f"model.onnx has {size + 1} bytes where the manifest says {size}"
    with pytest.raises(BundleError, match=expected):
        bundles.load(dest)


def test_tampered_bytes_of_the_same_size_are_caught(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    tamper_same_size(dest / "model.onnx")
    with pytest.raises(BundleError, match="model.onnx: sha256 mismatch") as info:
        bundles.load(dest, rehash=True)
    assert str(dest) in str(info.value)
    # the write moved the mtime, so the stamp no longer vouches for the file even without rehash
    with pytest.raises(BundleError, match="model.onnx: sha256 mismatch"):
        bundles.load(dest)


def count_hashes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = hashing._sha256_file

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(hashing, "_sha256_file", counting)
    return calls


def test_the_stamp_skips_hashing_until_a_file_changes(tmp_path, home, monkeypatch):
    dest = tmp_path / "b"
    make_bundle(dest)  # commit knows fresh hashes and writes the stamp
    calls = count_hashes(monkeypatch)
    stamps = list((home / "stamps").glob("*.json"))
    assert len(stamps) == 1
    assert stamps[0].stem == hashlib.sha256(str(dest.resolve()).encode()).hexdigest()

    bundles.load(dest)
    assert calls == []

    for stamp in stamps:
        stamp.unlink()
    bundles.load(dest)
    assert sorted(calls) == ["model.onnx", "notes.txt", "reference.npz"]
    calls.clear()
    bundles.load(dest)
    assert calls == []

    st = (dest / "model.onnx").stat()
    os.utime(dest / "model.onnx", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    bundles.load(dest)
    assert calls == ["model.onnx"]
    calls.clear()
    bundles.load(dest)
    assert calls == []

    bundles.load(dest, rehash=True)
    assert len(calls) == 3


def test_an_unwritable_cache_means_hashing_every_time(tmp_path, monkeypatch):
    dest = tmp_path / "b"
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("EDGESER_HOME", str(not_a_dir))
    make_bundle(dest)
    calls = count_hashes(monkeypatch)
    bundles.load(dest)
    bundles.load(dest)
    assert len(calls) == 6


def test_names_escaping_the_bundle_are_refused(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    (tmp_path / "x").write_bytes(b"outside")
    for name in ("../x", str(tmp_path / "x")):
        entry = {"sha256": hashlib.sha256(b"outside").hexdigest(), "bytes": 7}
        edit_manifest(dest, lambda m: m["files"].__setitem__(name, entry))
        expected = "invalid manifest: .*(escapes the bundle|is absolute)"
        with pytest.raises(BundleError, match=expected):
            bundles.load(dest)
        edit_manifest(dest, lambda m: m["files"].pop(name))
    bundles.load(dest)


def test_a_symlink_pointing_outside_is_refused_even_with_matching_bytes(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((dest / "model.onnx").read_bytes())
    (dest / "model.onnx").unlink()
    (dest / "model.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="model.onnx resolves outside the bundle"):
        bundles.load(dest, rehash=True)


def test_a_symlink_inside_the_bundle_is_followed(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    os.replace(dest / "model.onnx", dest / "extra" / "real.onnx")
    (dest / "model.onnx").symlink_to(Path("extra") / "real.onnx")
    rehash_in_manifest(dest, "extra/real.onnx")
    bundles.load(dest, rehash=True)


# ---------------------------------------------------------------- locations


def test_default_bundle_dir_honours_edgeser_home(home):
    assert bundles.edgeser_home() == home
    assert bundles.default_bundle_dir("audeering/w2v2-dim", None) == (
        home / "bundles" / "audeering--w2v2-dim@main"
    )
    local = bundles.default_bundle_dir("local-model", "abc123")
    assert local == home / "bundles" / "local-model@abc123"


def test_edgeser_home_falls_back_to_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESER_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bundles.edgeser_home() == tmp_path / "xdg" / "edgeser"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert bundles.edgeser_home() == tmp_path / "me" / ".cache" / "edgeser"


@pytest.mark.parametrize(
    "model_id", ["../evil", "a/b/c", "a\\b", "..", "/abs", "org/", "", "org/..", "a/./b"]
)
def test_default_bundle_dir_rejects_path_tricks(model_id):
    with pytest.raises(BundleError, match="cannot name a bundle directory"):
        bundles.default_bundle_dir(model_id, None)


def test_default_bundle_dir_rejects_revisions_with_separators():
    with pytest.raises(BundleError, match="revision"):
        bundles.default_bundle_dir("org/name", "../main")
    with pytest.raises(BundleError, match="revision"):
        bundles.default_bundle_dir("org/name", "refs/pr/1")


# ---------------------------------------------------------------- verify (runs the graph)


def test_verify_reproduces_the_reference_windows(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    report = verify(dest)
    assert report.ok, report.problems
    assert report.problems == ()
    assert report.bundle == dest.absolute()
    assert (report.files_checked, report.windows_checked) == (3, 2)
    assert set(report.max_abs_error) == {"logits", "embedding"}
    assert all(0 <= e <= report.atol for e in report.max_abs_error.values())
    assert report.atol == 1e-5


def test_verify_always_rehashes(tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    calls = count_hashes(monkeypatch)
    verify(dest)
    assert len(calls) == 3


def test_verify_refuses_a_tampered_graph(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    st = (dest / "model.onnx").stat()
    tamper_same_size(dest / "model.onnx")
    os.utime(dest / "model.onnx", ns=(st.st_atime_ns, st.st_mtime_ns))  # hide it from the stamp
    bundles.load(dest)  # the stamp vouches for (size, mtime): that is its contract
    with pytest.raises(BundleError, match="model.onnx: sha256 mismatch"):
        verify(dest)
    result = run_cli("verify", str(dest))
    assert result.returncode == 1
    assert result.stderr.startswith("edgeser: model bundle ")
    assert "model.onnx: sha256 mismatch" in result.stderr
    assert "Traceback" not in result.stderr


def break_reference(dest: Path) -> None:
    """Change the expected logits of window 1 and re-record the file's hash, so only numbers
    disagree."""
    path = dest / "reference.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["logits_1"] = arrays["logits_1"] + np.float32(0.5)
    np.savez(path, **arrays)
    rehash_in_manifest(dest, "reference.npz")


def test_verify_reports_numeric_mismatch(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    break_reference(dest)
    report = verify(dest)
    assert not report.ok
    assert len(report.problems) == 1
    assert report.problems[0].startswith("window 1 logits: max abs error 0.5 exceeds atol")
    assert report.max_abs_error["logits"] == pytest.approx(0.5, abs=1e-5)
    assert report.max_abs_error["embedding"] <= report.atol


def test_verify_names_missing_reference_arrays(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    edit_manifest(dest, lambda m: m["reference_windows"].update(count=3))
    with pytest.raises(BundleError, match="reference.npz lacks input_2, logits_2, embedding_2"):
        verify(dest)


def test_verify_refuses_a_graph_onnxruntime_cannot_load(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)  # placeholder bytes, correctly hashed
    with pytest.raises(BundleError, match="ONNX Runtime cannot load model.onnx"):
        verify(dest)


def test_cli_verify_ok(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    result = run_cli("verify", str(dest))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert "files    3 hashed" in lines
    assert "windows  2 checked" in lines
    assert any(line.startswith("logits ") and "atol 1e-05" in line for line in lines)
    assert any(line.startswith("embedding ") for line in lines)
    assert lines[-1] == "OK"


def test_cli_verify_mismatch_exits_1(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    break_reference(dest)
    result = run_cli("verify", str(dest))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "FAILED"
    errors = result.stderr.splitlines()
    assert errors[0].startswith("edgeser: window 1 logits: max abs error")
    assert errors[-1].startswith("edgeser: bundle ") and "1 problems" in errors[-1]
    assert "Traceback" not in result.stderr


def test_cli_verify_missing_bundle_exits_1(tmp_path):
    result = run_cli("verify", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert result.stderr == (f"edgeser: {tmp_path / 'nowhere'}: no such bundle or checkpoint "
                             "directory, and not a hub id (org/name).\n")


def test_verify_imports_no_torch_transformers_or_onnx(tmp_path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    dest = tmp_path / "b"
    make_bundle(dest, real_graph=True)
    code = (
        "import sys; from edgeser.verification import verify; r = verify(sys.argv[1]); assert r.ok; "
        "bad = sorted({'torch', 'transformers', 'onnx'} & set(sys.modules)); print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(dest)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
