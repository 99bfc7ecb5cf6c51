"""What detection returns: per-window scores, laughter events and per-file summaries.

Every time is a 16 kHz sample index (``start``, ``stop``) with its seconds beside it
(``start_s = start / 16000``, exact: 16000 = 2**7 * 125, so every such time is a finite decimal).
The resampler is delay-compensated, so sample j of the 16 kHz signal is the input at j / 16000 s.

``scores`` map each label to what the bundle's head gives for it: the regression value
(``emotion-dimensional``), the class probability after softmax (``emotion-categorical``,
``laughter``) or the cosine similarity to the class prototype (``emotion-prototypes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from edgeser.contract import SAMPLE_RATE_HZ

# Version of the result records (JSON / JSONL / CSV columns); bumped on any incompatible change.
RESULT_SCHEMA_VERSION = 1

__all__ = [
    "RESULT_SCHEMA_VERSION", "SAMPLE_RATE_HZ", "DetectionResult", "Event", "FileEnd", "RunInfo", "Summary",
    "WindowResult",
]


def seconds(samples: int) -> float:
    """16 kHz sample index -> seconds."""
    return samples / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class RunInfo:
    """The settings a run used, shared by every file in it (the header of every output format).

    ``logits_kind`` is the bundle's output kind (``regression``, ``class-logits``,
    ``similarity``); ``threshold``, ``operating_point``, ``min_duration_s`` and ``merge_gap_s``
    are the laughter event settings (None for other tasks).
    """

    model_id: str
    bundle: str
    task: str
    labels: tuple[str, ...]
    logits_kind: str
    window_s: float
    hop_s: float
    silence_dbfs: float
    positive_label: str | None = None
    threshold: float | None = None
    operating_point: str | None = None
    min_duration_s: float | None = None
    merge_gap_s: float | None = None
    release: float | None = None  # hysteresis: None when events end below the threshold
    # The export's fidelity gate: False for a bundle written with --allow-degraded after failing
    # it, with the failing metrics.
    gate_passed: bool = True
    gate_failures: tuple[str, ...] = ()
    # Voice activity gating (windows whose speech fraction is below min_speech are not scored;
    # min_speech is None without it) and noise suppression before windowing.
    vad: bool = False
    min_speech: float | None = None
    denoise: bool = False


class _Span:
    """Seconds of a ``start``/``stop`` pair of 16 kHz sample indices."""

    start: int
    stop: int

    @property
    def start_s(self) -> float:
        return seconds(self.start)

    @property
    def end_s(self) -> float:
        return seconds(self.stop)


@dataclass(frozen=True)
class WindowResult(_Span):
    """One analysis window. ``scores`` is None for a silent window (below the silence gate: not
    scored) and for a non-speech one; ``top_label`` is None for regression outputs and windows
    not scored. With voice activity gating, ``speech_fraction`` is the share of the window's
    samples the VAD calls speech (else None) and ``non_speech`` says it is below the minimum."""

    index: int
    start: int
    stop: int
    level_dbfs: float
    silent: bool
    scores: Mapping[str, float] | None = field(default=None, hash=False)
    top_label: str | None = None
    speech_fraction: float | None = None
    non_speech: bool = False
    # The pooled embedding (float32, read-only) when the detector keeps embeddings, else None.
    embedding: Any = field(default=None, hash=False, compare=False, repr=False)


@dataclass(frozen=True)
class Event(_Span):
    """A laughter event: the union of consecutive windows whose positive-class probability reached
    the threshold, with gaps up to the merge gap bridged. ``peak`` is the highest probability in
    it and ``peak_start``/``peak_stop`` the window where it occurred."""

    label: str
    start: int
    stop: int
    peak: float
    peak_start: int
    peak_stop: int
    windows: int

    @property
    def duration_s(self) -> float:
        return seconds(self.stop - self.start)

    @property
    def peak_s(self) -> float:
        """Centre of the window with the peak probability."""
        return seconds(self.peak_start + self.peak_stop) / 2


@dataclass(frozen=True)
class Summary:
    """Per-file (or per-stream) summary over the voiced (non-silent) windows.

    ``scores``: mean per label (regression: mean value; classes: mean probability, i.e. the
    distribution over the file; prototypes: mean similarity); None when no window was voiced.
    ``top_label``: argmax of ``scores`` for classes and prototypes, else None.
    Laughter: ``events`` and ``event_s`` (total event time); 0 for other tasks.
    ``non_speech_windows``: windows the voice activity gate kept from scoring (None without it).
    """

    windows: int
    voiced_windows: int
    scores: Mapping[str, float] | None = field(default=None, hash=False)
    top_label: str | None = None
    events: int = 0
    event_s: float = 0.0
    non_speech_windows: int | None = None

    @property
    def silent_windows(self) -> int:
        return self.windows - self.voiced_windows - (self.non_speech_windows or 0)


@dataclass(frozen=True)
class FileEnd:
    """What is known once a file or stream has ended: its length, summary and any warnings.
    A stream ends with one of these (it keeps no per-window history, so memory stays flat)."""

    source: str
    rate_hz: int
    channels: int
    samples: int
    summary: Summary = field(hash=False)
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return seconds(self.samples)


@dataclass(frozen=True)
class DetectionResult:
    """Everything detected in one file, buffer or stream.

    ``samples`` is the length of the 16 kHz signal (``duration_s`` its seconds); ``rate_hz`` and
    ``channels`` describe the input before conversion. ``threshold`` is the laughter decision
    threshold used (from ``operating_point`` when one was named), None for other tasks.
    ``warnings`` are sentences about audio that was decoded with a loss (e.g. a truncated file).
    """

    source: str
    task: str
    labels: tuple[str, ...]
    rate_hz: int
    channels: int
    samples: int
    window_s: float
    hop_s: float
    windows: tuple[WindowResult, ...] = field(hash=False)
    events: tuple[Event, ...] = field(hash=False)
    summary: Summary = field(hash=False)
    threshold: float | None = None
    operating_point: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return seconds(self.samples)

    @property
    def end(self) -> FileEnd:
        return FileEnd(self.source, self.rate_hz, self.channels, self.samples, self.summary,
                       self.warnings)
