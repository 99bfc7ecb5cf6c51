"""The Python API of detection: :class:`Detector`.

::

    from edgeser import Detector
    detector = Detector.load("bundles/msp-dim")          # or Detector.load() for the default model
    result = detector.detect_file("talk.wav")            # DetectionResult
    result = detector.detect(samples, rate_hz=48000)     # a NumPy array, mono or (frames, channels)
    stream = detector.stream(rate_hz=48000)              # live audio
    for chunk in chunks:
        step = stream.feed(chunk)                        # windows completed by this chunk
    last = stream.close()                                # last windows, events and the FileEnd

A detector holds one ONNX Runtime session and no per-call state, so several threads may call
:meth:`Detector.detect_file` and :meth:`Detector.detect` on one detector at once; a stream object
belongs to one thread at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeser import audio, bundle as bundles, devices, engines, frontend, vad
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import BundleError, DetectionError
from edgeser.events import EventSettings, EventTracker
from edgeser.inference import Session, SessionSettings, default_threads
from edgeser.results import DetectionResult, Event, RunInfo, WindowResult
from edgeser.scoring import Scorer
from edgeser.streaming import DetectionStream, StreamConfig

__all__ = ["DEFAULT_MODEL_ID", "DEFAULT_REVISION", "DetectionOptions", "Detector",
           "default_bundle_path"]

DEFAULT_MODEL_ID = "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
DEFAULT_REVISION = "main"
# Windows per inference call in file mode: enough to amortise per-call overhead, small enough
# that activations of a batch of 3 s windows stay in tens of MB.
DEFAULT_BATCH_SIZE = 8
# Laughter: one laugh bout often has short breaths in it; half a second bridges them without
# joining separate laughs. No minimum duration by default: the shortest event is one window.
DEFAULT_MERGE_GAP_S = 0.5
DEFAULT_MIN_DURATION_S = 0.0


def default_bundle_path() -> Path:
    """Where the default model's bundle lives (``$EDGESER_HOME/bundles/...``)."""
    return bundles.default_bundle_dir(DEFAULT_MODEL_ID, DEFAULT_REVISION)


def export_command(model: str = DEFAULT_MODEL_ID) -> str:
    """The command that creates the bundle :meth:`Detector.load` looks for by default."""
    return f"edgeser export --model {model}"


@dataclass(frozen=True)
class DetectionOptions:
    """Settings of a detector; None means the bundle's value (or the default named beside it).

    ``threshold`` and ``operating_point`` (a name from the bundle) are exclusive; both apply to
    laughter bundles only, as do ``min_duration_s``, ``merge_gap_s`` and ``release`` (hysteresis: an
    event that started goes on through windows at or above ``release``, at most the threshold;
    None means the threshold, no hysteresis). ``vad`` gates windows by voice activity: those
    whose speech fraction is below ``min_speech`` are reported as non-speech, not scored (None:
    the bundle's setting; a ``min_speech`` alone turns the gate on). ``denoise`` runs the noise
    suppressor on the 16 kHz stream before windowing. ``device`` is a profile
    of :mod:`edgeser.devices` (``cpu``, ``cuda``, ``tensorrt``, ``jetson``; None picks the best
    this machine has); ``fallback`` runs on what is there when its provider is missing.
    """

    threads: int | None = None
    window_s: float | None = None
    hop_s: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    silence_dbfs: float | None = None
    threshold: float | None = None
    operating_point: str | None = None
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    merge_gap_s: float = DEFAULT_MERGE_GAP_S
    release: float | None = None
    vad: bool | None = None
    min_speech: float | None = None
    denoise: bool | None = None
    embeddings: bool = False  # scored windows carry their pooled embedding (WindowResult)
    arena: bool = True
    device: str | None = None
    fallback: bool = False


