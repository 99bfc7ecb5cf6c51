"""TensorRT engines: the record, the profile, reading ONNX files without ``onnx``, building an
engine into a bundle (atomically, checked against the reference windows), choosing and refusing
engines at run time, ``edgeser engine build``, ``verify`` and ``export --engine``.

This machine has no NVIDIA GPU, no TensorRT and no TensorRT provider in its onnxruntime, so ONNX
Runtime's TensorRT execution provider is FAKED (:class:`FakeTensorRT`, installed as
``edgeser.inference.create_session``, the one place sessions are made): a build session (one
with ``trt_dump_ep_context_model``) writes what ONNX Runtime writes, a context model with one
``EPContext`` node naming an engine file beside it, and an "engine" that is an ONNX graph; a
session on a context model runs that engine file on ONNX Runtime's CPU provider. The device is
a fake :class:`GpuInfo`. These tests check edgeser's logic (options, files, records, the
refusals, atomicity, parity); whether TensorRT builds these graphs and how close its FP16 and
INT8 engines come is measured by ``benchmarks/tensorrt_path.sh`` on a GPU.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeser import bundle as bundles
from edgeser import devices, engines, inference
from edgeser.engines import build as engine_build
from edgeser.engines import onnxwire
from edgeser.engines import runtime as engine_runtime
from edgeser.engines.record import EngineError, EngineRecord
from edgeser.errors import BundleError, EdgeserError, ExportError
from edgeser.gpu import GpuInfo
from test_bundle import NEEDS_ONNX, base_manifest, reference_arrays, tiny_onnx_bytes

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"
ALL = [TRT, CUDA, CPU]
H100 = GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda="12.6.68",
               tensorrt="10.3.0")
ORIN = GpuInfo(name=None, compute_capability="8.7", cuda="12.6.68", tensorrt="10.3.0",
               jetson_model="NVIDIA Jetson AGX Orin Developer Kit")
CPU_ONLY = GpuInfo()
FOLDER = "engines/h100-80gb-hbm3.fp16"
ENGINE_NAME = "TensorrtExecutionProvider_TRTKernel_graph_main_graph_0_0_fp16_sm90.engine"
PROFILE = {"input": "input_values", "batch": [1, 4, 8], "samples": [400, 48000, 48000]}
PARITY = {"windows": 3, "max_abs_error": {"logits": 0.001, "embedding": 0.002},
          "tolerance": {"logits": 0.05, "embedding": 0.05}}
RECORD = {"file": f"{FOLDER}/{ENGINE_NAME}", "context_model": f"{FOLDER}/context.onnx",
          "precision": "fp16", "tensorrt": "10.3.0", "cuda": "12.6", "onnxruntime": "1.20.1",
          "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "profile": PROFILE,
          "parity": PARITY}


def record(**changes) -> EngineRecord:
    made, problems = EngineRecord.from_json({**RECORD, **changes})
    assert problems == []
    return made


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESER_HOME", str(tmp_path / "edgeser-home"))


# ---------------------------------------------------------------- the record


def test_a_record_round_trips_through_json():
    made = record()
    assert made.to_json() == RECORD
    assert json.loads(json.dumps(made.to_json())) == RECORD
    assert made.profile.batch == (1, 4, 8) and made.parity.passed
    assert made.describe() == "fp16 engine for NVIDIA H100 80GB HBM3 (TensorRT 10.3.0, CUDA 12.6)"
    assert made.folder == FOLDER


def test_from_json_collects_every_problem():
    assert EngineRecord.from_json([]) == (None, ["engine must be an object"])
    made, problems = EngineRecord.from_json({"file": "/etc/passwd", "precision": "fp32"},
                                            "engines[0]")
    assert made is None
    assert problems == [
        "engines[0].file '/etc/passwd' is absolute",
        "engines[0].context_model None is not a file name",
        "engines[0].precision must be one of fp16, int8",
        "engines[0].tensorrt must be a non-empty string",
        "engines[0].cuda must be a non-empty string",
        "engines[0].onnxruntime must be a non-empty string",
        "engines[0].gpu must be a non-empty string",
        "engines[0].compute_capability must be a non-empty string",
        "engines[0].profile must be an object",
        "engines[0].parity must be an object",
    ]


@pytest.mark.parametrize("change,problem", [
    ({"file": "../model.engine"}, "engine.file '../model.engine' escapes the bundle"),
    ({"file": "other/x.engine"},
     "engine.file must lie in the folder of engine.context_model (ONNX Runtime reads the engine "
     "beside its context model)"),
    ({"file": f"{FOLDER}/context.onnx"}, "engine.file and engine.context_model must differ"),
    ({"context_model": f"{FOLDER}/context.txt"}, "engine.context_model must be an .onnx file"),
    ({"precision": None}, "engine.precision must be one of fp16, int8"),
    ({"onnxruntime": ""}, "engine.onnxruntime must be a non-empty string"),
    ({"cuda": 12.6}, "engine.cuda must be a non-empty string"),
    ({"profile": {**PROFILE, "input": "input"}}, "engine.profile.input must be 'input_values'"),
    ({"profile": {**PROFILE, "batch": [4, 2, 8]}},
     "engine.profile.batch must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"profile": {**PROFILE, "samples": [400, True, 48000]}},
     "engine.profile.samples must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"parity": {**PARITY, "windows": 0}}, "engine.parity.windows must be a positive integer"),
    ({"parity": {**PARITY, "tolerance": {"logits": 0.05}}},
     "engine.parity.tolerance must give a number >= 0 for logits and embedding"),
    ({"parity": {**PARITY, "max_abs_error": {"logits": 0.3, "embedding": float("nan")}}},
     "engine.parity.max_abs_error must give a number >= 0 for logits and embedding"),
    ({"parity": {**PARITY, "max_abs_error": {"logits": 0.3, "embedding": 0.0}}},
     "engine.parity: logits max abs error 0.3 exceeds its tolerance 0.05"),
])
def test_record_problems(change, problem):
    assert EngineRecord.from_json({**RECORD, **change}) == (None, [problem])


def test_a_plan_record_of_the_old_builder_is_not_runnable():
    old = {"file": "model.h100-80gb-hbm3.fp16.plan", "precision": "fp16", "tensorrt": "10.3.0",
           "cuda": "12.6", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
           "profile": PROFILE}
    assert EngineRecord.from_json(old)[1] == [
        "engine.context_model None is not a file name", "engine.onnxruntime must be a non-empty "
        "string", "engine.parity must be an object"]


# ---------------------------------------------------------------- profile, names, tolerances


@pytest.mark.parametrize("window_s,max_batch,batch,samples", [
    (3.0, 8, (1, 4, 8), (400, 48000, 48000)),
    (1.0, 1, (1, 1, 1), (400, 16000, 16000)),
    (2.5, 3, (1, 1, 3), (400, 40000, 40000)),
    (0.025, 2, (1, 1, 2), (400, 400, 400)),  # one model frame is the shortest window
])
def test_profile_shapes(window_s, max_batch, batch, samples):
    profile = engines.optimization_profile(window_s, max_batch=max_batch)
    assert (profile.input, profile.batch, profile.samples) == ("input_values", batch, samples)


def test_profile_in_onnxruntime_form_and_its_limits():
    profile = engines.optimization_profile(3.0)
    assert profile.ort_shapes() == ("input_values:1x400", "input_values:4x48000",
                                    "input_values:8x48000")
    assert profile.takes(8, 48000) and profile.takes(1, 400)
    assert not profile.takes(9, 48000) and not profile.takes(1, 48001)
    assert profile.describe() == ("batches of 1 to 8 windows of 400 to 48000 samples (0.025 to "
                                  "3 s)")
    with pytest.raises(ValueError, match="shorter than the engine's minimum input of 400"):
        engines.optimization_profile(0.01)
    with pytest.raises(ValueError, match="maximum batch"):
        engines.optimization_profile(3.0, max_batch=0)


@pytest.mark.parametrize("gpu,precision,folder", [
    ("NVIDIA H100 80GB HBM3", "fp16", "engines/h100-80gb-hbm3.fp16"),
    ("NVIDIA Jetson AGX Orin Developer Kit", "int8", "engines/jetson-agx-orin-developer-kit.int8"),
    ("NVIDIA A100-SXM4-40GB", "fp16", "engines/a100-sxm4-40gb.fp16"),
    ("../../etc/passwd", "fp16", "engines/etc-passwd.fp16"),
    (None, "fp16", "engines/gpu.fp16"),
])
def test_engine_folders_are_safe_names(gpu, precision, folder):
    assert engines.engine_folder(gpu, precision) == folder
    assert bundles._name_problem(f"{folder}/context.onnx") is None
    with pytest.raises(ValueError, match="'fp32' is not one of fp16, int8"):
        engines.engine_folder(gpu, "fp32")


def test_tolerances_take_the_largest_of_floor_share_and_bundle_atol():
    assert engines.tolerances("fp16", {"logits": 0.9, "embedding": 40.0}, 1e-5) == {
        "logits": 0.05, "embedding": pytest.approx(0.8)}
    assert engines.tolerances("int8", {"logits": 1.0, "embedding": 1.0}, 0.5) == {
        "logits": 0.5, "embedding": 0.5}
    assert engines.ENGINE_ATOL["int8"] > engines.ENGINE_ATOL["fp16"]


# ---------------------------------------------------------------- compatibility and choice


def test_a_matching_device_is_compatible_and_small_differences_do_not_matter():
    assert engines.engine_compatibility(record(), H100) == []
    here = GpuInfo(name="nvidia  h100 80gb hbm3", compute_capability="9.0", cuda="12.8.93",
                   tensorrt="10.3.1.4")
    assert engines.engine_compatibility(record(), here) == []


@pytest.mark.parametrize("here,problems", [
    (replace(H100, tensorrt="10.7.0"),
     ["TensorRT 10.3.0 built it, this device has TensorRT 10.7.0"]),
    (replace(H100, tensorrt="8.6.2"),
     ["TensorRT 10.3.0 built it, this device has TensorRT 8.6.2"]),
    (replace(H100, cuda="13.0.48"), ["it needs CUDA 12.x, this device has CUDA 13.0.48"]),
    (replace(H100, cuda=None), []),
    (replace(H100, compute_capability="9.1"),
     ["it needs compute capability 9.0, this GPU has 9.1"]),
    (GpuInfo(name="NVIDIA A100-SXM4-80GB", compute_capability="8.0", cuda="12.6",
             tensorrt="10.3.0"),
     ["it was built for NVIDIA H100 80GB HBM3, this device is NVIDIA A100-SXM4-80GB",
      "it needs compute capability 9.0, this GPU has 8.0"]),
    (CPU_ONLY, ["this device has no NVIDIA GPU", "TensorRT is not installed here"]),
    (replace(H100, tensorrt=None), ["TensorRT is not installed here"]),
    (ORIN, ["it was built for NVIDIA H100 80GB HBM3, this device is NVIDIA Jetson AGX Orin "
            "Developer Kit", "it needs compute capability 9.0, this GPU has 8.7"]),
])
def test_compatibility_problems(here, problems):
    assert engines.engine_compatibility(record(), here) == problems
    assert engines.engine_compatibility(RECORD, here) == problems  # a JSON record too


def test_choose_the_fitting_engine_or_name_the_stale_one():
    h100, orin = record(), record(gpu="NVIDIA Jetson AGX Orin Developer Kit",
                                  compute_capability="8.7")
    assert engines.choose([orin, h100], H100, "fp16") == (h100, [])
    assert engines.choose([orin, h100], H100, "int8") == (None, [])
    upgraded = replace(H100, tensorrt="10.7.0")
    assert engines.choose([orin, h100], upgraded, "fp16") == (None, [(h100, [
        "TensorRT 10.3.0 built it, this device has TensorRT 10.7.0"])])
    other = GpuInfo(name="NVIDIA L4", compute_capability="8.9", cuda="12.6", tensorrt="10.3.0")
    assert engines.choose([orin, h100], other, "fp16") == (None, [])  # none for this GPU


# ---------------------------------------------------------------- reading ONNX files


def helper():
    return pytest.importorskip("onnx.helper", reason=NEEDS_ONNX)


def qdq_graph(zero_point: int = 0, zero_type: str = "int8", extra_nodes=()) -> bytes:
    """The tiny test graph behind a quantize/dequantize pair on its input (scale 0.05)."""
    h = helper()
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(tiny_onnx_bytes())
    graph = model.graph
    for node in graph.node:
        node.input[:] = ["dq" if name == "input_values" else name for name in node.input]
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(zero_point, getattr(np, zero_type)), "zero")
    qdq = [h.make_node("QuantizeLinear", ["input_values", "scale", "zero"], ["q"], name="q0"),
           h.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="dq0")]
    nodes = qdq + list(graph.node) + list(extra_nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend([scale, zero])
    if extra_nodes:
        model.opset_import.append(h.make_opsetid("com.microsoft", 1))
    return model.SerializeToString()


def ep_context_model(engine_name: str, embed_mode: int = 0, nodes: int = 1) -> bytes:
    """What ONNX Runtime's TensorRT provider dumps: EPContext node(s) standing for the graph."""
    h = helper()
    from onnx import TensorProto

    made = [h.make_node("EPContext", ["input_values"], ["logits", "embedding"] if i == 0 else
                        [f"unused_{i}"], name=f"TensorrtExecutionProvider_TRTKernel_graph_{i}",
                        domain="com.microsoft", embed_mode=embed_mode,
                        ep_cache_context=engine_name, hardware_architecture="90",
                        onnx_model_filename="model.onnx") for i in range(nodes)]
    graph = h.make_graph(
        made, "ctx",
        [h.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", "samples"])],
        [h.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
         h.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17),
                                               h.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model.SerializeToString()


def scan(tmp_path: Path, data: bytes) -> onnxwire.GraphScan:
    path = tmp_path / "scanned.onnx"
    path.write_bytes(data)
    return onnxwire.scan_onnx(path)


def test_scan_of_a_float_graph(tmp_path):
    helper()
    found = scan(tmp_path, tiny_onnx_bytes())
    assert found.op_types == {"ReduceMean", "MatMul", "Add", "Mul", "Concat"}
    assert found.nodes == 7 and found.ep_context == () and not found.external_data
    assert found.nonzero_zero_points == () and found.uses("MatMulNBits", "MatMul") == ["MatMul"]


@pytest.mark.parametrize("zero,dtype,nonzero,unsigned", [
    (0, "int8", (), ()),
    (-3, "int8", ("q0", "dq0"), ()),
    (0, "uint8", (), ("q0", "dq0")),
    (128, "uint8", ("q0", "dq0"), ("q0", "dq0")),
])
def test_scan_reads_zero_points(tmp_path, zero, dtype, nonzero, unsigned):
    found = scan(tmp_path, qdq_graph(zero, dtype))
    assert {"QuantizeLinear", "DequantizeLinear"} <= found.op_types
    assert (found.nonzero_zero_points, found.unsigned_zero_points) == (nonzero, unsigned)


def test_scan_finds_runtime_int8_operators_and_ep_context_nodes(tmp_path):
    h = helper()
    blockwise = h.make_node("MatMulNBits", ["a", "b"], ["c"], domain="com.microsoft", K=4, N=4,
                            bits=8, block_size=32)
    assert scan(tmp_path, qdq_graph(extra_nodes=[blockwise])).uses(
        *engine_build.RUNTIME_INT8_OPS) == ["MatMulNBits"]
    found = scan(tmp_path, ep_context_model(ENGINE_NAME))
    assert found.ep_context == (onnxwire.EpContextNode(
        "TensorrtExecutionProvider_TRTKernel_graph_0", 0, ENGINE_NAME, "90"),)
    embedded = scan(tmp_path, ep_context_model("ENGINE BYTES", embed_mode=1))
    assert embedded.ep_context[0].embed_mode == 1 and embedded.ep_context[0].cache_context is None


def test_scan_refuses_what_is_not_onnx(tmp_path):
    for data, message in ((b"", "the file is empty"), (b"\xff" * 16, "varint"),
                          (b"not an onnx model at all", None)):
        with pytest.raises(onnxwire.OnnxReadError, match=message):
            scan(tmp_path, data)


def test_scan_notices_external_data(tmp_path):
    helper()
    import onnx
    from onnx import external_data_helper

    model = onnx.load_from_string(other_graph())  # raw tensors, which can go outside
    external_data_helper.convert_model_to_external_data(model, location="weights.bin",
                                                        size_threshold=0)
    assert scan(tmp_path, model.SerializeToString()).external_data


# ---------------------------------------------------------------- a fake TensorRT provider


class FakeBuildSession:
    def __init__(self, providers):
        self._providers = list(providers)

    def get_providers(self):
        return self._providers


class FakeTensorRT:
    """``create_session`` for a machine without TensorRT (see the module docs). ``engine_graph``
    replaces the graph an engine is built from (a wrong engine); ``run_graph`` replaces what a
    context model runs (an engine that went bad); ``fail`` makes builds raise; ``use_trt``
    False makes ONNX Runtime fall back to CUDA as it does without TensorRT's libraries."""

    def __init__(self, engine_graph: bytes | None = None, fail: str | None = None,
                 use_trt: bool = True, during_build=None):
        self.engine_graph, self.fail, self.use_trt = engine_graph, fail, use_trt
        self.during_build = during_build
        self.run_graph: bytes | None = None
        self.calls: list = []
        self.builds = 0

    def __call__(self, path, sess_options, providers, provider_options):
        import onnxruntime as ort

        path = Path(path)
        self.calls.append((path, list(providers), [dict(o) for o in provider_options]))
        trt = dict(zip(providers, provider_options)).get(TRT) or {}
        if trt.get("trt_dump_ep_context_model"):
            self.builds += 1
            if self.fail:
                raise RuntimeError(f"{self.fail}\nsecond line of the log")
            context = Path(trt["trt_ep_context_file_path"])
            (context.parent / ENGINE_NAME).write_bytes(self.engine_graph or path.read_bytes())
            (context.parent / ENGINE_NAME.replace(".engine", ".profile")).write_bytes(b"shapes")
            context.write_bytes(ep_context_model(ENGINE_NAME))
            if self.during_build:
                self.during_build()
            return FakeBuildSession(providers if self.use_trt else [CUDA, CPU])
        return ort.InferenceSession(self.run_graph or self.runnable(path), providers=[CPU])

    @staticmethod
    def runnable(path: Path) -> bytes:
        import onnx

        model = onnx.load(str(path))
        nodes = [n for n in model.graph.node if n.op_type == "EPContext"]
        if not nodes:
            return path.read_bytes()
        attributes = {a.name: a for a in nodes[0].attribute}
        return (path.parent / attributes["ep_cache_context"].s.decode()).read_bytes()

    def sessions_on(self, path: Path) -> list:
        return [call for call in self.calls if call[0] == path]


@pytest.fixture
def fake(monkeypatch):
    """This device is an H100 with TensorRT 10.3 and onnxruntime-gpu; sessions are faked."""
    helper()
    trt = FakeTensorRT()
    monkeypatch.setattr(inference, "create_session", trt)
    monkeypatch.setattr(engine_build, "local_gpu_info", lambda: H100)
    monkeypatch.setattr(engine_runtime, "local_gpu_info", lambda: H100)
    monkeypatch.setattr(engine_build, "_available_providers", lambda: list(ALL))
    monkeypatch.setattr(devices, "_available_providers", lambda: list(ALL))
    monkeypatch.setattr(engine_build, "_ort_version", lambda: "1.20.1")
    return trt


def make_bundle(dest: Path, graph: bytes | None = None, **manifest) -> Path:
    """A committed bundle of the tiny graph (or ``graph``) with reference outputs computed from
    it on ONNX Runtime's CPU provider."""
    helper()
    graph = graph or tiny_onnx_bytes()
    with bundles.stage_bundle(dest) as stage:
        (stage.path / "model.onnx").write_bytes(graph)
        np.savez(stage.path / "reference.npz", **reference_arrays(graph))
        (stage.path / "extra").mkdir()
        (stage.path / "extra" / "notes.txt").write_text("carried over\n")
        stage.commit(base_manifest(**manifest))
    return dest


def manifest_of(dest: Path) -> dict:
    return json.loads((dest / "manifest.json").read_text())


def siblings(dest: Path) -> list[str]:
    """The bundle and any hidden stage or old copy beside it."""
    return sorted(p.name for p in dest.parent.iterdir()
                  if p.name == dest.name or p.name.startswith("."))


def other_graph() -> bytes:
    """The tiny graph with other weights: an engine that does not reproduce the bundle."""
    helper()
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(tiny_onnx_bytes())
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + 1.0, tensor.name))
    return model.SerializeToString()


