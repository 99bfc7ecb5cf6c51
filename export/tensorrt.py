"""``edgeser export --engine tensorrt``: the export's side of TensorRT engines.

The engine itself is built by the runtime, from the written bundle, with the function
``edgeser engine build`` uses (:func:`edgeser.engines.build_engine`: ONNX Runtime's TensorRT
provider and its EP-context model), so whatever the export writes is what the runtime runs. What
is left here is what only the export can do: make the INT8 graph TensorRT can take
(:func:`engine_recipe`), and fail fast, before the long export steps, where this machine cannot
build an engine (:func:`check_available`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgeser.contract import ENGINE_PRECISIONS
from edgeser.errors import EdgeserError, ExportError
from edgeser.gpu import GpuInfo

PRECISIONS = ENGINE_PRECISIONS


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


def _export_error(err: EdgeserError) -> ExportError:
    return ExportError(str(err))


def check_available() -> GpuInfo:
    """Fail fast (ExportError, one sentence) unless this machine can build a TensorRT engine
    (ONNX Runtime's TensorRT provider, an NVIDIA GPU, TensorRT); returns the device."""
    from edgeser import engines

    try:
        return engines.check_can_build()
    except engines.EngineError as err:
        raise _export_error(err) from None


def build_for_bundle(bundle_dir: Path, precision: str | None = None):
    """Build this device's engine (``precision``, default the bundle's: int8 for a static INT8
    bundle, else fp16) into the written bundle at ``bundle_dir``; returns the
    :class:`edgeser.engines.EngineBuild`. ExportError (one sentence) on failure;
    the bundle then stays as written, without an engine."""
    from edgeser import engines

    try:
        return engines.build_engine(bundle_dir, precision)
    except EdgeserError as err:
        raise ExportError(f"{str(err).rstrip('.')}; the bundle at {bundle_dir} was written "
                          f"without it (`edgeser engine build {bundle_dir}` builds it later)."
                          ) from None
