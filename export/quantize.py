"""Weight and activation precision for bundles: named recipes, applied with ONNX Runtime's
quantization tools, recorded in the manifest.

Recipes are presets built by named constructors; each says which operators are quantized, how
(dynamic, or static QDQ with calibrated activation ranges), per-channel or per-tensor weights,
and which nodes stay float. A bundle's manifest carries the recipe it was made with.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeser.errors import ExportError
from edgeser.contract import INPUT_NAME

# Nodes whose quantization costs most accuracy for little time, kept float by the default:
# the first conv sees raw samples (a wide dynamic range in one channel); the positional conv is
# a 128-tap grouped conv whose output is added to every frame.
FIRST_CONV = r"/feature_extractor/conv_layers\.0/conv/Conv$"
POSITIONAL_CONV = r"/pos_conv_embed/conv/Conv$"
# Attention's activation-by-activation products (scores and context) have no weights to
# quantize; quantizing both inputs at runtime costs accuracy and saves little.
ATTENTION_PRODUCTS = r"/attention/MatMul(_\d+)?$"
# The feature extractor's convolutions that the INT8 conv stage quantizes: layers 1-4 hold 95%
# of its multiply-adds. Layers 5-6 (the last, short ones) moved the smallest-variance output
# most per MAC saved on the full-size model, and layer 0 sees raw samples.
INT8_CONVS = r"/feature_extractor/conv_layers\.[1-4]/conv/Conv$"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Recipe:
    """How to reduce precision; ``manifest()`` is what the bundle records."""

    name: str
    method: str  # none | dynamic | static-qdq | fp16
    ops: tuple = ()
    per_channel: bool = False
    calibration: str | None = None  # minmax | entropy | percentile (static only)
    percentile: float = 99.999
    float_nodes: tuple = ()  # regexes of node names kept in float
    # Static INT8 convolutions (uint8 activations, per-channel int8 weights, calibrated) before
    # the MatMul stage: the conv front end is a third of a window's time in float.
    int8_convs: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def none(cls) -> "Recipe":
        return cls("fp32", "none")

    @classmethod
    def dynamic_matmul(cls, per_channel: bool = False) -> "Recipe":
        """ONNX Runtime's dynamic INT8 of MatMul weights; activation scales per call (so a
        window's result depends on its batch companions)."""
        return cls("dynamic-matmul" + ("-per-channel" if per_channel else ""), "dynamic",
                   ops=("MatMul",), per_channel=per_channel)

    @classmethod
    def static(cls, *, ops: tuple = ("MatMul", "Conv"), per_channel: bool = True,
               calibration: str = "minmax", float_nodes: tuple = (FIRST_CONV, POSITIONAL_CONV),
               percentile: float = 99.999, name: str | None = None) -> "Recipe":
        """Static QDQ INT8: weights and activations with scales fixed at export from calibration
        audio, so a window's result does not depend on its batch companions."""
        if calibration not in CALIBRATION_METHODS:
            raise ExportError(f"calibration {calibration!r} is not one of {', '.join(CALIBRATION_METHODS)}.")
        float_nodes = tuple(float_nodes) + (ATTENTION_PRODUCTS,)
        label = name or ("static-" + "-".join(o.lower() for o in ops) + f"-{calibration}"
                         + ("-per-channel" if per_channel else ""))
        return cls(label, "static-qdq", ops=tuple(ops), per_channel=per_channel,
                   calibration=calibration, float_nodes=float_nodes, percentile=percentile)

    @classmethod
    def blockwise(cls, block_size: int = 32, accuracy_level: int = 4) -> "Recipe":
        """INT8 MatMul weights in blocks of ``block_size`` along the input dimension
        (ONNX Runtime's MatMulNBits); at accuracy level 4 activations are quantized per row
        and block as each call runs and the products are int8 dot products. The scales follow
        the data this finely, so no calibration is needed, and each row is quantized on its
        own, so a window's result does not depend on its batch companions."""
        return cls(f"blockwise-int8-b{block_size}", "matmul-nbits", ops=("MatMul",),
                   extra={"block_size": block_size, "accuracy_level": accuracy_level})

    @classmethod
    def fp16(cls) -> "Recipe":
        """Half-precision weights and activations (LayerNorm, Softmax and reductions kept FP32)."""
        return cls("fp16", "fp16")

    def with_int8_convs(self) -> "Recipe":
        """The same MatMul recipe after static INT8 convolutions (feature extractor layers 1-4,
        INT8_CONVS). uint8 activations with int8 weights is the pairing x86 (VNNI and AVX2)
        and ARM's dot-product kernels run fastest."""
        return replace(self, name=self.name + "-conv", int8_convs=True)

    @property
    def needs_calibration(self) -> bool:
        return self.method == "static-qdq" or self.int8_convs

    def keeping_float(self, *patterns: str) -> "Recipe":
        """The same recipe with more nodes kept float (mixed precision)."""
        return replace(self, name=self.name + f"+{len(patterns)}float",
                       float_nodes=self.float_nodes + tuple(patterns))

    def manifest(self, calibration: dict | None = None, float_node_names: list | None = None) -> dict:
        record = {"recipe": self.name, "method": self.method, "ops": list(self.ops),
                  "per_channel": self.per_channel, "weights": "int8" if self.method in
                  ("dynamic", "static-qdq", "matmul-nbits") else self.method.replace("none", "fp32")}
        if self.method == "matmul-nbits":
            record.update(activations="int8, per row and block, computed at run time",
                          block_size=self.extra["block_size"],
                          accuracy_level=self.extra["accuracy_level"])
        if self.method == "static-qdq":
            symmetric = ", symmetric" if self.extra.get("ActivationSymmetric") else ""
            record.update(activations="int8" + symmetric, calibration_method=self.calibration,
                          float_node_patterns=list(self.float_nodes))
            if self.calibration == "percentile":
                record["percentile"] = self.percentile
        if self.int8_convs:
            record["convs"] = {"weights": "int8, per channel", "activations": "uint8, static",
                               "calibration_method": "minmax", "quantized": INT8_CONVS}
        if calibration is not None:
            record["calibration"] = calibration
        if float_node_names is not None:
            record["float_nodes"] = float_node_names
        return record