# ---------------------------------------------------------------- building


def test_build_adds_the_engine_atomically_and_the_bundle_still_verifies(tmp_path, fake):
    from edgeser.verification import verify

    dest = make_bundle(tmp_path / "b")
    inode = os.stat(dest / "model.onnx").st_ino
    result = engines.build_engine(dest)
    made = result.record
    assert result.built and result.bundle == dest.absolute()
    assert made.to_json() == {
        "file": f"{FOLDER}/{ENGINE_NAME}", "context_model": f"{FOLDER}/context.onnx",
        "precision": "fp16", "tensorrt": "10.3.0", "cuda": "12.6", "onnxruntime": "1.20.1",
        "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "profile": PROFILE,
        "parity": {"windows": 2, "max_abs_error": {"logits": 0.0, "embedding": 0.0},
                   "tolerance": {"logits": 0.05, "embedding": 0.05}}}
    m = manifest_of(dest)
    assert m["engines"] == [made.to_json()]
    assert set(m["files"]) == {"model.onnx", "reference.npz", "extra/notes.txt",
                               made.file, made.context_model}
    assert {p.name for p in (dest / FOLDER).iterdir()} == {"context.onnx", ENGINE_NAME}
    assert os.stat(dest / "model.onnx").st_ino == inode  # hard-linked, not copied
    assert siblings(dest) == ["b"]  # no stage or old copy left behind
    assert bundles.load(dest, rehash=True).manifest.engines
    assert verify(dest).ok

    # The build session: the bundle's graph, TensorRT first, and these options.
    (graph, providers, options), = [c for c in fake.calls if c[1][0] == TRT
                                    and c[0].name == "model.onnx"]
    assert graph.name == "model.onnx" and providers == ALL
    trt, cuda, cpu = options
    context = Path(trt.pop("trt_ep_context_file_path"))
    assert context.name == "context.onnx" and context.parent.name == "h100-80gb-hbm3.fp16"
    assert context.parent.parent.parent.name.startswith(".b.tmp-")  # built into the stage
    assert trt.pop("trt_timing_cache_path") == str(tmp_path / "edgeser-home" / "trt-timing-cache")
    assert trt == {"device_id": 0, "trt_fp16_enable": True, "trt_layer_norm_fp32_fallback": True,
                   "trt_profile_min_shapes": "input_values:1x400",
                   "trt_profile_opt_shapes": "input_values:4x48000",
                   "trt_profile_max_shapes": "input_values:8x48000",
                   "trt_engine_cache_enable": True, "trt_dump_ep_context_model": True,
                   "trt_ep_context_embed_mode": 0, "trt_timing_cache_enable": True}
    assert "trt_int8_enable" not in trt and "trt_engine_cache_path" not in trt
    assert (cuda, cpu) == ({"device_id": 0}, {})
    # The parity check ran the reference windows through the context model, as the runtime does.
    (_, providers, options), = [c for c in fake.calls if c[0].name == "context.onnx"]
    assert providers == ALL and options == [{"device_id": 0}, {"device_id": 0}, {}]


