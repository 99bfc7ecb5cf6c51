"""TensorRT engines for a bundle, built on the device that will run them.

A plan is only valid for the TensorRT version, CUDA major version and GPU that built it (see
:mod:`edgeser.engines`, which refuses a foreign one), so ``edgeser export --engine tensorrt``
runs on the target: a Jetson, or the dGPU machine that serves.

- FP16 (``--quantize fp16``): built from the FP32 ONNX graph with ``BuilderFlag.FP16``; every
  normalization, softmax and reduction layer (and layers whose ONNX name shows a LayerNorm,
  Softmax, ReduceMean, Pow or Sqrt) is pinned to FP32 with ``OBEY_PRECISION_CONSTRAINTS``:
  these are where FP16's range and rounding move wav2vec2's outputs.
- INT8 (``--quantize int8``): built from the bundle's static QDQ graph (explicit quantization:
  the calibrated scales in the graph are the ones TensorRT uses). TensorRT accepts only
  symmetric quantization (zero points 0), so :func:`engine_recipe` makes the export's
  activations symmetric; ``INT8`` and ``FP16`` are both enabled so non-quantized layers may use
  FP16, with the same FP32 pins.
- One optimization profile: batch 1..max, samples from one model frame (400) to a full window.

``tensorrt`` is imported inside the functions only. None of this has run against a real
TensorRT here; the tests drive it with a stub module (tests/test_tensorrt.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from edgeser import bundle
from edgeser.atomic import atomic_file
from edgeser.errors import ExportError
from edgeser.gpu import GpuInfo, local_gpu_info

SAMPLE_RATE_HZ = 16000
MIN_SAMPLES = 400  # one model frame (the conv stack's receptive field)
MAX_BATCH = 8
WORKSPACE_BYTES = 2 << 30
PRECISIONS = bundle.ENGINE_PRECISIONS
INSTALL_HINT = ("TensorRT engines need the tensorrt package and an NVIDIA GPU: "
                "pip install 'edgeser[tensorrt]' on the target device.")
# Layers kept in FP32 in reduced-precision engines: by TensorRT layer type name, and by the ONNX
# node name TensorRT gives the layer (LayerNorm decomposed into ReduceMean/Pow/Sqrt, or a
# module called layer_norm).
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
FP32_NAME = re.compile(r"layernorm|layer_norm|softmax|reducemean|pow|sqrt", re.IGNORECASE)
MAX_PARSER_ERRORS = 3


def optimization_profile(window_s: float, min_samples: int = MIN_SAMPLES,
                         max_batch: int = MAX_BATCH) -> dict:
    """The engine's one optimization profile for ``input_values [batch, samples]``: batch
    ``[1, max_batch // 2 or 1, max_batch]``, samples ``[min_samples, window, window]`` (a full
    window is the common case; shorter audio runs as one shorter window)."""
    window = int(round(window_s * SAMPLE_RATE_HZ))
    if not (isinstance(max_batch, int) and max_batch >= 1):
        raise ExportError(
            f"the engine's maximum batch must be a positive integer, not {max_batch!r}.")
    if not (isinstance(min_samples, int) and 1 <= min_samples <= window):
        raise ExportError(
            f"a {window_s:g} s window ({window} samples) is shorter than the engine's "
            f"minimum input of {min_samples} samples."
        )
    return {"input": bundle.INPUT_NAME, "batch": [1, max(max_batch // 2, 1), max_batch],
            "samples": [min_samples, window, window]}


def gpu_slug(gpu_name: str | None) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"h100-80gb-hbm3"`` (lowercase, ASCII, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", (gpu_name or "").lower()).strip("-")
    if slug.startswith("nvidia-") and len(slug) > len("nvidia-"):
        slug = slug[len("nvidia-"):]
    return slug or "gpu"


def engine_file_name(gpu_name: str | None, precision: str) -> str:
    """``model.<gpu-slug>.<precision>.plan``."""
    if precision not in PRECISIONS:
        raise ExportError(f"engine precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    return f"model.{gpu_slug(gpu_name)}.{precision}.plan"


def engine_recipe(recipe):
    """The INT8 recipe an engine can be built from: static QDQ with symmetric activations
    (TensorRT refuses non-zero zero points, and has no MatMulNBits or dynamic quantization).
    A non-static recipe becomes the static MinMax preset."""
    from edgeser.export.quantize import Recipe

    if recipe.method not in ("static-qdq", "fp16", "none"):
        recipe = Recipe.static()
    if recipe.method != "static-qdq" or recipe.extra.get("ActivationSymmetric") is True:
        return recipe
    return replace(recipe, name=recipe.name + "-symmetric",
                   extra={**recipe.extra, "ActivationSymmetric": True})


def _import_tensorrt():
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional, device-only dependency
    except Exception:  # ImportError, or native libraries (libnvinfer, CUDA) that fail to load
        raise ExportError(INSTALL_HINT) from None
    return trt


def _require_gpu(info: GpuInfo) -> None:
    if not info.has_gpu:
        raise ExportError(
            "TensorRT engines are built on the device that runs them, and this machine has no "
            "NVIDIA GPU (nvidia-smi finds none and it is not a Jetson); export without --engine "
            "here, or run the export on the target device."
        )


def check_available() -> GpuInfo:
    """Fail fast (ExportError, one sentence) unless TensorRT imports and a GPU is present;
    returns the device description. Called before any long export step."""
    _import_tensorrt()
    info = local_gpu_info()
    _require_gpu(info)
    return info


def check_symmetric(onnx_path: Path) -> None:
    """Refuse a QDQ graph with non-zero zero points before TensorRT does (its parser's message
    is an assertion deep in a node dump)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    offending = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = constants.get(node.input[2])
            if zero is not None and np.any(numpy_helper.to_array(zero) != 0):
                offending.append(node.name or node.output[0])
    if offending:
        raise ExportError(
            f"TensorRT accepts only symmetric INT8 (zero points 0), but {len(offending)} "
            f"quantize/dequantize nodes of {onnx_path.name} have non-zero zero points "
            f"(first: {offending[0]}); quantize with symmetric activations."
        )


