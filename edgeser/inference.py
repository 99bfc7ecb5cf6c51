"""ONNX Runtime sessions on a bundle's graph: the only place the runtime talks to ONNX Runtime.

:class:`Session` owns one ``InferenceSession`` and runs batches of normalised 16 kHz windows to
``(logits, embedding)``. ONNX Runtime sessions are safe to call from several threads at once, and
this wrapper keeps no per-call state, so one :class:`Session` serves concurrent callers.

Memory settings (:class:`SessionSettings`): windows come in several lengths (full windows, one
short tail window per file, ``--window`` overrides). ONNX Runtime's memory-pattern planner
prepares buffers for one input shape and is of no use when shapes change, so it is off; the CPU
arena stays on: measured on the full-size 12-layer model (``benchmarks/detect_memory.py``,
RESULTS.md section ``detect-memory``), resident memory is flat from the first round of mixed
window lengths on with every setting, and arena without the planner has the lowest peak, while
no arena at all peaks higher (the allocator's churn). ``--verbose`` prints the settings in use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edgeser.contract import INPUT_NAME, OUTPUT_NAMES
from edgeser.errors import BundleError

if TYPE_CHECKING:  # the runtime needs only the bundle's path and graph
    from edgeser.bundle import Bundle

__all__ = ["Session", "SessionSettings", "create_session", "default_threads"]


def default_threads() -> int:
    """Threads for one inference: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SessionSettings:
    """How a session runs. ``threads``: ONNX Runtime intra-op threads (one inference spread over
    this many cores); ``arena`` and ``memory_pattern``: see the module docstring."""

    threads: int
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    provider_options: tuple[dict, ...] = field(default=({},), hash=False, compare=False)
    arena: bool = True
    memory_pattern: bool = False
    optimization: str = "all"

    def describe(self) -> str:
        shown = {k: v for k, v in asdict(self).items() if k != "provider_options"}
        shown["providers"] = ",".join(self.providers)
        return ", ".join(f"{k}={v}" for k, v in shown.items())


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def create_session(path: str, sess_options: Any, providers: list[str],
                   provider_options: list[dict]) -> Any:
    """``onnxruntime.InferenceSession`` on the ONNX file ``path``: the one place sessions are
    made (running a bundle, and building a TensorRT engine, see :mod:`edgeser.engines`), so
    tests can stand in for providers this machine lacks."""
    import onnxruntime as ort

    return ort.InferenceSession(path, sess_options=sess_options, providers=providers,
                                provider_options=provider_options)


class Session:
    """One ONNX Runtime session on ``bundle``'s full graph, or on ``graph`` (a TensorRT
    engine's context model in the bundle, see :func:`edgeser.engines.prepare`).
    ``session_factory`` defaults to :func:`create_session`."""

    def __init__(self, bundle: "Bundle", settings: SessionSettings, *,
                 graph: str | os.PathLike | None = None,
                 session_factory: Callable[..., Any] | None = None):
        import onnxruntime as ort

        if settings.threads < 1:
            raise ValueError(f"threads must be at least 1, got {settings.threads}")
        if len(settings.providers) != len(settings.provider_options):
            raise ValueError("provider_options must hold one dict per provider")
        self.bundle = bundle
        self.settings = settings
        graph = Path(bundle.graph_path("full") if graph is None else graph)
        self.graph = graph
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_cpu_mem_arena = settings.arena
        options.enable_mem_pattern = settings.memory_pattern
        options.log_severity_level = 3
        factory = create_session if session_factory is None else session_factory
        try:
            self._session = factory(str(graph), options, list(settings.providers),
                                    [dict(o) for o in settings.provider_options])
        except Exception as err:  # ONNX Runtime raises its own pybind exception types
            raise BundleError(
                f"model bundle {bundle.path}: ONNX Runtime cannot load {graph.name} "
                f"({_first_line(err)})."
            ) from None
        self._check_io()
        # A window's result must not depend on its batch companions: graphs with per-call
        # activation scales (dynamic INT8) are run one window per call.
        self._one_per_call = not bundle.manifest.quantization.batch_independent

    def _check_io(self) -> None:
        inputs = {i.name for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= outputs:
            raise BundleError(
                f"model bundle {self.bundle.path}: {self.graph.name} must take {INPUT_NAME} and "
                f"give {' and '.join(OUTPUT_NAMES)} (it takes {sorted(inputs)} and gives "
                f"{sorted(outputs)})."
            )

    @property
    def providers(self) -> list[str]:
        """The execution providers ONNX Runtime actually uses, in priority order."""
        return list(self._session.get_providers())

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits [batch, n], embedding [batch, hidden])`` for normalised windows
        ``[batch, samples]`` (all the same length)."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self._one_per_call and len(x) > 1:
            parts = [self.run(x[i:i + 1]) for i in range(len(x))]
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        try:
            logits, embedding = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        except Exception as err:  # ONNX Runtime raises its own pybind exception types
            raise BundleError(
                f"model bundle {self.bundle.path}: inference failed on a batch of shape "
                f"{x.shape} ({_first_line(err)})."
            ) from None
        return np.asarray(logits), np.asarray(embedding)

    def raw(self) -> Any:
        """The underlying ``onnxruntime.InferenceSession`` (for benchmarks and diagnostics)."""
        return self._session
