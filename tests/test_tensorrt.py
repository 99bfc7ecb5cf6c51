"""TensorRT engines: the optimization profile, file names, the compatibility check and the refusal
before a foreign plan is opened, manifest records, ``edgeser verify`` lines, the export's fast
failure without TensorRT, and the engine builder's logic.

Real engine builds were never run here: this machine has no NVIDIA GPU and no TensorRT. The
builder tests inject a FAKE ``tensorrt`` module (a small stub object model that records calls)
into ``sys.modules``; they check OUR logic (flags, FP32 pins, profile shapes, atomic write, the
returned record), not TensorRT's. Whether TensorRT accepts these graphs, honours the pins and
reproduces the ONNX outputs is untested until this runs on a GPU.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from edgeser import bundle as bundles
from edgeser import engines
from edgeser.errors import BundleError, ExportError
from edgeser.gpu import GpuInfo
from test_bundle import base_manifest, with_files

H100 = GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda="12.6.68",
               tensorrt="10.3.0")
ORIN = GpuInfo(name=None, compute_capability="8.7", cuda="12.6.68", tensorrt="10.3.0",
               jetson_model="NVIDIA Jetson AGX Orin Developer Kit")
CPU_ONLY = GpuInfo()
PLAN = "model.h100-80gb-hbm3.fp16.plan"
PROFILE = {"input": "input_values", "batch": [1, 4, 8], "samples": [400, 48000, 48000]}
RECORD = {"file": PLAN, "precision": "fp16", "tensorrt": "10.3.0", "cuda": "12.6",
          "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "profile": PROFILE}


def export_tools():
    """The export toolchain (imported lazily: the first tests need none of it)."""
    pytest.importorskip("torch", reason="the export toolchain (export extra) is not installed")
    pytest.importorskip("onnx", reason="the export toolchain (export extra) is not installed")
    from edgeser.export import tensorrt as trt_export

    return trt_export


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESER_HOME", str(tmp_path / "edgeser-home"))


# ---------------------------------------------------------------- profile and file names


def test_profile_for_a_three_second_window():
    t = export_tools()
    assert t.optimization_profile(3.0) == PROFILE


@pytest.mark.parametrize("window_s,max_batch,batch,samples", [
    (1.0, 8, [1, 4, 8], [400, 16000, 16000]),
    (1.0, 1, [1, 1, 1], [400, 16000, 16000]),
    (2.5, 3, [1, 1, 3], [400, 40000, 40000]),
    (0.025, 2, [1, 1, 2], [400, 400, 400]),  # one model frame is the shortest window
])
def test_profile_shapes(window_s, max_batch, batch, samples):
    t = export_tools()
    profile = t.optimization_profile(window_s, max_batch=max_batch)
    assert profile == {"input": "input_values", "batch": batch, "samples": samples}


def test_profile_refuses_a_window_shorter_than_one_frame_and_a_zero_batch():
    t = export_tools()
    with pytest.raises(ExportError, match="shorter than the engine's minimum input of 400"):
        t.optimization_profile(0.01)
    with pytest.raises(ExportError, match="maximum batch"):
        t.optimization_profile(3.0, max_batch=0)


@pytest.mark.parametrize("gpu,precision,name", [
    ("NVIDIA H100 80GB HBM3", "fp16", "model.h100-80gb-hbm3.fp16.plan"),
    ("NVIDIA Jetson AGX Orin Developer Kit", "int8", "model.jetson-agx-orin-developer-kit.int8.plan"),
    ("NVIDIA GeForce RTX 4090", "int8", "model.geforce-rtx-4090.int8.plan"),
    ("NVIDIA A100-SXM4-40GB", "fp16", "model.a100-sxm4-40gb.fp16.plan"),
    ("Tesla T4", "fp16", "model.tesla-t4.fp16.plan"),
    ("../../etc/passwd", "fp16", "model.etc-passwd.fp16.plan"),
    (None, "fp16", "model.gpu.fp16.plan"),
    ("NVIDIA", "fp16", "model.nvidia.fp16.plan"),
])
def test_engine_file_names_are_safe_slugs(gpu, precision, name):
    t = export_tools()
    assert t.engine_file_name(gpu, precision) == name
    assert bundles._name_problem(name) is None


def test_engine_file_name_refuses_other_precisions():
    t = export_tools()
    with pytest.raises(ExportError, match="'fp32' is not one of fp16, int8"):
        t.engine_file_name("NVIDIA H100 80GB HBM3", "fp32")


# ---------------------------------------------------------------- compatibility


def test_a_matching_device_is_compatible():
    assert engines.engine_compatibility(RECORD, H100) == []


def test_differences_that_do_not_matter():
    """TensorRT patch, CUDA minor, and spelling of the GPU name."""
    here = GpuInfo(name="nvidia  h100 80gb hbm3", compute_capability="9.0", cuda="12.8.93",
                   tensorrt="10.3.1.4")
    assert engines.engine_compatibility(RECORD, here) == []


def test_tensorrt_minor_mismatch():
    here = GpuInfo(**{**H100.__dict__, "tensorrt": "10.7.0"})
    assert engines.engine_compatibility(RECORD, here) == [
        "TensorRT 10.3.0 built it, this device has TensorRT 10.7.0"]


def test_tensorrt_major_mismatch():
    here = GpuInfo(**{**H100.__dict__, "tensorrt": "8.6.2"})
    problems = engines.engine_compatibility(RECORD, here)
    assert problems == ["TensorRT 10.3.0 built it, this device has TensorRT 8.6.2"]


def test_cuda_major_mismatch():
    here = GpuInfo(**{**H100.__dict__, "cuda": "13.0.48"})
    assert engines.engine_compatibility(RECORD, here) == [
        "it needs CUDA 12.x, this device has CUDA 13.0.48"]


def test_unknown_cuda_on_either_side_is_not_a_mismatch():
    assert engines.engine_compatibility(RECORD, GpuInfo(**{**H100.__dict__, "cuda": None})) == []
    assert engines.engine_compatibility({**RECORD, "cuda": "unknown"}, H100) == []


def test_gpu_mismatch():
    here = GpuInfo(name="NVIDIA A100-SXM4-80GB", compute_capability="8.0", cuda="12.6",
                   tensorrt="10.3.0")
    assert engines.engine_compatibility(RECORD, here) == [
        "it was built for NVIDIA H100 80GB HBM3, this device is NVIDIA A100-SXM4-80GB",
        "it needs compute capability 9.0, this GPU has 8.0"]


def test_same_name_other_sku_capability_mismatch_alone():
    here = GpuInfo(**{**H100.__dict__, "compute_capability": "9.1"})
    assert engines.engine_compatibility(RECORD, here) == [
        "it needs compute capability 9.0, this GPU has 9.1"]


def test_no_gpu_and_no_tensorrt_here():
    assert engines.engine_compatibility(RECORD, CPU_ONLY) == [
        "this device has no NVIDIA GPU", "TensorRT is not installed here"]


def test_a_gpu_without_tensorrt():
    here = GpuInfo(**{**H100.__dict__, "tensorrt": None})
    assert engines.engine_compatibility(RECORD, here) == ["TensorRT is not installed here"]


def test_a_jetson_engine_on_the_same_jetson_and_on_a_dgpu():
    record = {**RECORD, "file": "model.jetson-agx-orin-developer-kit.fp16.plan",
              "gpu": "NVIDIA Jetson AGX Orin Developer Kit", "compute_capability": "8.7"}
    assert engines.engine_compatibility(record, ORIN) == []
    problems = engines.engine_compatibility(record, H100)
    assert problems[0] == ("it was built for NVIDIA Jetson AGX Orin Developer Kit, "
                           "this device is NVIDIA H100 80GB HBM3")


# ---------------------------------------------------------------- read_engine


def bundle_with_plan(tmp_path: Path, *, write_plan: bool = True) -> bundles.Bundle:
    """A Bundle object (not loaded: these tests are about read_engine alone)."""
    root = tmp_path / "b"
    root.mkdir()
    if write_plan:
        (root / PLAN).write_bytes(b"PLAN-BYTES")
    m = with_files(base_manifest(engines=[RECORD]))
    return bundles.Bundle(path=root, manifest=m)


def test_read_engine_returns_the_plan_bytes_when_compatible(tmp_path):
    b = bundle_with_plan(tmp_path)
    assert engines.read_engine(b, RECORD, local=H100) == b"PLAN-BYTES"


def test_read_engine_refuses_a_mismatch_before_opening_a_missing_plan(tmp_path):
    b = bundle_with_plan(tmp_path, write_plan=False)
    here = GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda="12.8",
                   tensorrt="10.7.0")
    with pytest.raises(BundleError) as caught:
        engines.read_engine(b, RECORD, local=here)
    message = str(caught.value)
    assert message == (
        f"model bundle {b.path}: engine {PLAN} was built for TensorRT 10.3.0, CUDA 12.6 on "
        "NVIDIA H100 80GB HBM3 but this device has TensorRT 10.7.0, CUDA 12.8 on NVIDIA H100 "
        "80GB HBM3 (TensorRT 10.3.0 built it, this device has TensorRT 10.7.0); build one here "
        "with `edgeser export --model test/tiny-dim --quantize fp16 --engine tensorrt`, or run "
        "the ONNX graph."
    )
    assert "cannot be read" not in message and "\n" not in message


def test_read_engine_refuses_before_any_read_of_an_existing_plan(tmp_path, monkeypatch):
    """The plan exists, but every way of reading a file fails loudly: the refusal must still be
    the version one (it was decided from the manifest alone)."""
    b = bundle_with_plan(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("the plan was opened")

    monkeypatch.setattr(Path, "read_bytes", forbidden)
    monkeypatch.setattr(Path, "open", forbidden)
    monkeypatch.setattr("builtins.open", forbidden)
    with pytest.raises(BundleError, match=r"this device has TensorRT 10\.7\.0"):
        engines.read_engine(b, RECORD, local=GpuInfo(**{**H100.__dict__, "tensorrt": "10.7.0"}))


def test_read_engine_on_a_cpu_only_machine_probes_this_device(tmp_path, monkeypatch):
    b = bundle_with_plan(tmp_path, write_plan=False)
    monkeypatch.setattr(engines, "local_gpu_info", lambda: CPU_ONLY)
    with pytest.raises(BundleError) as caught:
        engines.read_engine(b, RECORD)
    message = str(caught.value)
    assert "but this device has no TensorRT, no known CUDA and no NVIDIA GPU" in message
    assert "(this device has no NVIDIA GPU; TensorRT is not installed here)" in message
    assert "--engine tensorrt" in message


def test_read_engine_names_an_unreadable_compatible_plan(tmp_path):
    b = bundle_with_plan(tmp_path, write_plan=False)
    with pytest.raises(BundleError, match=f"engine {PLAN} cannot be read"):
        engines.read_engine(b, RECORD, local=H100)


# ---------------------------------------------------------------- manifest validation


def manifest_with(record) -> dict:
    m = with_files(base_manifest(engines=[record]))
    m["files"][PLAN] = {"sha256": "c" * 64, "bytes": 10}
    return m


def test_a_valid_engine_record_has_no_problems():
    assert bundles.validate_manifest(manifest_with(RECORD)) == []


@pytest.mark.parametrize("change,problem", [
    ({"file": "model.other.fp16.plan"}, "engines[0].file 'model.other.fp16.plan' is not listed in files"),
    ({"file": "../model.plan"}, "engines[0].file '../model.plan' escapes the bundle"),
    ({"precision": "fp32"}, "engines[0].precision must be one of fp16, int8"),
    ({"precision": None}, "engines[0].precision must be one of fp16, int8"),
    ({"tensorrt": ""}, "engines[0].tensorrt must be a non-empty string"),
    ({"cuda": 12.6}, "engines[0].cuda must be a non-empty string"),
    ({"gpu": None}, "engines[0].gpu must be a non-empty string"),
    ({"compute_capability": " "}, "engines[0].compute_capability must be a non-empty string"),
    ({"profile": None}, "engines[0].profile must be an object"),
    ({"profile": {**PROFILE, "input": ""}}, "engines[0].profile.input must be a non-empty string"),
    ({"profile": {**PROFILE, "batch": [4, 2, 8]}},
     "engines[0].profile.batch must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"profile": {**PROFILE, "batch": [0, 1, 8]}},
     "engines[0].profile.batch must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"profile": {**PROFILE, "samples": [400, 48000.0, 48000]}},
     "engines[0].profile.samples must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"profile": {**PROFILE, "samples": [400, True, 48000]}},
     "engines[0].profile.samples must be [min, opt, max] integers, 1 <= min <= opt <= max"),
    ({"profile": {**PROFILE, "samples": [400, 48000]}},
     "engines[0].profile.samples must be [min, opt, max] integers, 1 <= min <= opt <= max"),
])
def test_engine_record_problems(change, problem):
    assert bundles.validate_manifest(manifest_with({**RECORD, **change})) == [problem]


def test_a_missing_profile_and_precision_are_both_listed():
    record = {k: v for k, v in RECORD.items() if k not in ("profile", "precision")}
    assert bundles.validate_manifest(manifest_with(record)) == [
        "engines[0].precision must be one of fp16, int8", "engines[0].profile must be an object"]


# ---------------------------------------------------------------- edgeser verify


def test_engine_status_lines():
    assert engines.engine_status(RECORD, H100) == f"engine {PLAN}: compatible with this device"
    assert engines.engine_status(RECORD, CPU_ONLY) == (
        f"engine {PLAN}: not checked: no TensorRT/GPU here")
    assert engines.engine_status(RECORD, GpuInfo(**{**H100.__dict__, "tensorrt": None})) == (
        f"engine {PLAN}: not checked: no TensorRT/GPU here")
    assert engines.engine_status(RECORD, ORIN) == (
        f"engine {PLAN}: refused on this device: it was built for NVIDIA H100 80GB HBM3, this "
        "device is NVIDIA Jetson AGX Orin Developer Kit; it needs compute capability 9.0, this "
        "GPU has 8.7")


def test_engine_statuses_do_not_probe_the_device_without_engines(monkeypatch):
    def probe():
        raise AssertionError("probed")

    monkeypatch.setattr(engines, "local_gpu_info", probe)
    assert engines.engine_statuses(base_manifest()) == []


def commit_bundle_with_engine(dest: Path) -> None:
    pytest.importorskip("onnx", reason="building the tiny test graph needs the onnx package")
    from test_bundle import reference_arrays, tiny_onnx_bytes

    model = tiny_onnx_bytes()
    with bundles.stage_bundle(dest) as stage:
        (stage.path / "model.onnx").write_bytes(model)
        np.savez(stage.path / "reference.npz", **reference_arrays(model))
        (stage.path / PLAN).write_bytes(b"not a real plan; only hashed")
        stage.commit(base_manifest(engines=[RECORD]))


@pytest.mark.parametrize("local,line", [
    (CPU_ONLY, f"engine {PLAN}: not checked: no TensorRT/GPU here"),
    (H100, f"engine {PLAN}: compatible with this device"),
    (GpuInfo(**{**H100.__dict__, "tensorrt": "10.7.0"}),
     f"engine {PLAN}: refused on this device: TensorRT 10.3.0 built it, this device has "
     "TensorRT 10.7.0"),
])
def test_verify_reports_engines_and_passes_on_onnx(tmp_path, monkeypatch, local, line):
    from typer.testing import CliRunner

    from edgeser.cli import app

    dest = tmp_path / "b"
    commit_bundle_with_engine(dest)
    monkeypatch.setattr(engines, "local_gpu_info", lambda: local)
    result = CliRunner().invoke(app, ["verify", str(dest)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert line in lines
    assert lines[-1] == "OK"
    assert lines.index(line) == len(lines) - 2


def test_verify_cli_on_this_machine_reports_the_engine_and_exits_0(tmp_path):
    dest = tmp_path / "b"
    commit_bundle_with_engine(dest)
    result = subprocess.run([sys.executable, "-m", "edgeser", "verify", str(dest)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith(f"engine {PLAN}: ") for line in result.stdout.splitlines())
    assert result.stdout.splitlines()[-1] == "OK"


def test_a_bundle_with_an_engine_loads_and_its_plan_is_read_through_read_engine(tmp_path):
    dest = tmp_path / "b"
    commit_bundle_with_engine(dest)
    b = bundles.load(dest)
    record = b.manifest["engines"][0]
    assert engines.read_engine(b, record, local=H100) == b"not a real plan; only hashed"


# ---------------------------------------------------------------- a fake tensorrt module


class FakeTensor:
    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class FakeLayer:
    def __init__(self, trt, name, kind, dtypes):
        self.name, self.type = name, getattr(trt.LayerType, kind)
        self.outputs = [FakeTensor(f"{name}_out{j}", d) for j, d in enumerate(dtypes)]
        self.precision = None  # TensorRT's default: unset
        self.output_types: dict = {}

    @property
    def num_outputs(self):
        return len(self.outputs)

    def get_output(self, j):
        return self.outputs[j]

    def set_output_type(self, j, dtype):
        self.output_types[j] = dtype


def make_fake_tensorrt(*, parse_errors=(), build_fails=False, load_fails=False,
                       input_name="input_values", version="10.3.0"):
    """A ``tensorrt`` stand-in with the API surface build_engine uses; ``trt.calls`` records
    what was asked of it."""
    trt = types.ModuleType("tensorrt")
    # A spec, as a real module has: torch._dynamo probes find_spec("tensorrt") on import.
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.calls = calls = {"flags": [], "profiles": [], "pool": {}, "parsed": [], "built": 0,
                         "deserialized": [], "network_flags": []}
    trt.float32, trt.float16, trt.int32, trt.int64 = "float32", "float16", "int32", "int64"
    trt.LayerType = types.SimpleNamespace(**{k: k for k in (
        "NORMALIZATION", "SOFTMAX", "REDUCE", "MATRIX_MULTIPLY", "ELEMENTWISE", "UNARY",
        "CONVOLUTION", "SHUFFLE", "QUANTIZE", "DEQUANTIZE")})
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8",
                                            OBEY_PRECISION_CONSTRAINTS="OBEY_PRECISION_CONSTRAINTS")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self):
            pass

    trt.ILogger = ILogger
    layers = [
        FakeLayer(trt, "/encoder/layers.0/layer_norm/LayerNormalization", "NORMALIZATION",
                  ["float32"]),
        FakeLayer(trt, "/encoder/layers.0/attention/Softmax", "SOFTMAX", ["float32"]),
        FakeLayer(trt, "/pool/ReduceMean", "REDUCE", ["float32"]),
        FakeLayer(trt, "/feature_extractor/conv_layers.0/layer_norm/Pow", "ELEMENTWISE",
                  ["float32"]),
        FakeLayer(trt, "/feature_extractor/conv_layers.0/layer_norm/Sqrt", "UNARY", ["float32"]),
        FakeLayer(trt, "/encoder/LayerNorm_custom/Div", "ELEMENTWISE", ["float32"]),
        FakeLayer(trt, "/encoder/layers.0/attention/q_proj/MatMul", "MATRIX_MULTIPLY",
                  ["float32"]),
        FakeLayer(trt, "/encoder/layers.0/feed_forward/intermediate_act_fn/Erf", "UNARY",
                  ["float32"]),
        FakeLayer(trt, "/feature_extractor/conv_layers.1/conv/Conv", "CONVOLUTION", ["float32"]),
        FakeLayer(trt, "/shape/ReduceProd", "REDUCE", ["int64"]),  # integer shape arithmetic
    ]
    trt.layers = layers

    class Network:
        num_layers = len(layers)
        num_inputs = 1

        def get_layer(self, i):
            return layers[i]

        def get_input(self, i):
            return FakeTensor(input_name, "float32")

    class Profile:
        def set_shape(self, name, min_shape, opt_shape, max_shape):
            calls["profiles"].append((name, min_shape, opt_shape, max_shape))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls["pool"][pool] = size

        def set_flag(self, flag):
            calls["flags"].append(flag)

        def add_optimization_profile(self, profile):
            calls["profile_added"] = profile

    class Builder:
        def __init__(self, logger):
            assert isinstance(logger, ILogger)
            self.logger = logger

        def create_network(self, flags):
            calls["network_flags"].append(flags)
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls["built"] += 1
            calls["pins_at_build"] = {l.name: (l.precision, dict(l.output_types)) for l in layers}
            if build_fails:
                self.logger.log(ILogger.Severity.ERROR, "no implementation obeys the constraints")
                self.logger.log(ILogger.Severity.WARNING, "just a warning")
                return None
            return b"FAKE-PLAN:" + ",".join(calls["flags"]).encode()

    class ParserError:
        def __init__(self, text):
            self.text = text

        def desc(self):
            return self.text

    class OnnxParser:
        def __init__(self, network, logger):
            self.errors = [ParserError(e) for e in parse_errors]

        def parse_from_file(self, path):
            calls["parsed"].append(path)
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class Engine:
        num_io_tensors = 3

        def get_tensor_name(self, i):
            return ("input_values", "logits", "embedding")[i]

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            calls["deserialized"].append(bytes(data))
            return None if load_fails else Engine()

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture
def fake_device(monkeypatch):
    """Install a fake tensorrt and an H100 as this device; returns a function that swaps the
    fake for one with other behaviour."""
    t = export_tools()

    def install(**kwargs):
        trt = make_fake_tensorrt(**kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    monkeypatch.setattr(t, "local_gpu_info", lambda: H100)
    install.module = t
    return install


def fp32_onnx(path: Path) -> Path:
    path.write_bytes(b"an FP32 graph the fake parser never reads")
    return path


def symmetric_qdq_onnx(path: Path, zero_point: int = 0) -> Path:
    """input_values [batch, 16] -> Q/DQ (scale 0.05, given zero point) -> MatMul -> logits."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((16, 3), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(zero_point, np.int8), "zero")
    nodes = [
        helper.make_node("QuantizeLinear", ["input_values", "scale", "zero"], ["q"], name="q0"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="dq0"),
        helper.make_node("MatMul", ["dq", "w"], ["logits"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes, "qdq",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights, scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


PINNED = {
    "/encoder/layers.0/layer_norm/LayerNormalization", "/encoder/layers.0/attention/Softmax",
    "/pool/ReduceMean", "/feature_extractor/conv_layers.0/layer_norm/Pow",
    "/feature_extractor/conv_layers.0/layer_norm/Sqrt", "/encoder/LayerNorm_custom/Div",
}


def assert_pins(trt) -> None:
    pins = trt.calls["pins_at_build"]
    for name, (precision, outputs) in pins.items():
        if name in PINNED:
            assert (precision, outputs) == ("float32", {0: "float32"}), name
        else:
            assert (precision, outputs) == (None, {}), name


def test_fp16_build_sets_fp16_pins_fp32_layers_and_uses_the_profile(tmp_path, fake_device):
    trt = fake_device()
    t = fake_device.module
    onnx_path = fp32_onnx(tmp_path / "fp32.onnx")
    plan = tmp_path / "stage" / PLAN
    plan.parent.mkdir()
    record = t.build_engine(onnx_path, plan, precision="fp16", profile=PROFILE,
                            workspace_bytes=1 << 30)
    calls = trt.calls
    assert calls["parsed"] == [str(onnx_path)]
    assert calls["network_flags"] == [0]  # explicit batch is TensorRT 10's only mode
    assert calls["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    assert "INT8" not in calls["flags"]
    assert calls["pool"] == {"WORKSPACE": 1 << 30}
    assert calls["profiles"] == [("input_values", (1, 400), (4, 48000), (8, 48000))]
    assert_pins(trt)
    assert calls["built"] == 1
    assert plan.read_bytes() == b"FAKE-PLAN:FP16,OBEY_PRECISION_CONSTRAINTS"
    assert calls["deserialized"] == [plan.read_bytes()]  # loaded back once
    assert record == {"file": PLAN, "precision": "fp16", "tensorrt": "10.3.0", "cuda": "12.6",
                      "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                      "profile": PROFILE}
    assert sorted(p.name for p in plan.parent.iterdir()) == [PLAN]  # no temp files left


def test_int8_build_from_the_qdq_graph_sets_int8_and_fp16(tmp_path, fake_device):
    trt = fake_device()
    t = fake_device.module
    onnx_path = symmetric_qdq_onnx(tmp_path / "model.onnx")
    plan = tmp_path / "model.h100-80gb-hbm3.int8.plan"
    record = t.build_engine(onnx_path, plan, precision="int8", profile=PROFILE)
    assert trt.calls["flags"] == ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"]
    assert trt.calls["parsed"] == [str(onnx_path)]
    assert trt.calls["pool"] == {"WORKSPACE": 2 << 30}
    assert_pins(trt)
    assert record["precision"] == "int8" and record["file"] == plan.name


def test_the_plan_is_written_to_a_temp_file_beside_it_then_renamed(tmp_path, fake_device,
                                                                    monkeypatch):
    fake_device()
    t = fake_device.module
    plan = tmp_path / PLAN
    plan.write_bytes(b"an older plan")
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst), Path(src).read_bytes(), Path(dst).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), plan, precision="fp16", profile=PROFILE)
    (src, dst, new, old), = renames
    assert dst == plan and src.parent == plan.parent and src.name.startswith(f".{PLAN}.")
    assert old == b"an older plan"  # readers saw the old plan until the rename
    assert new.startswith(b"FAKE-PLAN:") and plan.read_bytes() == new
    assert not src.exists()


def test_a_failed_write_leaves_neither_plan_nor_temp_file(tmp_path, fake_device, monkeypatch):
    fake_device()
    t = fake_device.module

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    onnx_path = fp32_onnx(tmp_path / "fp32.onnx")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        t.build_engine(onnx_path, out / PLAN, precision="fp16", profile=PROFILE)
    assert list(out.iterdir()) == []


def test_parser_errors_are_listed_in_one_sentence(tmp_path, fake_device):
    fake_device(parse_errors=["In node 3 (importFoo): UNSUPPORTED_NODE: Foo\n", "second",
                              "third", "fourth", "fifth"])
    t = fake_device.module
    with pytest.raises(ExportError) as caught:
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)
    assert str(caught.value) == ("TensorRT cannot parse fp32.onnx: In node 3 (importFoo): "
                                 "UNSUPPORTED_NODE: Foo; second; third and 2 more.")
    assert not (tmp_path / PLAN).exists()


def test_a_failed_build_is_one_sentence_with_tensorrts_first_error(tmp_path, fake_device):
    trt = fake_device(build_fails=True)
    t = fake_device.module
    with pytest.raises(ExportError) as caught:
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)
    assert str(caught.value) == ("TensorRT could not build a fp16 engine from fp32.onnx (no "
                                 "implementation obeys the constraints).")
    assert trt.calls["built"] == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "fp32.onnx"]