def _make_logger(trt):
    """A TensorRT logger that keeps errors for our one-sentence message instead of printing."""

    class _Collecting(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg).strip())

    return _Collecting()


def _first_error(logger) -> str:
    return f" ({logger.errors[0]})" if getattr(logger, "errors", None) else ""


def _create_network(trt, builder):
    """An explicit-batch network (the default from TensorRT 10; a flag before it)."""
    major = int(re.match(r"\d+", getattr(trt, "__version__", "10")).group(0))
    flags = 0
    if major < 10 and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return
    errors = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        desc = error.desc() if hasattr(error, "desc") else str(error)
        errors.append(" ".join(str(desc).split()))
    shown = "; ".join(errors[:MAX_PARSER_ERRORS]) or "no message"
    more = f" and {len(errors) - MAX_PARSER_ERRORS} more" if len(errors) > MAX_PARSER_ERRORS else ""
    raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {shown}{more}.")


def _is_float(trt, dtype) -> bool:
    return dtype in (trt.float32, trt.float16)


def pin_fp32_layers(trt, network) -> list[str]:
    """Pin normalization, softmax and reduction layers (by type, or by ONNX name) to FP32:
    computation and floating-point outputs. Returns the pinned layers' names."""
    pinned_types = tuple(getattr(trt.LayerType, name) for name in FP32_LAYER_TYPES
                         if hasattr(trt.LayerType, name))
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type not in pinned_types and not FP32_NAME.search(layer.name or ""):
            continue
        outputs = [j for j in range(layer.num_outputs)
                   if _is_float(trt, layer.get_output(j).dtype)]
        if not outputs:  # shape arithmetic on integers: nothing to keep in FP32
            continue
        layer.precision = trt.float32
        for j in outputs:
            layer.set_output_type(j, trt.float32)
        pinned.append(layer.name)
    return pinned


def _input_names(network) -> list[str]:
    return [network.get_input(i).name for i in range(network.num_inputs)]


def _configure(trt, builder, network, precision: str, profile: dict, workspace_bytes: int):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":  # explicit quantization: the QDQ scales decide, not a calibrator
        config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    name = profile["input"]
    if name not in _input_names(network):
        raise ExportError(f"the ONNX graph has no input {name!r} (it has {_input_names(network)}).")
    shapes = [(profile["batch"][k], profile["samples"][k]) for k in range(3)]
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(name, *shapes)
    config.add_optimization_profile(trt_profile)
    return config


def _write_atomically(data, plan_path: Path) -> None:
    with atomic_file(plan_path, binary=True) as f:
        f.write(data)


def _check_loads(trt, logger, plan_path: Path) -> None:
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise ExportError(
            f"TensorRT built {plan_path.name} but cannot load it back{_first_error(logger)}."
        )
    names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
    wanted = {bundle.INPUT_NAME, *bundle.OUTPUT_NAMES}
    if not wanted <= names:
        raise ExportError(
            f"the TensorRT engine {plan_path.name} lacks {', '.join(sorted(wanted - names))}."
        )


def _major_minor(version: str | None) -> str:
    numbers = re.findall(r"\d+", version or "")
    return ".".join(numbers[:2]) if len(numbers) >= 2 else (version or "unknown")


def build_engine(onnx_path: Path, plan_path: Path, *, precision: str, profile: dict,
                 workspace_bytes: int = WORKSPACE_BYTES, check_load: bool = True) -> dict:
    """Build a TensorRT engine from ``onnx_path`` into ``plan_path`` (written atomically) and
    return its manifest record (see :mod:`edgeser.engines`). ExportError, one sentence, when
    TensorRT or a GPU is missing, the graph does not parse or the build fails."""
    if precision not in PRECISIONS:
        raise ExportError(f"engine precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    trt = _import_tensorrt()
    info = local_gpu_info()
    _require_gpu(info)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if precision == "int8":
        check_symmetric(onnx_path)
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    network = _create_network(trt, builder)
    _parse(trt, network, logger, onnx_path)
    pin_fp32_layers(trt, network)
    config = _configure(trt, builder, network, precision, profile, workspace_bytes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(
            f"TensorRT could not build a {precision} engine from {onnx_path.name}"
            f"{_first_error(logger)}."
        )
    _write_atomically(serialized, plan_path)
    if check_load:
        _check_loads(trt, logger, plan_path)
    return {
        "file": plan_path.name,
        "precision": precision,
        "tensorrt": str(trt.__version__),
        "cuda": _major_minor(info.cuda),
        "gpu": info.device_name,
        "compute_capability": info.compute_capability or "unknown",
        "profile": {"input": profile["input"], "batch": list(profile["batch"]),
                    "samples": list(profile["samples"])},
    }


def build_for_bundle(onnx_path: Path, bundle_dir: Path, *, precision: str, window_s: float,
                     min_samples: int = MIN_SAMPLES) -> dict:
    """Build this device's engine into a bundle being staged; returns the manifest record."""
    info = local_gpu_info()
    plan = Path(bundle_dir) / engine_file_name(info.device_name, precision)
    return build_engine(onnx_path, plan, precision=precision,
                        profile=optimization_profile(window_s, min_samples))