def test_readers_see_the_old_or_the_new_bundle_at_every_rename(tmp_path, fake, monkeypatch):
    from edgeser.bundle import staging

    dest = make_bundle(tmp_path / "b")
    seen = []
    real_rename, real_exchange = os.rename, staging._exchange

    def state() -> str:
        if not dest.exists():
            return "absent"
        loaded = bundles.load(dest, rehash=True)  # never a half-updated bundle
        return "new" if loaded.manifest.engines else "old"

    def spying_rename(src, dst):
        if Path(dst) == dest or Path(src) == dest:
            seen.append(state())
        return real_rename(src, dst)

    def spying_exchange(a, b):
        seen.append(state())
        swapped = real_exchange(a, b)
        if swapped:
            seen.append(state())
        return swapped

    monkeypatch.setattr(os, "rename", spying_rename)
    monkeypatch.setattr(staging, "_exchange", spying_exchange)
    engines.build_engine(dest)
    assert seen[0] == "old" and bundles.load(dest).manifest.engines
    assert set(seen) <= {"old", "new", "absent"}
    if "absent" in seen:  # only where the system cannot swap two paths in one step
        assert not _can_exchange(tmp_path)


def _can_exchange(tmp_path) -> bool:
    from edgeser.bundle import staging

    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir()
    b.mkdir()
    try:
        return staging._exchange(a, b)
    except OSError:
        return False