class Detector:
    """Emotion or laughter detection with one bundle. Build it with :meth:`load`."""

    def __init__(self, model: bundles.Bundle, options: DetectionOptions = DetectionOptions()):
        self.bundle = model
        self.options = options
        self._normalize = model.manifest.normalization.per_window
        self._window, self._hop = self._window_hop(options)
        if isinstance(options.batch_size, bool) or not isinstance(options.batch_size, int) \
                or options.batch_size < 1:
            raise DetectionError(f"batch size must be a positive integer, got {options.batch_size!r}.")
        self._events = self._event_settings(options)
        self._silence_dbfs = model.silence_dbfs if options.silence_dbfs is None \
            else float(options.silence_dbfs)
        self._min_speech, self._new_denoiser = self._gating(options)
        self.scorer = Scorer(model.labels, model.manifest.logits.kind)
        threads = default_threads() if options.threads is None else options.threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise DetectionError(f"threads must be a positive integer, got {threads!r}.")
        # tensorrt/jetson run the bundle's engine for this GPU (built once on first use).
        self.engine = engines.prepare(
            model, devices.resolve_device(options.device, fallback=options.fallback),
            fallback=options.fallback, batch=options.batch_size, samples=self._window)
        self.device = self.engine.device
        self.session = Session(model, SessionSettings(
            threads=threads, providers=self.device.providers,
            provider_options=self.device.provider_options, arena=options.arena),
            graph=self.engine.graph)

    @classmethod
    def load(cls, path: str | os.PathLike | bundles.Bundle | None = None, *,
             options: DetectionOptions | None = None, **settings: Any) -> "Detector":
        """Open a bundle (a directory, a loaded :class:`~edgeser.bundle.Bundle`, or None for the
        default model's bundle) and build a detector. ``settings`` are
        :class:`DetectionOptions` fields, e.g. ``threads=2`` or ``operating_point="high-precision"``.
        """
        if options is not None and settings:
            raise TypeError("pass either options= or keyword settings, not both")
        options = options or DetectionOptions(**settings)
        if isinstance(path, bundles.Bundle):
            return cls(path, options)
        if path is None:
            path = default_bundle_path()
            if not (path / bundles.MANIFEST).is_file():
                raise BundleError(
                    f"no model bundle at {path}; create it with `{export_command()}` (needs "
                    "pip install 'edgeser[export]' and the hub), or pass a bundle directory."
                )
        return cls(bundles.load(path), options)

    # -- settings ------------------------------------------------------------------------------

    def _window_hop(self, options: DetectionOptions) -> tuple[int, int]:
        window_s = self.bundle.window_s if options.window_s is None else options.window_s
        hop_s = self.bundle.hop_s if options.hop_s is None else options.hop_s
        try:
            window = frontend.seconds_to_samples(window_s, "window")
            hop = frontend.seconds_to_samples(hop_s, "hop")
        except frontend.FrontendError as err:
            raise DetectionError(f"{err}.") from None
        if hop > window:
            raise DetectionError(f"the hop ({hop / SAMPLE_RATE_HZ:g} s) must not be longer than "
                                 f"the window ({window / SAMPLE_RATE_HZ:g} s).")
        if window < self.bundle.min_samples:
            raise DetectionError(f"the window ({window / SAMPLE_RATE_HZ:g} s) is shorter than the "
                                 f"model's {self.bundle.min_samples}-sample receptive field.")
        return window, hop

    def _event_settings(self, options: DetectionOptions) -> EventSettings | None:
        laughter = self.bundle.task == "laughter"
        if not laughter:
            if (options.threshold is not None or options.operating_point is not None
                    or options.release is not None):
                raise DetectionError(
                    f"thresholds, release thresholds and operating points apply to laughter "
                    f"bundles; "
                    f"{self.bundle.path} holds a model for {self.bundle.task}."
                )
            return None
        if options.threshold is not None and options.operating_point is not None:
            raise DetectionError("give a threshold or an operating point, not both.")
        points = self.bundle.operating_points
        if options.threshold is not None:
            threshold = float(options.threshold)
            if not (math.isfinite(threshold) and 0 < threshold < 1):
                raise DetectionError(f"the threshold must be a probability in (0, 1), got "
                                     f"{options.threshold!r}.")
        else:
            name = options.operating_point or self.bundle.default_operating_point
            if name not in points:
                raise DetectionError(
                    f"{self.bundle.path} has no operating point {name!r}; it has "
                    f"{', '.join(f'{k} ({v:g})' for k, v in points.items())}."
                )
            threshold = points[name]
        for what, value in (("minimum duration", options.min_duration_s),
                            ("merge gap", options.merge_gap_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise DetectionError(f"the {what} must be a non-negative number of seconds, "
                                     f"got {value!r}.")
        release = None
        if options.release is not None:
            release = float(options.release)
            if not (math.isfinite(release) and 0 < release <= threshold):
                raise DetectionError(f"the release threshold must be a probability in (0, "
                                     f"{threshold:g}] (at most the threshold), got "
                                     f"{options.release!r}.")
        return EventSettings(self.bundle.positive_label, threshold,
                             round(options.min_duration_s * SAMPLE_RATE_HZ),
                             round(options.merge_gap_s * SAMPLE_RATE_HZ), release)

    def _gating(self, options: DetectionOptions) -> tuple[float | None, Callable | None]:
        """(minimum speech fraction, or None without voice activity gating; the noise
        suppressor's constructor, or None), with the VAD model loaded and checked and the
        suppressor tried, so a missing piece is said now."""
        defaults = self.bundle.manifest
        if options.vad is False and options.min_speech is not None:
            raise DetectionError("a minimum speech fraction needs voice activity gating; drop "
                                 "--no-vad or --min-speech.")
        enabled = defaults.vad.enabled if options.vad is None else options.vad
        min_speech = None
        if enabled or options.min_speech is not None:
            min_speech = options.min_speech
            if min_speech is None:
                min_speech = defaults.vad.min_speech
            if min_speech is None:
                min_speech = vad.default_min_speech(self.bundle.task)
            if isinstance(min_speech, bool) or not isinstance(min_speech, (int, float)) \
                    or not 0 <= min_speech <= 1:
                raise DetectionError(f"the minimum speech fraction must be a number from 0 to 1, "
                                     f"got {min_speech!r}.")
            min_speech = float(min_speech)
            vad.load_model()
        denoise = defaults.denoise if options.denoise is None else bool(options.denoise)
        return min_speech, _noise_suppressor() if denoise else None

    @property
    def window_s(self) -> float:
        return self._window / SAMPLE_RATE_HZ

    @property
    def hop_s(self) -> float:
        return self._hop / SAMPLE_RATE_HZ

    @property
    def threshold(self) -> float | None:
        return None if self._events is None else self._events.threshold

    @property
    def run_info(self) -> RunInfo:
        o, e = self.options, self._events
        operating_point = None
        if e is not None and o.threshold is None:
            operating_point = o.operating_point or self.bundle.default_operating_point
        return RunInfo(
            model_id=self.bundle.model_id, bundle=str(self.bundle.path), task=self.bundle.task,
            labels=self.bundle.labels, logits_kind=self.scorer.kind, window_s=self.window_s,
            hop_s=self.hop_s, silence_dbfs=self._silence_dbfs,
            positive_label=self.bundle.positive_label if e else None,
            threshold=e.threshold if e else None, operating_point=operating_point,
            min_duration_s=o.min_duration_s if e else None,
            merge_gap_s=o.merge_gap_s if e else None,
            release=e.release if e else None,
            vad=self._min_speech is not None, min_speech=self._min_speech,
            denoise=self._new_denoiser is not None,
            gate_passed=self.bundle.gate.passed, gate_failures=self.bundle.gate.failures,
        )

    # -- detection -----------------------------------------------------------------------------

    def _config(self) -> StreamConfig:
        events = self._events
        return StreamConfig(
            run=self.session.run, scorer=self.scorer, window=self._window, hop=self._hop,
            min_samples=self.bundle.min_samples, silence_dbfs=self._silence_dbfs,
            normalize=self._normalize, batch_size=self.options.batch_size,
            new_tracker=(lambda: EventTracker(events)) if events else (lambda: None),
            vad_model=None if self._min_speech is None else vad.load_model(),
            min_speech=self._min_speech,
            new_denoiser=self._new_denoiser,
            keep_embeddings=self.options.embeddings,
        )

    # Settings that change how audio is cut and events are formed, never the session.
    STREAM_SETTINGS = ("window_s", "hop_s", "silence_dbfs", "threshold", "operating_point",
                       "min_duration_s", "merge_gap_s", "release", "vad", "min_speech", "denoise",
                       "embeddings")

    def with_settings(self, **settings: Any) -> "Detector":
        """A detector sharing this one's model and session, with other stream settings
        (:attr:`STREAM_SETTINGS`, fields of :class:`DetectionOptions`), validated exactly as
        :meth:`load` validates them (same errors)."""
        unknown = sorted(set(settings) - set(self.STREAM_SETTINGS))
        if unknown:
            raise TypeError(f"not stream settings: {', '.join(unknown)}")
        if not settings:
            return self
        # A stream's own choice of gate wins over the detector's other half of the pair.
        if settings.get("vad") is False:
            settings.setdefault("min_speech", None)
        if settings.get("min_speech") is not None and self.options.vad is False:
            settings.setdefault("vad", None)
        options = dataclasses.replace(self.options, **settings)
        view = copy.copy(self)
        view.options = options
        view._window, view._hop = view._window_hop(options)
        view._events = view._event_settings(options)
        view._silence_dbfs = (self.bundle.silence_dbfs if options.silence_dbfs is None
                              else float(options.silence_dbfs))
        view._min_speech, view._new_denoiser = view._gating(options)
        return view

    def stream(self, rate_hz: int, channels: int = 1, *, source: str = "<stream>",
               live: bool = True, run: Callable | None = None) -> DetectionStream:
        """A live stream at ``rate_hz``: windows are inferred as soon as they are complete.
        ``run`` replaces the session's inference call (``batch -> (logits, embedding)``), e.g. by
        a scheduler that batches windows of several streams into one call."""
        config = self._config()
        if run is not None:
            config = dataclasses.replace(config, run=run)
        return DetectionStream(config, rate_hz, channels, source=source, live=live)

    def detect(self, samples: object, rate_hz: int, *, source: str = "<array>") -> DetectionResult:
        """Detect in a whole signal: mono 1-D or ``(frames, channels)`` samples at ``rate_hz``."""
        arr = np.asarray(samples)
        channels = arr.shape[1] if arr.ndim == 2 else 1
        stream = self.stream(rate_hz, channels, source=source, live=False)
        return _collect(self, stream, [arr])

    def detect_file(self, path: str | os.PathLike, *, name: str | None = None,
                    nonfinite: str = "error") -> DetectionResult:
        """Detect in an audio file (any format :mod:`edgeser.audio` reads), decoded in blocks so
        memory stays bounded however long the file is."""
        label = name or (os.fspath(path) if isinstance(path, (str, os.PathLike)) else "<stream>")
        warnings: list[str] = []
        info = audio.probe(path, name=name)  # a seekable file object is left where it was
        blocks = audio.iter_blocks(path, nonfinite=nonfinite, name=name,
                                   on_warning=warnings.append)
        stream = self.stream(info.rate_hz, info.channels, source=label, live=False)
        stream.warnings = warnings
        return _collect(self, stream, blocks)


def _noise_suppressor() -> Callable[[], object]:
    """The noise suppressor's constructor for 16 kHz streams (native code, imported on use),
    tried once so that a build without it is said before any audio is read."""
    try:
        from edgeser.frontend.denoise import NoiseSuppressor

        NoiseSuppressor(SAMPLE_RATE_HZ)
    except (ImportError, frontend.FrontendError) as err:
        raise DetectionError(f"noise suppression is not available in this installation "
                             f"({str(err).rstrip('.')}).") from None
    return lambda: NoiseSuppressor(SAMPLE_RATE_HZ)


def _collect(detector: Detector, stream: DetectionStream, chunks) -> DetectionResult:
    windows: list[WindowResult] = []
    events: list[Event] = []
    for chunk in chunks:
        step = stream.feed(chunk)
        windows += step.windows
        events += step.events
    last = stream.close()
    windows += last.windows
    events += last.events
    end = last.end
    run = detector.run_info
    return DetectionResult(
        source=end.source, task=run.task, labels=run.labels, rate_hz=end.rate_hz,
        channels=end.channels, samples=end.samples, window_s=run.window_s, hop_s=run.hop_s,
        windows=tuple(windows), events=tuple(events), summary=end.summary,
        threshold=run.threshold, operating_point=run.operating_point, warnings=end.warnings,
    )
