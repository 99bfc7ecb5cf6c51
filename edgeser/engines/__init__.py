"""TensorRT engines in a bundle: the record, building one on the device, and running it.

An engine is built on the device that runs it, from the bundle, without torch, through ONNX
Runtime's TensorRT execution provider and its EP-context model (:mod:`.build`):
``edgeser engine build BUNDLE``, ``edgeser export --engine tensorrt``, or the first
``detect``/``bench`` with ``--device tensorrt|jetson``. The engine and its context model go into
the bundle (``engines/<gpu>.<precision>/``) with an :class:`EngineRecord` in the manifest's
``"engines"`` list. The runtime (:mod:`.runtime`) opens a session on the context model, so it
runs exactly that engine; one that does not fit this device is refused from its record before
TensorRT deserialises it.

Modules: :mod:`.record` (the record, profile, tolerances, compatibility; standard library only,
what the manifest's validation imports), :mod:`.onnxwire` (reading ONNX files without the
``onnx`` package), :mod:`.build`, :mod:`.runtime`. None imports :mod:`edgeser.bundle`,
onnxruntime or numpy-heavy code at import time beyond numpy; bundles are read inside functions.
"""

from __future__ import annotations

from edgeser.engines.record import (CONTEXT_MODEL_NAME, ENGINE_ATOL, ENGINE_RTOL, ENGINES_DIR,
                                    MAX_BATCH, EngineError, EngineRecord, Parity, Profile, choose,
                                    engine_compatibility, engine_folder, gpu_slug,
                                    normalise_gpu_name, optimization_profile, same_target,
                                    tolerances)
from edgeser.engines.build import (BUILD_HINT, BundleFacts, EngineBuild, build_engine,
                                   build_options, check_can_build, engine_precision,
                                   runtime_options)
from edgeser.engines.runtime import (ENGINE_DEVICES, EngineCheck, EngineChoice,
                                     check_context_model, check_engines, prepare)

__all__ = [
    "BUILD_HINT", "CONTEXT_MODEL_NAME", "ENGINES_DIR", "ENGINE_ATOL", "ENGINE_DEVICES",
    "ENGINE_RTOL", "MAX_BATCH", "BundleFacts", "EngineBuild", "EngineCheck", "EngineChoice",
    "EngineError", "EngineRecord", "Parity", "Profile", "build_engine", "build_options",
    "check_can_build", "check_context_model", "check_engines", "choose", "engine_compatibility",
    "engine_folder", "engine_precision", "gpu_slug", "normalise_gpu_name",
    "optimization_profile", "prepare", "runtime_options", "same_target", "tolerances",
]