def test_rebuilding_replaces_this_gpus_engine_and_keeps_the_others(tmp_path, fake, monkeypatch):
    dest = make_bundle(tmp_path / "b")
    engines.build_engine(dest, local=ORIN)
    engines.build_engine(dest)
    first = manifest_of(dest)
    assert [e["gpu"] for e in first["engines"]] == ["NVIDIA Jetson AGX Orin Developer Kit",
                                                     "NVIDIA H100 80GB HBM3"]
    engines.build_engine(dest)  # again on the H100
    again = manifest_of(dest)
    assert [e["gpu"] for e in again["engines"]] == [e["gpu"] for e in first["engines"]]
    assert again["files"].keys() == first["files"].keys()
    assert fake.builds == 3


def test_a_parity_failure_adds_nothing(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    before = (dest / "manifest.json").read_bytes()
    fake.engine_graph = other_graph()
    with pytest.raises(EngineError) as caught:
        engines.build_engine(dest)
    message = str(caught.value)
    assert message.startswith(f"model bundle {dest}: the fp16 engine built here does not "
                              "reproduce the bundle's reference windows (logits max abs error ")
    assert message.endswith("); nothing was added.") and "\n" not in message
    assert (dest / "manifest.json").read_bytes() == before
    assert not (dest / "engines").exists() and siblings(dest) == ["b"]


def test_a_failed_build_or_no_tensorrt_in_the_session_adds_nothing(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    before = (dest / "manifest.json").read_bytes()
    fake.fail = "[TensorRT EP] could not build engine for fused node"
    with pytest.raises(EngineError) as caught:
        engines.build_engine(dest)
    assert str(caught.value) == (
        f"model bundle {dest}: TensorRT could not build a fp16 engine from model.onnx "
        "([TensorRT EP] could not build engine for fused node); nothing was added.")
    fake.fail, fake.use_trt = None, False
    with pytest.raises(EngineError, match=r"ONNX Runtime did not use TensorRT \(it ran on "
                                          r"CUDAExecutionProvider, CPUExecutionProvider"):
        engines.build_engine(dest)
    assert (dest / "manifest.json").read_bytes() == before and siblings(dest) == ["b"]


@pytest.mark.parametrize("context,message", [
    (lambda: b"", "cannot be read"),
    (lambda: ep_context_model(ENGINE_NAME, nodes=2), "TensorRT split the graph into 2 engines"),
    (lambda: ep_context_model("../model.onnx"), "names no engine file beside it"),
    (lambda: ep_context_model(ENGINE_NAME, embed_mode=1), "names no engine file beside it"),
])
def test_a_context_model_that_does_not_name_one_engine_beside_it_is_refused(
        tmp_path, fake, context, message):
    dest = make_bundle(tmp_path / "b")
    folder = {}

    def rewrite():
        path = next(Path(call[2][0]["trt_ep_context_file_path"]) for call in fake.calls
                    if call[2][0].get("trt_dump_ep_context_model"))
        path.write_bytes(context())
        folder["path"] = path.parent

    fake.during_build = rewrite
    with pytest.raises(EngineError, match=message):
        engines.build_engine(dest)
    assert not manifest_of(dest)["engines"] and siblings(dest) == ["b"]


def test_a_bundle_file_changed_during_the_build_adds_nothing(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    fake.during_build = lambda: os.utime(dest / "extra" / "notes.txt", ns=(1, 1))
    with pytest.raises(BundleError, match=r"extra/notes.txt changed while the engine was built; "
                                          r"nothing was added"):
        engines.build_engine(dest)
    assert not manifest_of(dest)["engines"]


def test_a_tampered_bundle_is_refused_before_building(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    data = bytearray((dest / "reference.npz").read_bytes())
    data[-30] ^= 0xFF
    (dest / "reference.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        engines.build_engine(dest)
    assert fake.builds == 0


# ---------------------------------------------------------------- precision rules


def test_fp16_refuses_an_int8_bundle_naming_the_export_that_makes_a_float_one(tmp_path, fake):
    dest = make_bundle(tmp_path / "b", quantization={"method": "matmul-nbits", "weights": "int8",
                                                     "recipe": "blockwise-int8-b32"})
    with pytest.raises(EngineError) as caught:
        engines.build_engine(dest, "fp16")
    assert str(caught.value) == (
        f"model bundle {dest}: an fp16 engine is built from an FP32 or FP16 graph, but this "
        "bundle's graph is INT8 (blockwise-int8-b32: matmul-nbits); export a float bundle with "
        "`edgeser export --model test/tiny-dim --quantize none` (or --quantize fp16) and build "
        "its engine with `edgeser engine build BUNDLE`.")
    assert fake.builds == 0


def test_fp16_refuses_a_graph_with_int8_operators_whatever_the_manifest_says(tmp_path, fake):
    h = helper()
    blockwise = h.make_node("MatMulNBits", ["a", "b"], ["c"], domain="com.microsoft")
    dest = tmp_path / "b"
    graph = qdq_graph(extra_nodes=[blockwise])
    with bundles.stage_bundle(dest) as stage:  # ONNX Runtime could not run it: no references
        (stage.path / "model.onnx").write_bytes(graph)
        np.savez(stage.path / "reference.npz", **reference_arrays(None))
        stage.commit(base_manifest())
    with pytest.raises(EngineError, match=r"but this bundle's graph is INT8 \(fp32: "
                                          r"MatMulNBits\); export a float bundle"):
        engines.build_engine(dest)


def test_int8_needs_a_static_symmetric_qdq_graph(tmp_path, fake):
    dest = make_bundle(tmp_path / "float")
    with pytest.raises(EngineError) as caught:
        engines.build_engine(dest, "int8")
    assert str(caught.value).startswith(
        f"model bundle {dest}: an int8 engine is built from a static INT8 (QDQ) graph with zero "
        "points 0, but this bundle's graph is fp32; export one with `edgeser export --model "
        "test/tiny-dim --quantize int8 --recipe static-symmetric`")
    static = {"method": "static-qdq", "weights": "int8", "recipe": "static-minmax"}
    asymmetric = make_bundle(tmp_path / "asym", qdq_graph(-3), quantization=static)
    with pytest.raises(EngineError, match=r"only symmetric signed INT8 \(zero points 0\), but 2 "
                                          r"quantize/dequantize nodes of model.onnx have non-zero "
                                          r"zero points \(first: q0\)"):
        engines.build_engine(asymmetric)
    unsigned = make_bundle(tmp_path / "u8", qdq_graph(0, "uint8"), quantization=static)
    with pytest.raises(EngineError, match="have uint8"):
        engines.build_engine(unsigned)
    assert fake.builds == 0


def test_an_int8_engine_from_a_symmetric_static_bundle(tmp_path, fake):
    static = {"method": "static-qdq", "weights": "int8", "recipe": "static-minmax-symmetric"}
    dest = make_bundle(tmp_path / "b", qdq_graph(0), quantization=static)
    made = engines.build_engine(dest).record  # the bundle's precision: int8
    assert made.precision == "int8"
    assert made.context_model.startswith("engines/h100-80gb-hbm3.int8/")
    trt = next(call[2][0] for call in fake.calls if call[2][0].get("trt_dump_ep_context_model"))
    assert trt["trt_fp16_enable"] is True and "trt_int8_enable" not in trt  # explicit QDQ
    assert made.parity.tolerance["logits"] == engines.ENGINE_ATOL["int8"]


# ---------------------------------------------------------------- can this device build?


def test_check_can_build_names_what_is_missing(tmp_path):
    with pytest.raises(EngineError) as caught:
        engines.check_can_build(H100, available=[CPU])
    message = str(caught.value)
    assert message.startswith("building a TensorRT engine needs ONNX Runtime's "
                              "TensorrtExecutionProvider, which this onnxruntime (")
    assert "providers: CPUExecutionProvider) lacks; install `pip install onnxruntime-gpu " \
           "tensorrt`" in message and message.count(". ") == 0
    with pytest.raises(EngineError, match="this machine has no NVIDIA GPU"):
        engines.check_can_build(CPU_ONLY, available=ALL)
    with pytest.raises(EngineError, match=r"needs TensorRT, which is not installed here \(this "
                                          r"device has no TensorRT, CUDA 12.6.68 on NVIDIA H100"):
        engines.check_can_build(replace(H100, tensorrt=None), available=ALL)
    assert engines.check_can_build(H100, available=ALL) == H100
    assert isinstance(caught.value, EdgeserError)


# ---------------------------------------------------------------- running: detect and bench


def built_bundle(tmp_path: Path) -> Path:
    dest = make_bundle(tmp_path / "b")
    engines.build_engine(dest)
    return dest


def speech(seconds: float = 4.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(3).standard_normal(int(seconds * 16000))).astype(np.float32)


def test_detect_runs_the_engines_context_model_with_tensorrt_first(tmp_path, fake, capsys):
    from edgeser.detector import Detector

    dest = built_bundle(tmp_path)
    fake.calls.clear()
    detector = Detector.load(dest, device="tensorrt", threads=1)
    context = dest.absolute() / FOLDER / "context.onnx"
    assert fake.calls == [(context, ALL, [{"device_id": 0}, {"device_id": 0}, {}])]
    assert detector.session.graph == context and detector.engine.record.precision == "fp16"
    assert detector.device.name == "tensorrt" and detector.device.fallback is None
    result = detector.detect(speech(), 16000)
    assert len(result.windows) >= 2
    assert capsys.readouterr().err == ""  # nothing built, nothing said


def test_the_first_use_builds_once_and_says_so_in_one_line(tmp_path, fake, capsys):
    from edgeser.detector import Detector

    dest = make_bundle(tmp_path / "b")
    detector = Detector.load(dest, device="tensorrt", threads=1)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"edgeser: building the fp16 TensorRT engine for NVIDIA H100 80GB HBM3 into "
        f"{dest.absolute()} (this takes minutes, once; later runs load it)"]
    assert detector.engine.built and fake.builds == 1
    assert detector.session.graph == dest.absolute() / FOLDER / "context.onnx"
    Detector.load(dest, device="tensorrt", threads=1)
    assert capsys.readouterr().err == "" and fake.builds == 1


def test_a_process_that_waited_for_another_build_uses_its_engine(tmp_path, fake):
    dest = built_bundle(tmp_path)
    result = engines.build_engine(dest, rebuild=False)
    assert not result.built and fake.builds == 1


def forbid_reading_engines(monkeypatch):
    """Every way of opening a ``.engine`` file fails the test."""
    real_open, real_read = builtins.open, Path.read_bytes

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith(".engine"):
            raise AssertionError(f"the engine {file} was opened")
        return real_open(file, *args, **kwargs)

    def guarded_read(self):
        if self.name.endswith(".engine"):
            raise AssertionError(f"the engine {self} was read")
        return real_read(self)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(Path, "read_bytes", guarded_read)


def test_a_stale_engine_is_refused_before_it_is_opened(tmp_path, fake, monkeypatch):
    from edgeser.detector import Detector

    dest = built_bundle(tmp_path)
    bundles.load(dest)  # the stamp: later loads do not hash (read) the files
    upgraded = replace(H100, tensorrt="10.7.0")
    monkeypatch.setattr(engine_runtime, "local_gpu_info", lambda: upgraded)
    fake.calls.clear()
    forbid_reading_engines(monkeypatch)
    with pytest.raises(EngineError) as caught:
        Detector.load(dest, device="tensorrt", threads=1)
    assert str(caught.value) == (
        f"model bundle {dest.absolute()}: its fp16 engine for NVIDIA H100 80GB HBM3 (TensorRT "
        "10.3.0, CUDA 12.6) does not fit this device, which has TensorRT 10.7.0, CUDA 12.6.68 on "
        "NVIDIA H100 80GB HBM3 (TensorRT 10.3.0 built it, this device has TensorRT 10.7.0); "
        f"build one for this device with `edgeser engine build {dest.absolute()} --precision "
        "fp16`, or add --fallback to run the ONNX graph.")
    assert fake.calls == []  # no session: TensorRT never saw the engine


def test_fallback_runs_the_onnx_graph_and_says_why(tmp_path, fake, monkeypatch):
    from edgeser.detector import Detector

    dest = built_bundle(tmp_path)
    monkeypatch.setattr(engine_runtime, "local_gpu_info", lambda: replace(H100, tensorrt="10.7.0"))
    fake.calls.clear()
    detector = Detector.load(dest, device="tensorrt", fallback=True, threads=1)
    assert fake.calls == [(dest.absolute() / "model.onnx", [CUDA, CPU], [{"device_id": 0}, {}])]
    assert detector.engine.record is None and detector.device.name == "cuda"
    assert detector.device.fallback == (
        "tensorrt was asked for but its fp16 engine does not fit this device (TensorRT 10.3.0 "
        "built it, this device has TensorRT 10.7.0); running the ONNX graph on cuda "
        "(CUDAExecutionProvider, CPUExecutionProvider)")
    assert detector.device.label().endswith("[fallback: tensorrt requested]")


def test_fallback_when_the_first_build_cannot_happen(tmp_path, fake, monkeypatch):
    from edgeser.detector import Detector

    dest = make_bundle(tmp_path / "b", quantization={"method": "matmul-nbits", "weights": "int8"})
    with pytest.raises(EngineError, match="an fp16 engine is built from an FP32 or FP16 graph"):
        Detector.load(dest, device="tensorrt", threads=1)
    detector = Detector.load(dest, device="tensorrt", fallback=True, threads=1)
    assert detector.device.fallback.startswith(
        "tensorrt was asked for but the bundle's graph is INT8, not a float graph an fp16 engine "
        "is built from; running the ONNX graph on cuda")
    monkeypatch.setattr(engine_build, "_available_providers", lambda: [CUDA, CPU])
    with pytest.raises(EngineError, match=r"install `pip install onnxruntime-gpu tensorrt`"):
        Detector.load(make_bundle(tmp_path / "c"), device="tensorrt", threads=1)


def test_auto_on_a_jetson_runs_an_engine_only_if_the_bundle_has_one(tmp_path, fake, capsys):
    dest = make_bundle(tmp_path / "b")
    auto = devices.Device(requested="auto", name="jetson", providers=tuple(ALL),
                          provider_options=({"device_id": 0}, {"device_id": 0}, {}))
    choice = engines.prepare(bundles.load(dest), auto, local=ORIN)
    assert choice.record is None and choice.graph.name == "model.onnx"
    assert choice.device.name == "cuda" and choice.device.fallback is None  # quietly
    assert fake.builds == 0 and capsys.readouterr().err == ""
    engines.build_engine(dest, local=ORIN)
    choice = engines.prepare(bundles.load(dest), auto, local=ORIN)
    assert choice.record.gpu == "NVIDIA Jetson AGX Orin Developer Kit"
    assert choice.device.providers == tuple(ALL)


def test_shapes_outside_the_engines_profile_are_refused(tmp_path, fake):
    from edgeser.detector import Detector

    dest = built_bundle(tmp_path)
    with pytest.raises(EngineError) as caught:
        Detector.load(dest, device="tensorrt", batch_size=16, threads=1)
    assert str(caught.value) == (
        f"model bundle {dest.absolute()}: its fp16 engine takes batches of 1 to 8 windows of 400 "
        "to 48000 samples (0.025 to 3 s), not batches of 16 and windows of 48000 samples; use a "
        "smaller --batch-size or --window, or run the ONNX graph (--device cuda).")
    with pytest.raises(EngineError, match="not batches of 8 and windows of 64000 samples"):
        Detector.load(dest, device="tensorrt", window_s=4.0, threads=1)


def test_a_context_model_naming_another_file_is_refused(tmp_path, fake):
    dest = built_bundle(tmp_path)
    made = engines.EngineRecord.from_json(manifest_of(dest)["engines"][0])[0]
    with pytest.raises(EngineError, match=r"does not run the recorded engine .* alone \(it names "
                                          r"\['TensorrtExecution"):
        engines.check_context_model(dest, replace(made, file=f"{FOLDER}/other.engine"))
    assert engines.check_context_model(dest, made) == dest / made.context_model


def test_bench_runs_the_engine_and_its_cold_start_gets_the_context_model(tmp_path, fake,
                                                                         monkeypatch):
    from edgeser import bench

    dest = built_bundle(tmp_path)
    fake.calls.clear()
    device = devices.resolve_device("tensorrt")
    report = bench.run_bench(dest, device, threads=1, runs=3, batches=(1, 2),
                             with_cold_start=False)
    context = dest.absolute() / FOLDER / "context.onnx"
    assert fake.calls == [(context, ALL, [{"device_id": 0}, {"device_id": 0}, {}])]
    assert report.precision == "fp16" and report.fallback is None
    assert report.model_bytes == (dest / FOLDER / ENGINE_NAME).stat().st_size
    requests = []

    def cold(args, **kwargs):
        requests.append(json.loads(args[-1]))
        return subprocess.CompletedProcess(args, 0, stdout=json.dumps({
            "imports_s": 0.1, "session_s": 0.2, "first_inference_s": 0.3,
            "rss_after_imports_mb": 1.0, "rss_after_session_mb": 2.0, "peak_rss_mb": 3.0}),
            stderr="")

    monkeypatch.setattr(bench.subprocess, "run", cold)
    bench.run_bench(dest, device, threads=1, runs=3, batches=(1,))
    assert requests[0]["graph"] == str(context) and requests[0]["providers"] == ALL
    with pytest.raises(EngineError, match="not batches of 16"):
        bench.run_bench(dest, device, threads=1, runs=3, batches=(16,), with_cold_start=False)


# ---------------------------------------------------------------- the CLI


def cli(*args: str):
    from typer.testing import CliRunner

    from edgeser.cli import app

    return CliRunner().invoke(app, list(args))


def test_engine_build_cli_builds_and_reports(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    result = cli("engine", "build", str(dest))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "edgeser: building the fp16 TensorRT engine for NVIDIA H100 80GB HBM3 (this takes "
        "minutes)"]
    assert result.stdout.splitlines() == [
        f"bundle   {dest.absolute()}",
        f"engine   {FOLDER}/{ENGINE_NAME}",
        f"context  {FOLDER}/context.onnx",
        "built    fp16 engine for NVIDIA H100 80GB HBM3 (TensorRT 10.3.0, CUDA 12.6), ONNX "
        "Runtime 1.20.1, compute capability 9.0",
        "profile  batches of 1 to 8 windows of 400 to 48000 samples (0.025 to 3 s)",
        "parity   2 reference windows: logits 0 (tolerance 0.05), embedding 0 (tolerance 0.05)"]
    assert manifest_of(dest)["engines"][0]["precision"] == "fp16"


def test_engine_build_cli_errors_are_one_sentence(tmp_path, fake):
    dest = make_bundle(tmp_path / "b")
    result = cli("engine", "build", str(dest), "--precision", "int8")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"edgeser: model bundle {dest}: an int8 engine is built from")
    result = cli("engine", "build", str(tmp_path / "missing"))
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "no such bundle or checkpoint directory" in result.stderr
    result = cli("engine", "build", str(dest), "--precision", "fp32")
    assert result.exit_code == 2 and "'fp32' is not one of fp16, int8" in result.stderr


def test_engine_build_on_this_machine_names_what_to_install(tmp_path):
    """The real CLI in a fresh process: this machine's onnxruntime has no TensorRT provider."""
    import onnxruntime

    if TRT in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the TensorRT provider")
    dest = make_bundle(tmp_path / "b")
    env = dict(os.environ, EDGESER_HOME=str(tmp_path / "home"), COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "edgeser", "engine", "build", str(dest)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("edgeser: building a TensorRT engine needs ONNX Runtime's "
                           "TensorrtExecutionProvider")
    assert "pip install onnxruntime-gpu tensorrt" in line and line.endswith(".")
    assert not manifest_of(dest)["engines"]


def write_wav(path: Path) -> Path:
    import soundfile as sf

    sf.write(path, speech(), 16000, subtype="PCM_16")
    return path


def test_detect_cli_fallback_and_refusal(tmp_path, fake, monkeypatch):
    dest = built_bundle(tmp_path)
    wav = write_wav(tmp_path / "talk.wav")
    monkeypatch.setattr(engine_runtime, "local_gpu_info", lambda: replace(H100, cuda="13.0"))
    result = cli("detect", str(wav), "--model", str(dest), "--device", "tensorrt", "--format",
                 "json", "--threads", "1")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "it needs CUDA 12.x, this device has CUDA 13.0" in line
    assert f"`edgeser engine build {dest.absolute()} --precision fp16`" in line
    result = cli("detect", str(wav), "--model", str(dest), "--device", "tensorrt", "--fallback",
                 "--format", "json", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "edgeser: warning: tensorrt was asked for but its fp16 engine does not fit this device "
        "(it needs CUDA 12.x, this device has CUDA 13.0); running the ONNX graph on cuda "
        "(CUDAExecutionProvider, CPUExecutionProvider)"]
    assert json.loads(result.stdout)


def test_verify_runs_the_reference_windows_through_a_fitting_engine(tmp_path, fake):
    dest = built_bundle(tmp_path)
    result = cli("verify", str(dest))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2] == (
        f"engine {FOLDER}/{ENGINE_NAME} (fp16 engine for NVIDIA H100 80GB HBM3 (TensorRT "
        "10.3.0, CUDA 12.6)): 2 windows, logits max abs error 0 (tolerance 0.05), embedding max "
        "abs error 0 (tolerance 0.05): OK")
    assert lines[-1] == "OK"
    fake.run_graph = other_graph()  # the engine no longer reproduces the bundle
    result = cli("verify", str(dest))
    assert result.exit_code == 1 and result.stdout.splitlines()[-1] == "FAILED"
    assert ": FAILED" in result.stdout.splitlines()[-2]


@pytest.mark.parametrize("local,ending", [
    (CPU_ONLY, ": not checked here (no TensorRT/GPU here)"),
    (ORIN, ": not checked here, not for this device (it was built for NVIDIA H100 80GB HBM3, "
           "this device is NVIDIA Jetson AGX Orin Developer Kit; it needs compute capability "
           "9.0, this GPU has 8.7)"),
])
def test_verify_says_where_an_engine_is_not_checked(tmp_path, fake, monkeypatch, local, ending):
    dest = built_bundle(tmp_path)
    monkeypatch.setattr(engine_runtime, "local_gpu_info", lambda: local)
    fake.calls.clear()
    result = cli("verify", str(dest))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2].endswith(ending)
    assert not [call for call in fake.calls if call[0].name == "context.onnx"]


def test_verify_on_this_machine_says_not_checked_here(tmp_path, monkeypatch):
    helper()
    fake = FakeTensorRT()
    monkeypatch.setattr(inference, "create_session", fake)
    monkeypatch.setattr(engine_build, "_available_providers", lambda: list(ALL))
    dest = make_bundle(tmp_path / "b")
    engines.build_engine(dest, local=H100)
    monkeypatch.undo()
    env = dict(os.environ, EDGESER_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "edgeser", "verify", str(dest)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2].startswith(f"engine {FOLDER}/")
    assert lines[-2].endswith("not checked here (no TensorRT/GPU here)")
    assert lines[-1] == "OK"


# ---------------------------------------------------------------- the export


def export_tools():
    pytest.importorskip("torch", reason="the export toolchain (export extra) is not installed")
    pytest.importorskip("onnx", reason="the export toolchain (export extra) is not installed")
    from edgeser.export import tensorrt as trt_export

    return trt_export


def test_engine_recipe_makes_static_activations_symmetric():
    t = export_tools()
    from edgeser.export import quantize

    static = quantize.RECIPES["static-minmax"]()
    made = t.engine_recipe(static)
    assert made.name == static.name + "-symmetric"
    assert made.extra["ActivationSymmetric"] is True and made.method == "static-qdq"
    assert t.engine_recipe(made) is made
    for other in ("dynamic-matmul", "blockwise-int8"):  # TensorRT has neither
        made = t.engine_recipe(quantize.RECIPES[other]())
        assert made.method == "static-qdq" and made.extra["ActivationSymmetric"] is True


def test_onnxruntime_static_quantization_with_the_engine_recipe_has_zero_zero_points(tmp_path):
    """The real quantizer with the engine recipe makes a graph the int8 build accepts; the
    default static recipe's asymmetric activations would be refused."""
    t = export_tools()
    pytest.importorskip("onnxruntime.quantization")
    from onnx import TensorProto, helper as h, numpy_helper

    from edgeser.export import quantize

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.normal(size=(8, 3)).astype(np.float32), "w2")
    graph = h.make_graph(
        [h.make_node("MatMul", ["input_values", "w"], ["h"], name="/encoder/mm"),
         h.make_node("Relu", ["h"], ["r"], name="/encoder/relu"),
         h.make_node("MatMul", ["r", "w2"], ["logits"], name="/head/mm")],
        "tiny", [h.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", 16])],
        [h.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, w2])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(model.SerializeToString())
    windows = [(rng.normal(size=16) + 0.7).astype(np.float32) for _ in range(9)]
    static = quantize.RECIPES["static-minmax"]()
    quantize.quantize(fp32, tmp_path / "asym.onnx", static, windows)
    assert onnxwire.scan_onnx(tmp_path / "asym.onnx").nonzero_zero_points
    quantize.quantize(fp32, tmp_path / "sym.onnx", t.engine_recipe(static), windows)
    found = onnxwire.scan_onnx(tmp_path / "sym.onnx")
    assert found.uses("QuantizeLinear", "DequantizeLinear") and not found.nonzero_zero_points
    assert not found.unsigned_zero_points


def tiny_checkpoint(tmp_path: Path) -> Path:
    pytest.importorskip("safetensors", reason="the export toolchain is not installed")
    pytest.importorskip("transformers", reason="the export toolchain is not installed")
    import checkpoints

    return checkpoints.audeering(tmp_path / "ckpt")


def test_export_with_engine_fails_fast_where_nothing_can_build(tmp_path, monkeypatch):
    export_tools()
    from edgeser.export import ExportOptions, export_model, pipeline

    monkeypatch.setattr(engine_build, "_available_providers", lambda: [CPU])
    monkeypatch.setattr(pipeline.sources, "resolve",
                        lambda *a, **k: pytest.fail("went past the TensorRT check"))
    with pytest.raises(ExportError) as caught:
        export_model(ExportOptions(model="anything", out=tmp_path / "b", quantize="fp16",
                                   engine="tensorrt"))
    assert str(caught.value).startswith("building a TensorRT engine needs ONNX Runtime's "
                                        "TensorrtExecutionProvider")
    monkeypatch.setattr(engine_build, "_available_providers", lambda: list(ALL))
    monkeypatch.setattr(engine_build, "local_gpu_info", lambda: CPU_ONLY)
    with pytest.raises(ExportError, match="this machine has no NVIDIA GPU"):
        export_model(ExportOptions(model="anything", out=tmp_path / "b", quantize="int8",
                                   engine="tensorrt"))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("options,message", [
    ({"quantize": "fp16", "engine": "onnx"}, "--engine onnx is not available"),
    ({"quantize": "int8", "engine": "tensorrt", "recipe": "dynamic-matmul"},
     "--engine tensorrt needs a static INT8 recipe; dynamic-matmul is not one."),
])
def test_engine_option_combinations_that_are_refused(tmp_path, options, message):
    export_tools()
    from edgeser.export import ExportOptions, export_model

    with pytest.raises(ExportError) as caught:
        export_model(ExportOptions(model=str(tmp_path / "no-such-checkpoint"), out=tmp_path / "b",
                                   **options))
    assert str(caught.value).startswith(message)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("quantize,precision", [("fp16", "fp16"), ("int8", "int8")])
def test_export_writes_the_bundle_then_builds_its_engine_the_same_way(tmp_path, fake, quantize,
                                                                      precision):
    """The pipeline's wiring: the bundle is written first, then the engine is built from the
    written bundle's graph (the FP16 graph, or the symmetric static QDQ one) by
    build_engine, so the runtime runs what the export wrote."""
    export_tools()
    from edgeser.export import ExportOptions, export_model

    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "b"
    result = export_model(ExportOptions(model=str(ckpt), out=out, quantize=quantize,
                                        engine="tensorrt", eval_windows=4,
                                        calibration_windows=8, allow_degraded=True))
    (built,) = [call for call in fake.calls if call[2][0].get("trt_dump_ep_context_model")]
    assert built[0] == out.absolute() / "model.onnx"  # the written bundle's graph
    m = manifest_of(out)
    (entry,) = m["engines"]
    assert entry["precision"] == precision and entry["gpu"] == "NVIDIA H100 80GB HBM3"
    assert entry["file"] in m["files"] and entry["file"] in result.file_bytes
    if precision == "int8":
        found = onnxwire.scan_onnx(out / "model.onnx")
        assert found.uses("QuantizeLinear") and not found.nonzero_zero_points
    assert bundles.load(out, rehash=True)


def test_a_static_symmetric_bundle_exported_without_a_gpu_gets_its_int8_engine_on_the_device(
        tmp_path, fake):
    """The Jetson workflow: export on a workstation with --recipe static-symmetric (no TensorRT
    there), copy the bundle, build the int8 engine where the GPU is."""
    export_tools()
    from edgeser.export import ExportOptions, export_model

    out = tmp_path / "b"
    export_model(ExportOptions(model=str(tiny_checkpoint(tmp_path)), out=out,
                               recipe="static-symmetric", eval_windows=4,
                               calibration_windows=8, allow_degraded=True))
    assert fake.builds == 0
    found = onnxwire.scan_onnx(out / "model.onnx")
    assert found.uses("QuantizeLinear") and not found.nonzero_zero_points
    assert not found.unsigned_zero_points
    engines.build_engine(out)  # int8: the default for a static QDQ bundle
    (entry,) = manifest_of(out)["engines"]
    assert entry["precision"] == "int8"


def test_shapes_are_refused_before_minutes_of_building(tmp_path, fake):
    from edgeser.detector import Detector

    dest = make_bundle(tmp_path / "b")
    with pytest.raises(EngineError, match="not batches of 16"):
        Detector.load(dest, device="tensorrt", batch_size=16, threads=1)
    assert fake.builds == 0
