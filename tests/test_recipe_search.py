"""Choosing the INT8 recipe by measurement (--target): the CPU classes, the order candidates
are tried in, the record of every try, and a runtime that keeps results batch independent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import checkpoints
from edgeser import Detector, bundle
from edgeser.errors import ExportError
from edgeser import targets
from edgeser.export import ExportOptions, export_model, recipe_search
from edgeser.inference import Session, SessionSettings
from edgeser.verification import verify

WINDOWS = dict(eval_windows=24, calibration_windows=12)


def _cpuinfo(tmp_path, key: str, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\n{key}\t\t: {flags}\n\nprocessor\t: 1\n{key}\t\t: {flags}\n")
    return path


@pytest.mark.parametrize("machine,key,flags,expected", [
    ("x86_64", "flags", "fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni", "x86-vnni"),
    ("x86_64", "flags", "fpu sse4_2 avx avx2 fma avx_vnni", "x86-vnni"),  # Alder Lake and later
    ("x86_64", "flags", "fpu sse4_2 avx avx2 fma", "x86-avx2"),
    ("aarch64", "Features", "fp asimd evtstrm aes crc32 atomics asimddp", "arm64-dotprod"),
    ("aarch64", "Features", "fp asimd evtstrm crc32", "arm64"),  # Cortex-A53/A72
])
def test_this_machine_is_classified_from_its_cpu_flags(tmp_path, machine, key, flags, expected):
    assert targets.this_machine(_cpuinfo(tmp_path, key, flags), machine) == expected


def test_every_named_target_ranks_every_candidate_once():
    for name, ranking in targets.RANKINGS.items():
        assert sorted(ranking.order) == sorted(targets.CANDIDATES), name
        assert ranking.evidence


def test_an_unknown_target_is_refused_in_one_sentence():
    with pytest.raises(ExportError, match="--target x86-sse is not one of auto, x86-vnni"):
        targets.check("x86-sse")


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory):
    return checkpoints.audeering_trained_like(tmp_path_factory.mktemp("ckpt") / "emotion")


@pytest.fixture(scope="module")
def fp32_graph(trained_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "bundle"
    export_model(ExportOptions(model=str(trained_like), out=out, quantize="none", eval_windows=4))
    return out / "model.onnx"


class _Silent:
    def start(self, description, total=None):
        pass

    def advance(self, units=1):
        pass


def _windows(n, samples=16000, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(samples).astype(np.float32) for _ in range(n)]


def _gate(verdicts: dict, seen: list):
    """An evaluation whose verdict per candidate is given; records the order it was asked in."""

    def evaluate(path, name):
        assert path.stem == f"candidate-{name}"
        seen.append(name)
        ccc = verdicts[name]
        failures = [f"CCC arousal {ccc:.4f} < 0.99"] if ccc < 0.99 else []
        return {"outputs": {"arousal": {"ccc": ccc, "max_abs_error": 0.0}}}, failures

    return evaluate


def test_a_named_target_tries_its_ranking_in_order_and_keeps_the_first_that_passes(
        fp32_graph, tmp_path):
    order = targets.ranking("x86-avx2").order
    verdicts = {order[0]: 0.95, order[1]: 0.999, order[2]: 0.9999, order[3]: 0.9999}
    seen: list = []
    out = tmp_path / "chosen.onnx"
    selection = recipe_search.search(fp32_graph, out, "x86-avx2", _windows(6),
                                     _gate(verdicts, seen), _windows(1)[0], tmp_path, _Silent())
    assert seen == list(order[:2])  # stops at the first that passes
    assert selection.chosen == order[1]
    record = selection.record()
    assert [t["recipe"] for t in record["tries"]] == list(order)
    assert [t["gate"] for t in record["tries"]] == ["failed", "passed", "not run", "not run"]
    assert record["tries"][0]["failures"] == ["CCC arousal 0.9500 < 0.99"]
    assert all(t["latency_ms"] > 0 for t in record["tries"])
    assert record["order_from"] == targets.RANKINGS["x86-avx2"].evidence
    assert out.read_bytes() == (tmp_path / f"candidate-{order[1]}.onnx").read_bytes()


def test_auto_tries_the_candidates_fastest_first_as_timed_here(fp32_graph, tmp_path):
    seen: list = []
    selection = recipe_search.search(fp32_graph, tmp_path / "chosen.onnx", "auto", _windows(6),
                                     _gate(dict.fromkeys(targets.CANDIDATES, 0.5), seen),
                                     _windows(1)[0], tmp_path, _Silent(), allow_degraded=True)
    latencies = [t.latency_ms for t in selection.tries]
    assert latencies == sorted(latencies)
    assert seen == [t.recipe for t in selection.tries]  # all failed, so all were tried
    assert selection.record()["order_from"] == "timed on this machine"


def test_when_no_candidate_holds_the_gate_nothing_is_chosen(fp32_graph, tmp_path):
    verdicts = dict.fromkeys(targets.CANDIDATES, 0.9)
    verdicts["blockwise-int8"] = 0.98
    with pytest.raises(ExportError, match="no INT8 recipe holds the fidelity gate"):
        recipe_search.search(fp32_graph, tmp_path / "a.onnx", "x86-vnni", _windows(6),
                             _gate(verdicts, []), _windows(1)[0], tmp_path, _Silent())
    assert not (tmp_path / "a.onnx").exists()
    kept = recipe_search.search(fp32_graph, tmp_path / "b.onnx", "x86-vnni", _windows(6),
                                _gate(verdicts, []), _windows(1)[0], tmp_path, _Silent(),
                                allow_degraded=True)
    assert kept.chosen == "blockwise-int8"  # the most faithful of the failures


def test_int8_convolutions_are_the_feature_extractors_layers_1_to_4(fp32_graph, tmp_path):
    from edgeser.export import quantize

    out = tmp_path / "conv.onnx"
    quantize.quantize(fp32_graph, out, quantize.RECIPES["blockwise-int8-conv"](), _windows(6))
    graph = onnx.load(str(out)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    float_convs = [n.name for n in convs if not set(n.input) & dequantized]
    quantized = sorted(n.name for n in convs if n.name not in float_convs)
    assert quantized == [f"/wav2vec2/feature_extractor/conv_layers.{i}/conv/Conv"
                         for i in range(1, 5)]
    assert "/wav2vec2/feature_extractor/conv_layers.0/conv/Conv" in float_convs
    assert any(n.op_type == "MatMulNBits" for n in graph.node)
    record = quantize.RECIPES["blockwise-int8-conv"]().manifest()
    assert record["convs"]["activations"] == "uint8, static"


@pytest.fixture(scope="module")
def default_bundle(trained_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "bundle"
    export_model(ExportOptions(model=str(trained_like), out=out, **WINDOWS))
    return out


def test_the_default_export_records_every_try_and_the_recipe_that_reproduces_it(
        default_bundle, trained_like, tmp_path):
    m = json.loads((default_bundle / "manifest.json").read_text())
    q = m["quantization"]
    selection = q["selection"]
    assert selection["target"] == "auto" and selection["machine"] == targets.this_machine()
    assert sorted(t["recipe"] for t in selection["tries"]) == sorted(targets.CANDIDATES)
    assert selection["chosen"] == q["preset"]
    passed = [t for t in selection["tries"] if t["gate"] == "passed"]
    assert [t["recipe"] for t in passed] == [q["preset"]]
    assert m["parity"]["gate"]["passed"] and selection["fp32_latency_ms"] > 0
    assert verify(default_bundle).ok
    # --recipe with the recorded preset makes the same kind of graph without a search
    again = tmp_path / "again"
    export_model(ExportOptions(model=str(trained_like), out=again, recipe=q["preset"], **WINDOWS))
    q2 = json.loads((again / "manifest.json").read_text())["quantization"]
    assert (q2["recipe"], q2["method"]) == (q["recipe"], q["method"]) and "selection" not in q2


def test_a_dynamic_int8_bundle_gives_each_window_the_result_it_gets_alone(
        trained_like, tmp_path):
    out = tmp_path / "dynamic"
    export_model(ExportOptions(model=str(trained_like), out=out, recipe="dynamic-matmul",
                               allow_degraded=True, **WINDOWS))
    loaded = bundle.load(out)
    assert not loaded.manifest.quantization.batch_independent
    session = Session(loaded, SessionSettings(threads=1))
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((4, 16000)).astype(np.float32)
    batch[1:] *= 20.0  # companions of another scale would move a per-batch activation scale
    alone = session.run(batch[:1])
    together = session.run(batch)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b[:1])
    raw = session.raw().run(["logits", "embedding"], {"input_values": batch})
    assert not np.array_equal(raw[1][:1], alone[1])  # the graph alone would not keep it
    # and detect runs it like any bundle
    result = Detector.load(out).detect(rng.standard_normal(48000).astype(np.float32) * 0.1, 16000)
    assert result.windows


def test_export_cli_refuses_an_unknown_target(trained_like, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgeser", "export", "--model",
                             str(trained_like), "--out", str(tmp_path / "b"), "--target",
                             "x86-sse"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "--target x86-sse is not one of" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def _selection(target, machine, chosen, tries):
    return {"target": target, "machine": machine, "chosen": chosen,
            "tries": [{"recipe": r, "gate": g} for r, g in tries]}


def test_bench_says_when_a_bundle_was_tuned_for_another_cpu_class():
    tries = [("blockwise-int8-conv", "passed"), ("dynamic-int8-conv", "not run"),
             ("dynamic-matmul", "not run"), ("blockwise-int8", "not run")]
    note = targets.tuning_note(_selection("arm64", "x86-vnni", "blockwise-int8-conv", tries),
                               machine="x86-vnni")
    assert note == ("this bundle's INT8 recipe (blockwise-int8-conv) was chosen for arm64; this "
                    "machine is x86-vnni: dynamic-int8-conv ranks first here among the recipes "
                    "not refused by the gate; re-export with --target x86-vnni (or --target auto "
                    "on this machine).")
    # a recipe the gate refused is never advised
    refused = [("dynamic-int8-conv", "failed"), ("dynamic-matmul", "passed"),
               ("blockwise-int8-conv", "not run"), ("blockwise-int8", "not run")]
    note = targets.tuning_note(_selection("auto", "x86-avx2", "dynamic-matmul", refused),
                               machine="x86-vnni")
    assert "chosen for x86-avx2" in note and "dynamic-matmul also ranks first here" in note
    # tuned here, or chosen by name: nothing to say
    assert targets.tuning_note(_selection("auto", "x86-vnni", "dynamic-matmul", refused),
                               machine="x86-vnni") is None
    assert targets.tuning_note(None, machine="x86-vnni") is None


def test_bench_report_prints_the_tuning_line(default_bundle, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(default_bundle, other)
    m = json.loads((other / "manifest.json").read_text())
    here = targets.this_machine()
    elsewhere = "arm64" if here != "arm64" else "x86-avx2"
    m["quantization"]["selection"]["target"] = elsewhere
    (other / "manifest.json").write_text(json.dumps(m))
    result = subprocess.run([sys.executable, "-m", "edgeser", "bench", "--model", str(other),
                             "--runs", "3", "--window", "1"], capture_output=True, text=True,
                            timeout=300)
    if here not in targets.RANKINGS:
        assert "tuning" not in result.stdout
        return
    assert result.returncode == 0, result.stderr
    assert f"was chosen for {elsewhere}; this machine is {here}" in result.stdout