def test_a_plan_that_does_not_load_back_is_refused(tmp_path, fake_device):
    fake_device(load_fails=True)
    t = fake_device.module
    with pytest.raises(ExportError, match=f"TensorRT built {PLAN} but cannot load it back"):
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)


def test_a_graph_without_the_contract_input_is_refused(tmp_path, fake_device):
    fake_device(input_name="input")
    t = fake_device.module
    with pytest.raises(ExportError, match="the ONNX graph has no input 'input_values'"):
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)


def test_an_asymmetric_qdq_graph_is_refused_before_tensorrt_parses_it(tmp_path, fake_device):
    trt = fake_device()
    t = fake_device.module
    onnx_path = symmetric_qdq_onnx(tmp_path / "model.onnx", zero_point=-3)
    with pytest.raises(ExportError, match=r"only symmetric INT8 .* 2 quantize/dequantize nodes "
                                          r"of model.onnx have non-zero zero points \(first: q0\)"):
        t.build_engine(onnx_path, tmp_path / PLAN, precision="int8", profile=PROFILE)
    assert trt.calls["parsed"] == []


def test_build_without_tensorrt_or_without_a_gpu(tmp_path, fake_device, monkeypatch):
    t = fake_device.module
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(ExportError) as caught:
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)
    assert str(caught.value) == t.INSTALL_HINT
    fake_device()
    monkeypatch.setattr(t, "local_gpu_info", lambda: CPU_ONLY)
    with pytest.raises(ExportError, match="this machine has no NVIDIA GPU"):
        t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                       profile=PROFILE)


