"""The loaded model: one :class:`~edgeser.detector.Detector` shared by every stream, its batching
scheduler, per-stream settings, and reloading.

Per-stream settings (threshold, operating point, window, hop, ...) change how audio is cut and
how events are formed, never the ONNX session, so all streams share the detector's one session:
:meth:`Detector.with_settings` gives each stream exactly the settings, messages and ``run_info``
that ``edgeser detect`` with the same flags would, and :meth:`Detector.stream` takes the
scheduler's inference call in place of the session's.

Reloading builds a new detector from the same path; streams opened before keep the model they
started with until they end (their ``run`` record stays true), new streams get the new one. The
old model's scheduler stops when its last stream ends.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from edgeser.detector import Detector
from edgeser.results import RunInfo
from edgeser.serve.batching import Batcher
from edgeser.streaming import DetectionStream


class LoadedModel:
    """A detector, its scheduler and how many streams use it."""

    def __init__(self, detector: Detector, generation: int, *, batch_wait_s: float):
        self.detector = detector
        self.generation = generation
        self.loaded_at = time.time()
        self.batcher = Batcher(detector.session.run, max_batch=detector.options.batch_size,
                               wait_s=batch_wait_s, name=f"edgeser-batcher-{generation}")
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False

    @property
    def run_info(self) -> RunInfo:
        return self.detector.run_info

    def open(self, rate_hz: int, channels: int, source: str,
             overrides: dict[str, Any]) -> tuple[DetectionStream, RunInfo]:
        """A live stream on this model with ``overrides`` (DetectionOptions fields); raises
        :class:`~edgeser.errors.EdgeserError` for settings or formats the detector refuses."""
        view = self.detector.with_settings(**overrides)
        stream = view.stream(rate_hz, channels, source=source, live=True, run=self.batcher.run)
        run_info = view.run_info
        with self._lock:
            self._users += 1
        return stream, run_info

    def release(self) -> None:
        """A stream of this model ended."""
        with self._lock:
            self._users -= 1
            done = self._retired and self._users == 0
        if done:
            self.batcher.stop()

    def retire(self) -> None:
        """A newer model took over: stop once the last stream ends."""
        with self._lock:
            self._retired = True
            done = self._users == 0
        if done:
            self.batcher.stop()

    def describe(self) -> dict[str, Any]:
        b = self.batcher
        return {
            "generation": self.generation,
            "model_id": self.detector.bundle.model_id,
            "bundle": str(self.detector.bundle.path),
            "task": self.detector.bundle.task,
            "providers": list(self.detector.session.providers),
            "loaded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "inference": {"calls": b.calls, "windows": b.rows, "max_batch": b.max_rows,
                          "mean_batch": round(b.rows / b.calls, 3) if b.calls else None},
        }
