"""Running the models over the labelled set under every condition: :func:`run`.

Each file is decoded once (16 kHz mono). For each condition, each file is perturbed once, with
random numbers from (seed, condition, file), optionally denoised, and then heard by every model,
so models differ only in themselves. The outcome per (model, condition, processing) is one
entry per file: its windows and its summary, or None when detection failed (said once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from edgeser import audio, frontend
from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.detector import Detector
from edgeser.errors import EdgeserError, EvaluationError
from edgeser.evaluation import bias
from edgeser.evaluation.labels import LabelledFile, LabelSet
from edgeser.evaluation.models import ModelInfo
from edgeser.evaluation.perturb import CLEAN, STABILITY, Condition, NoiseBank
from edgeser.evaluation.thresholds import DEFAULT_GRID, parse_grid
from edgeser.results import WindowResult

PROCESSING = ("raw", "denoised")


class Progress(Protocol):
    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, units: int = 1) -> None: ...


class _Silent:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, units: int = 1) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    """What an evaluation runs: conditions (``clean`` first), processing (``raw``,
    ``denoised`` or both), the laughter threshold grid, the extra checks, the seed, and at most
    ``max_files`` files (spread evenly over the CSV's order)."""

    conditions: tuple[Condition, ...] = (CLEAN,)
    processing: tuple[str, ...] = ("raw",)
    thresholds: tuple[float, ...] = parse_grid(DEFAULT_GRID)
    stability: bool = True
    bias: bool = True
    embeddings: bool = False
    seed: int = 0
    max_files: int | None = None

    @property
    def main_processing(self) -> str:
        """What the stability, bias and embedding checks and the operating points use."""
        return self.processing[0]


@dataclass(frozen=True)
class FileOutcome:
    windows: tuple[WindowResult, ...] = field(hash=False)
    scores: Mapping[str, float] | None = field(default=None, hash=False)
    top_label: str | None = None


Outcomes = Mapping[tuple[str, str, str], tuple[FileOutcome | None, ...]]


@dataclass(frozen=True)
class RunData:
    """Everything the metrics are computed from."""

    labels: LabelSet
    files: tuple[LabelledFile, ...]
    models: tuple[ModelInfo, ...]
    detectors: Mapping[str, Detector] = field(hash=False)
    settings: Settings
    outcomes: Outcomes = field(hash=False)  # (model, condition key, processing) -> per file
    neutral: Mapping[str, Mapping[str, tuple[FileOutcome, ...]]] = field(hash=False,
                                                                         default_factory=dict)
    neutral_problem: str | None = None
    problems: tuple[str, ...] = ()


def select(files: Sequence[LabelledFile], max_files: int | None) -> list[LabelledFile]:
    if max_files is None or max_files >= len(files):
        return list(files)
    if max_files < 1:
        raise EvaluationError("--max-files must be at least 1.")
    picks = np.unique(np.linspace(0, len(files) - 1, max_files).round().astype(int))
    return [files[i] for i in picks]


def load_denoiser() -> Callable[[np.ndarray, int], np.ndarray]:
    """The noise suppressor's whole-signal ``denoise(x, rate_hz)``, checked on each use."""
    try:
        from edgeser.frontend.denoise import denoise
    except ImportError as err:
        raise EvaluationError(f"--denoise needs the noise suppressor (edgeser.frontend.denoise), "
                              f"which this installation cannot import ({err}); use --denoise "
                              "raw.") from None

    def run(x: np.ndarray, rate_hz: int) -> np.ndarray:
        y = np.asarray(denoise(np.asarray(x, np.float32), rate_hz), np.float32)
        if y.shape != np.shape(x) or not np.isfinite(y).all():
            raise EvaluationError("the noise suppressor returned a signal of another length or "
                                  "with NaN/Inf.")
        return y

    return run


def _decode(files: Sequence[LabelledFile], warn: Callable[[str], None]) -> tuple[list, list]:
    clips, problems = [], []
    for f in files:
        try:
            samples, info = audio.read_mono(f.path)
            clip = frontend.resample(samples, info.rate_hz)
        except EdgeserError as err:
            problems.append(str(err))
            warn(str(err))
            clip = None
        clips.append(clip)
    return clips, problems


def run(labels: LabelSet, models: Sequence[ModelInfo], detectors: Mapping[str, Detector],
        settings: Settings, *, noise_files: Sequence = (), progress: Progress | None = None,
        warn: Callable[[str], None] = lambda message: None) -> RunData:
    progress = progress or _Silent()
    denoise = load_denoiser() if "denoised" in settings.processing else None
    files = select(labels.files, settings.max_files)
    progress.start("decoding", len(files))
    clips, problems = _decode(files, warn)
    progress.advance(len(files))
    bank = NoiseBank(clips)
    for condition in settings.conditions:
        if condition.path is not None:
            bank.add_file(condition.path)
    extra = [c for c in STABILITY if settings.stability
             and c.key not in {k.key for k in settings.conditions}]
    outcomes: dict[tuple[str, str, str], list] = {}
    embedders = {name: d.with_settings(embeddings=True) for name, d in detectors.items()} \
        if settings.embeddings else {}
    for condition in (*settings.conditions, *extra):
        processing = settings.processing if condition in settings.conditions \
            else (settings.main_processing,)
        progress.start(f"{condition.label}", len(files))
        for i, (f, clip) in enumerate(zip(files, clips)):
            progress.advance()
            if clip is None:
                continue
            y, rate_hz = condition.apply(clip, condition.rng(settings.seed, i), bank, i)
            for proc in processing:
                z = y if proc == "raw" else denoise(y, rate_hz)
                for model in models:
                    use = embedders.get(model.name) if (
                        condition == CLEAN and proc == settings.main_processing) else None
                    outcome = _detect(use or detectors[model.name], z, rate_hz,
                                      f"{f.name} ({condition.key}, {proc})", problems, warn)
                    outcomes.setdefault((model.name, condition.key, proc),
                                        [None] * len(files))[i] = outcome
    neutral, neutral_problem = _neutral(models, detectors, settings, denoise, progress, problems,
                                        warn)
    return RunData(labels, tuple(files), tuple(models), dict(detectors), settings,
                   {k: tuple(v) for k, v in outcomes.items()}, neutral, neutral_problem,
                   tuple(problems))


def _detect(detector: Detector, samples: np.ndarray, rate_hz: int, source: str,
            problems: list[str], warn: Callable[[str], None]) -> FileOutcome | None:
    try:
        result = detector.detect(samples, rate_hz, source=source)
    except EdgeserError as err:
        problems.append(str(err))
        warn(str(err))
        return None
    return FileOutcome(result.windows, result.summary.scores, result.summary.top_label)


def _neutral(models, detectors, settings, denoise, progress, problems, warn):
    wanted = [m for m in models if bias.VALENCE in m.labels or "neutral" in m.labels]
    if not settings.bias or not wanted:
        return {}, None
    speech = bias.synthesise()
    if speech.problem:
        warn(f"warning: {speech.problem}")
        return {}, speech.problem
    total = sum(len(v) for v in speech.clips.values())
    progress.start("neutral speech", total)
    out: dict[str, dict[str, tuple]] = {m.name: {} for m in wanted}
    for voice, clips in speech.clips.items():
        per_model: dict[str, list] = {m.name: [] for m in wanted}
        for k, clip in enumerate(clips):
            progress.advance()
            z = clip if settings.main_processing == "raw" else denoise(clip, SAMPLE_RATE_HZ)
            for m in wanted:
                outcome = _detect(detectors[m.name], z, SAMPLE_RATE_HZ,
                                  f"neutral sentence {k + 1} ({voice})", problems, warn)
                if outcome is not None:
                    per_model[m.name].append(outcome)
        for name, got in per_model.items():
            out[name][voice] = tuple(got)
    return out, None