def _node_names(model_path: Path) -> list:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node]


def matching_nodes(model_path: Path, patterns: tuple, ops: tuple | None = None) -> list:
    compiled = [re.compile(p) for p in patterns]
    return [name for name, op in _node_names(model_path)
            if (ops is None or op in ops) and any(c.search(name) for c in compiled)]


class _Windows:
    """ONNX Runtime CalibrationDataReader over normalised windows, one per call."""

    def __init__(self, windows):
        self._iter = iter(windows)

    def get_next(self):
        window = next(self._iter, None)
        return None if window is None else {INPUT_NAME: window[None, :].astype(np.float32)}

    def rewind(self):  # pragma: no cover - not used by the calibrators we call
        raise NotImplementedError


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantizer logs advice on the root logger; keep it off the user's stderr."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _merge_every(n_windows: int) -> int:
    """Windows between range merges: bounds calibration memory (a 3 s window of the full-size
    model yields hundreds of MB of activations). ONNX Runtime's calibrator fails when the
    count divides the number of windows exactly (nothing left for its final merge)."""
    return next(k for k in (4, 5, 3, 7, 11) if n_windows % k != 0)


def quantize(fp32: Path, out: Path, recipe: Recipe, calibration_windows=(),
             calibration_cache: Path | None = None) -> list:
    """Write ``recipe`` applied to ``fp32`` at ``out``; returns the node names kept float.

    With ``calibration_cache`` (static recipes), activation ranges are computed once and
    reused by later calls with the same cache (mixed-precision search)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    if recipe.method == "fp16":
        _to_fp16(fp32, out)
        return []
    if recipe.int8_convs:
        staged = out.with_name(out.stem + ".convs.onnx")
        try:
            _static_convs(fp32, staged, calibration_windows, calibration_cache)
            return quantize(staged, out, replace(recipe, int8_convs=False))
        finally:
            staged.unlink(missing_ok=True)
    kept = matching_nodes(fp32, recipe.float_nodes, recipe.ops) if recipe.float_nodes else []
    if recipe.method == "matmul-nbits":
        _blockwise(fp32, out, recipe, kept)
        return kept
    if recipe.method == "dynamic":
        with _quiet_root_logger():
            quantize_dynamic(str(fp32), str(out), op_types_to_quantize=list(recipe.ops),
                             per_channel=recipe.per_channel, weight_type=QuantType.QInt8,
                             nodes_to_exclude=kept)
        return kept
    if recipe.method != "static-qdq":
        raise ExportError(f"recipe {recipe.name} has unknown method {recipe.method}.")
    cached = calibration_cache is not None and Path(calibration_cache).is_file()
    if not len(calibration_windows) and not cached:
        raise ExportError("static quantization needs calibration audio.")
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe.calibration]
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True,
             "CalibMaxIntermediateOutputs": _merge_every(max(len(calibration_windows), 1))}
    if recipe.calibration == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    extra.update(recipe.extra)
    with _quiet_root_logger():
        quantize_static(
            str(fp32), str(out), _Windows(calibration_windows), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(recipe.ops), per_channel=recipe.per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
            calibrate_method=method, extra_options=extra,
            calibration_cache_path=str(calibration_cache) if calibration_cache else None,
        )
    return kept


def _static_convs(fp32: Path, out: Path, calibration_windows, calibration_cache) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    convs = matching_nodes(fp32, (INT8_CONVS,), ("Conv",))
    cached = calibration_cache is not None and Path(calibration_cache).is_file()
    if not len(calibration_windows) and not cached:
        raise ExportError("INT8 convolutions need calibration audio.")
    with _quiet_root_logger():
        quantize_static(
            str(fp32), str(out), _Windows(calibration_windows), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"], nodes_to_quantize=convs,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                           "CalibMaxIntermediateOutputs": _merge_every(max(len(calibration_windows), 1))},
            calibration_cache_path=str(calibration_cache) if calibration_cache else None,
        )


def _blockwise(fp32: Path, out: Path, recipe: Recipe, kept: list) -> None:
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as err:  # pragma: no cover - onnx-ir comes with the export extra
        raise ExportError(f"blockwise INT8 needs onnxruntime's MatMulNBits tools ({err}).") from None
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32)), bits=8, block_size=recipe.extra["block_size"], is_symmetric=True,
        accuracy_level=recipe.extra["accuracy_level"], nodes_to_exclude=kept,
        op_types_to_quantize=tuple(recipe.ops),
    )
    with _quiet_root_logger():
        quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


def _to_fp16(fp32: Path, out: Path) -> None:
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as err:  # pragma: no cover
        raise ExportError(f"FP16 conversion needs onnxruntime's transformer tools ({err}).") from None
    model = onnx.load(str(fp32))
    converted = convert_float_to_float16(
        model, keep_io_types=True,
        op_block_list=["LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Erf"],
    )
    onnx.save(converted, str(out))


# Named presets (``--recipe``). Without one, export tries the candidates of targets.CANDIDATES
# fastest first and keeps the first that holds the fidelity gate (recipe_search.py).
RECIPES = {
    "blockwise-int8": Recipe.blockwise,
    # The MatMul recipes after static INT8 convolutions (candidates of --target).
    "dynamic-int8-conv": lambda: Recipe.dynamic_matmul().with_int8_convs(),
    "blockwise-int8-conv": lambda: Recipe.blockwise().with_int8_convs(),
    "blockwise-int8-b128": lambda: Recipe.blockwise(block_size=128),
    # static-minmax, then layers kept float by measured sensitivity until the target is met
    "static-mixed": lambda: Recipe.static(name="static-mixed"),
    "static-minmax": Recipe.static,
    # Symmetric activations (zero points 0): the static INT8 TensorRT takes, so an INT8 engine
    # can be built later on the device (`edgeser engine build BUNDLE --precision int8`).
    "static-symmetric": lambda: replace(Recipe.static(name="static-symmetric"),
                                        extra={"ActivationSymmetric": True}),
    "static-percentile": lambda: Recipe.static(calibration="percentile"),
    "static-entropy": lambda: Recipe.static(calibration="entropy"),
    "static-matmul": lambda: Recipe.static(ops=("MatMul",)),
    "dynamic-matmul": Recipe.dynamic_matmul,
    "dynamic-matmul-per-channel": lambda: Recipe.dynamic_matmul(per_channel=True),
}
# What an engine export starts from (engine_recipe turns it into the static INT8 TensorRT takes).
DEFAULT_RECIPE = "blockwise-int8"