def test_a_tensorrt_8_network_asks_for_explicit_batch(tmp_path, fake_device):
    trt = fake_device(version="8.6.2")
    t = fake_device.module
    t.build_engine(fp32_onnx(tmp_path / "fp32.onnx"), tmp_path / PLAN, precision="fp16",
                   profile=PROFILE)
    assert trt.calls["network_flags"] == [1]


def test_engine_recipe_makes_static_activations_symmetric():
    t = export_tools()
    from edgeser.export import quantize

    static = quantize.RECIPES["static-minmax"]()
    made = t.engine_recipe(static)
    assert made.name == static.name + "-symmetric"
    assert made.extra["ActivationSymmetric"] is True and made.method == "static-qdq"
    assert t.engine_recipe(made) is made
    # TensorRT has no dynamic or blockwise INT8: those become the static preset, symmetric
    for other in ("dynamic-matmul", "blockwise-int8"):
        made = t.engine_recipe(quantize.RECIPES[other]())
        assert made.method == "static-qdq" and made.extra["ActivationSymmetric"] is True


def test_onnxruntime_static_quantization_with_the_engine_recipe_has_zero_zero_points(tmp_path):
    """The real quantizer (ONNX Runtime) with the engine recipe yields a graph TensorRT's parser
    accepts on zero points; the default recipe's asymmetric activations would be refused."""
    t = export_tools()
    pytest.importorskip("onnxruntime.quantization")
    from onnx import TensorProto, helper, numpy_helper

    from edgeser.export import quantize

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.normal(size=(8, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input_values", "w"], ["h"], name="/encoder/mm"),
         helper.make_node("Relu", ["h"], ["r"], name="/encoder/relu"),
         helper.make_node("MatMul", ["r", "w2"], ["logits"], name="/head/mm")],
        "tiny", [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(model.SerializeToString())
    windows = [(rng.normal(size=16) + 0.7).astype(np.float32) for _ in range(9)]
    static = quantize.RECIPES["static-minmax"]()
    quantize.quantize(fp32, tmp_path / "asym.onnx", static, windows)
    with pytest.raises(ExportError, match="non-zero zero points"):
        t.check_symmetric(tmp_path / "asym.onnx")
    quantize.quantize(fp32, tmp_path / "sym.onnx", t.engine_recipe(static), windows)
    t.check_symmetric(tmp_path / "sym.onnx")


# ---------------------------------------------------------------- the export pipeline


def tiny_checkpoint(tmp_path: Path) -> Path:
    pytest.importorskip("safetensors", reason="the export toolchain is not installed")
    pytest.importorskip("transformers", reason="the export toolchain is not installed")
    import checkpoints

    return checkpoints.audeering(tmp_path / "ckpt")


def test_export_with_engine_fails_fast_without_tensorrt(tmp_path, monkeypatch):
    export_tools()
    from edgeser.export import ExportOptions, export_model, pipeline

    ckpt = tiny_checkpoint(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no TensorRT, whatever is installed

    def too_late(*args, **kwargs):
        raise AssertionError("the export went past the TensorRT check")

    monkeypatch.setattr(pipeline.sources, "resolve", too_late)
    monkeypatch.setattr(pipeline.parity, "run", too_late)
    with pytest.raises(ExportError) as caught:
        export_model(ExportOptions(model=str(ckpt), out=tmp_path / "b", quantize="fp16",
                                   engine="tensorrt", eval_windows=4))
    assert str(caught.value) == ("TensorRT engines need the tensorrt package and an NVIDIA GPU: "
                                 "pip install 'edgeser[tensorrt]' on the target device.")
    assert not (tmp_path / "b").exists()


def test_export_with_engine_fails_fast_without_a_gpu(tmp_path, monkeypatch, fake_device):
    t = fake_device.module
    from edgeser.export import ExportOptions, export_model, pipeline

    fake_device()
    monkeypatch.setattr(t, "local_gpu_info", lambda: CPU_ONLY)
    monkeypatch.setattr(pipeline.sources, "resolve",
                        lambda *a, **k: pytest.fail("went past the GPU check"))
    with pytest.raises(ExportError, match=r"^TensorRT engines are built on the device that runs "
                                          r"them, and this machine has no NVIDIA GPU"):
        export_model(ExportOptions(model="anything", out=tmp_path / "b", quantize="int8",
                                   engine="tensorrt"))


@pytest.mark.parametrize("options,message", [
    ({"quantize": "none", "engine": "tensorrt"}, "--engine tensorrt needs --quantize fp16 or int8"),
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


BLOCK_TENSORRT = ("import sys; sys.modules['tensorrt'] = None; from edgeser.cli import main; "
                  "sys.argv = ['edgeser', *sys.argv[1:]]; main()")


def cli_without_tensorrt(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EDGESER_HOME=str(env_home), HF_HUB_OFFLINE="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-c", BLOCK_TENSORRT, *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_export_with_engine_exits_1_with_one_line(tmp_path):
    export_tools()
    ckpt = tiny_checkpoint(tmp_path)
    result = cli_without_tensorrt("export", "--model", str(ckpt), "--out", str(tmp_path / "b"),
                                  "--quantize", "fp16", "--engine", "tensorrt",
                                  env_home=tmp_path / "home")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "edgeser: TensorRT engines need the tensorrt package and an NVIDIA GPU: pip install "
        "'edgeser[tensorrt]' on the target device."]
    assert not (tmp_path / "b").exists()


def test_cli_engine_with_fp32_exits_1_and_an_unknown_engine_is_a_usage_error(tmp_path):
    export_tools()
    result = cli_without_tensorrt("export", "--model", str(tmp_path / "x"), "--quantize", "none",
                                  "--engine", "tensorrt", env_home=tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "edgeser: --engine tensorrt needs --quantize fp16 or int8 (TensorRT runs reduced "
        "precision; FP32 bundles run the ONNX graph)."]
    result = cli_without_tensorrt("export", "--model", str(tmp_path / "x"), "--engine", "onnx",
                                  env_home=tmp_path / "home")
    assert result.returncode == 2
    assert "'onnx' is not an engine" in result.stderr


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_export_builds_the_engine_into_the_bundle_with_a_fake_tensorrt(tmp_path, fake_device,
                                                                       precision):
    """The pipeline's wiring, end to end except TensorRT itself: the engine is built from the
    FP32 graph for fp16 and from the bundle's (symmetric) QDQ graph for int8, lands in the
    bundle with its record, and read_engine serves it back on a matching device."""
    trt = fake_device()
    from edgeser.export import ExportOptions, export_model

    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "b"
    export_model(ExportOptions(model=str(ckpt), out=out, quantize=precision, engine="tensorrt",
                               eval_windows=4, calibration_windows=8, allow_degraded=True))
    (parsed,) = trt.calls["parsed"]
    if precision == "fp16":
        assert Path(parsed).name == "fp32.onnx"  # the scratch FP32 graph, not the bundle's
        assert Path(parsed).parent.name.startswith("edgeser-export-")
    else:
        assert Path(parsed).name == "model.onnx" and Path(parsed).parent.name.startswith(".b.tmp-")
    m = json.loads((out / "manifest.json").read_text())
    plan = f"model.h100-80gb-hbm3.{precision}.plan"
    assert m["engines"] == [{"file": plan, "precision": precision, "tensorrt": "10.3.0",
                             "cuda": "12.6", "gpu": "NVIDIA H100 80GB HBM3",
                             "compute_capability": "9.0",
                             "profile": {"input": "input_values", "batch": [1, 4, 8],
                                         "samples": [400, 48000, 48000]}}]
    assert plan in m["files"]
    if precision == "int8":
        assert m["quantization"]["recipe"].endswith("-symmetric")
    b = bundles.load(out)
    assert engines.read_engine(b, m["engines"][0], local=H100).startswith(b"FAKE-PLAN:")
    with pytest.raises(BundleError, match=f"engine {plan} was built for TensorRT 10.3.0"):
        engines.read_engine(b, m["engines"][0], local=ORIN)
