"""INT8 and FP16 bundles: recipes, the fidelity gate on both sides, static scales, manifest."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf

import checkpoints
from edgeser import bundle
from edgeser.errors import ExportError
from edgeser.export import ExportOptions, export_model
from edgeser.export.quantize import RECIPES, Recipe, matching_nodes
from edgeser.verification import verify

WINDOWS = dict(eval_windows=24, calibration_windows=12)


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory):
    return checkpoints.audeering_trained_like(tmp_path_factory.mktemp("ckpt") / "emotion")


@pytest.fixture(scope="module")
def int8_bundle(trained_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "int8"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="dynamic-matmul", **WINDOWS))
    return out


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_int8_bundle_passes_the_gate_and_records_its_recipe(int8_bundle):
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    q = manifest["quantization"]
    assert (q["method"], q["recipe"], q["precision"], q["ops"]) == ("dynamic", "dynamic-matmul", "int8", ["MatMul"])
    assert q["preset"] == "dynamic-matmul"  # what --recipe takes to reproduce it
    gate = manifest["parity"]["gate"]
    assert gate["passed"] and not gate["allowed_degraded"] and gate["ccc_min"] == 0.99
    assert all(m["ccc"] >= 0.99 for m in manifest["parity"]["outputs"].values())
    assert manifest["parity"]["candidate"] == "onnxruntime-cpu-int8"
    assert manifest["reference_windows"]["atol"] == pytest.approx(1e-3)
    report = verify(int8_bundle)
    assert report.ok, report.problems


def test_int8_graph_is_smaller_and_quantized(int8_bundle, tmp_path, trained_like):
    fp32 = tmp_path / "fp32"
    export_model(ExportOptions(model=str(trained_like), out=fp32, quantize="none", eval_windows=4))
    ops = {n.op_type for n in onnx.load(str(int8_bundle / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    assert (int8_bundle / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size


def _quiet_folder(tmp_path):
    """Near-silent noise: activation ranges calibrated on it clip real speech."""
    folder = tmp_path / "quiet"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        sf.write(folder / f"q{k}.wav", (1e-4 * rng.standard_normal(48000)).astype(np.float32), 16000)
    return folder


def test_a_harmful_recipe_is_refused_and_nothing_is_written(trained_like, tmp_path, monkeypatch):
    harmful = Recipe.static(per_channel=False, float_nodes=(), name="harmful")
    monkeypatch.setitem(RECIPES, "harmful", lambda: harmful)
    out = tmp_path / "bad"
    # the calibration audio is not speech-like: every normalised window is white noise
    with pytest.raises(ExportError, match="fails the fidelity gate"):
        export_model(ExportOptions(model=str(trained_like), out=out, recipe="harmful",
                                   calibration=_quiet_folder(tmp_path), **WINDOWS))
    assert not out.exists()
    assert not list(tmp_path.glob(".bad.tmp-*"))

    written = export_model(ExportOptions(model=str(trained_like), out=out, recipe="harmful",
                                         calibration=tmp_path / "quiet",
                                         allow_degraded=True, **WINDOWS))
    gate = json.loads((out / "manifest.json").read_text())["parity"]["gate"]
    assert not gate["passed"] and gate["allowed_degraded"] and gate["failures"]
    assert written.bundle.resolve() == out.resolve()


def test_static_recipe_keeps_sensitive_nodes_float_and_scales_fixed(trained_like, tmp_path):
    out = tmp_path / "static"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="static-minmax",
                               allow_degraded=True, **WINDOWS))
    manifest = json.loads((out / "manifest.json").read_text())
    q = manifest["quantization"]
    assert q["method"] == "static-qdq" and q["activations"] == "int8" and q["per_channel"]
    assert q["calibration"]["windows"] == 12 and "calibration" in q["calibration"]["audio"]
    assert any("conv_layers.0" in n for n in q["float_nodes"])
    assert any("pos_conv_embed" in n for n in q["float_nodes"])
    graph = onnx.load(str(out / "model.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in graph.node:
        if node.name in q["float_nodes"]:
            assert not set(node.input) & dequantized, node.name
    # static scales: a window's outputs do not depend on its batch companions
    sess = _session(out / "model.onnx")
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((4, 16000)).astype(np.float32)
    alone = sess.run(["logits"], {"input_values": batch[:1]})[0]
    together = sess.run(["logits"], {"input_values": batch})[0][:1]
    np.testing.assert_allclose(alone, together, atol=1e-6)


def test_fp16_keeps_normalisation_in_fp32(trained_like, tmp_path):
    out = tmp_path / "fp16"
    export_model(ExportOptions(model=str(trained_like), out=out, quantize="fp16",
                               allow_degraded=True, **WINDOWS))
    model = onnx.load(str(out / "model.onnx"))
    halves = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert halves, "weights are stored in float16"
    assert json.loads((out / "manifest.json").read_text())["quantization"]["method"] == "fp16"
    # inputs and outputs stay float32 for the runtime
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert verify(out).ok


def test_calibration_and_evaluation_audio_are_disjoint(int8_bundle, trained_like, tmp_path):
    out = tmp_path / "s"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="static-minmax",
                               allow_degraded=True, **WINDOWS))
    m = json.loads((out / "manifest.json").read_text())
    assert "calibration" in m["quantization"]["calibration"]["audio"]
    assert "evaluation" in m["parity"]["eval_audio"]


def test_matching_nodes_finds_the_conv_patterns(int8_bundle):
    names = matching_nodes(int8_bundle / "model.onnx", (r"/conv_layers\.\d+/conv/Conv$",), ("Conv",))
    assert len(names) == 7


def test_unknown_recipe_and_quantize_values_are_refused(trained_like, tmp_path):
    with pytest.raises(ExportError, match="unknown recipe"):
        export_model(ExportOptions(model=str(trained_like), out=tmp_path / "x", recipe="magic"))
    with pytest.raises(ExportError, match="--quantize int4"):
        export_model(ExportOptions(model=str(trained_like), out=tmp_path / "x", quantize="int4"))


def test_mixed_precision_keeps_the_measured_sensitive_layers_float(trained_like, tmp_path):
    out = tmp_path / "mixed"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="static-mixed", **WINDOWS))
    m = json.loads((out / "manifest.json").read_text())
    mixed = m["quantization"]["mixed_precision"]
    assert mixed["met_target"] and mixed["calibration_score"] >= mixed["target"] == 0.995
    # every group was measured, and the ones kept float are the ones that recovered most
    assert set(mixed["sensitivity"]) >= {"feature_encoder", "feature_projection", "layer_0", "layer_1"}
    ranked = sorted(mixed["sensitivity"], key=mixed["sensitivity"].get, reverse=True)
    assert mixed["float_groups"] == ranked[: len(mixed["float_groups"])]
    assert mixed["calibration_score_all_int8"] < mixed["target"] or not mixed["float_groups"]
    assert m["parity"]["gate"]["passed"]
    graph = onnx.load(str(out / "model.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in graph.node:
        if node.name in m["quantization"]["float_nodes"]:
            assert not set(node.input) & dequantized, node.name


def test_layer_groups_cover_the_graph(int8_bundle, trained_like, tmp_path):
    from edgeser.export.sensitivity import layer_groups

    fp32 = tmp_path / "fp32"
    export_model(ExportOptions(model=str(trained_like), out=fp32, quantize="none", eval_windows=4))
    groups = layer_groups(fp32 / "model.onnx", ("MatMul", "Conv"))
    assert list(groups) == ["feature_encoder", "feature_projection", "layer_0", "layer_1"]


def test_blockwise_int8_is_faithful_and_batch_independent(trained_like, tmp_path):
    out = tmp_path / "blockwise"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="blockwise-int8", **WINDOWS))
    m = json.loads((out / "manifest.json").read_text())
    q = m["quantization"]
    assert (q["recipe"], q["method"], q["precision"], q["block_size"], q["accuracy_level"]) == (
        "blockwise-int8-b32", "matmul-nbits", "int8", 32, 4)
    assert q["preset"] == "blockwise-int8"  # named as --recipe takes it
    assert m["parity"]["gate"]["passed"]
    graph = onnx.load(str(out / "model.onnx")).graph
    assert any(n.op_type == "MatMulNBits" for n in graph.node)
    # the first conv and the positional conv keep float weights (MatMul only is quantized)
    assert any(n.op_type == "Conv" for n in graph.node)
    sess = _session(out / "model.onnx")
    batch = np.random.default_rng(2).standard_normal((4, 16000)).astype(np.float32)
    alone = sess.run(["logits", "embedding"], {"input_values": batch[:1]})
    together = sess.run(["logits", "embedding"], {"input_values": batch})
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b[:1], atol=1e-6)
    assert verify(out).ok
