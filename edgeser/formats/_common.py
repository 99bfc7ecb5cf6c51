"""What every format shares: exact time text, the record dicts and the score text.

The record dicts are the JSON / JSONL schema (``RESULT_SCHEMA_VERSION``); the text formats
reuse the time and score text so one value reads the same in every output.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact
from fractions import Fraction
from typing import Any, Mapping

from edgeser.results import SAMPLE_RATE_HZ, Event, FileEnd, RunInfo, Summary, WindowResult

# Enough digits for any sample count; Inexact is trapped so a rounded time can never slip out.
_EXACT = Context(prec=60, traps=[Inexact])


def seconds_text(samples: int | Fraction) -> str:
    """Seconds as the shortest exact decimal: 1 -> "0.0000625", 16000 -> "1", 24000 -> "1.5".

    16000 = 2**7 * 5**3, so a whole sample index has at most 7 decimals (a half sample, as at a
    window centre, at most 8); decimal arithmetic gives them without binary float noise.
    """
    samples = Fraction(samples)
    value = _EXACT.divide(Decimal(samples.numerator), Decimal(samples.denominator * SAMPLE_RATE_HZ))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def centre_samples(w: WindowResult) -> Fraction:
    """Window centre in (possibly half) samples, kept exact for ``seconds_text``."""
    return Fraction(w.start + w.stop, 2)


def is_laughter(run: RunInfo) -> bool:
    return run.task == "laughter"


def is_regression(run: RunInfo) -> bool:
    """Regression heads have no top label: every label is a value of its own (arousal, ...)."""
    return run.logits_kind == "regression"


def scores_text(w: WindowResult, labels: tuple[str, ...], decimals: int) -> str:
    """One voiced window's scores in a few words: "happy 0.71" where a top label exists,
    else "arousal=0.52 dominance=0.48 valence=0.61" in label order."""
    assert w.scores is not None, "silent and non-speech windows have no scores"
    if w.top_label is not None:
        return f"{w.top_label} {w.scores[w.top_label]:.{decimals}f}"
    return " ".join(f"{label}={w.scores[label]:.{decimals}f}" for label in labels)


def _floats(scores: Mapping[str, float] | None) -> dict[str, float] | None:
    # float() so NumPy scalars serialise; the values themselves are passed through unchanged.
    return None if scores is None else {label: float(v) for label, v in scores.items()}


def model_record(run: RunInfo) -> dict[str, Any]:
    return {
        "model_id": run.model_id, "bundle": run.bundle, "task": run.task, "labels": list(run.labels),
        "logits_kind": run.logits_kind, "window_s": run.window_s, "hop_s": run.hop_s,
        "silence_dbfs": run.silence_dbfs, "positive_label": run.positive_label,
        "threshold": run.threshold, "operating_point": run.operating_point,
        "min_duration_s": run.min_duration_s, "merge_gap_s": run.merge_gap_s,
        "release": run.release, "vad": run.vad, "min_speech": run.min_speech,
        "denoise": run.denoise,
        "fidelity_gate": {"passed": run.gate_passed, "failures": list(run.gate_failures)},
    }


def window_record(w: WindowResult) -> dict[str, Any]:
    record = {
        "index": w.index, "start_sample": w.start, "end_sample": w.stop,
        "start_s": w.start_s, "end_s": w.end_s, "level_dbfs": float(w.level_dbfs),
        "silent": w.silent, "scores": _floats(w.scores), "top_label": w.top_label,
    }
    if w.speech_fraction is not None:  # runs with voice activity gating
        record |= {"speech_fraction": float(w.speech_fraction), "non_speech": w.non_speech}
    return record


def event_record(e: Event) -> dict[str, Any]:
    return {
        "label": e.label, "start_sample": e.start, "end_sample": e.stop,
        "start_s": e.start_s, "end_s": e.end_s, "duration_s": e.duration_s,
        "peak": float(e.peak), "peak_s": e.peak_s, "windows": e.windows,
    }


def summary_record(s: Summary) -> dict[str, Any]:
    record = {
        "windows": s.windows, "voiced_windows": s.voiced_windows, "silent_windows": s.silent_windows,
        "scores": _floats(s.scores), "top_label": s.top_label, "events": s.events,
        "event_s": float(s.event_s),
    }
    if s.non_speech_windows is not None:  # runs with voice activity gating
        record["non_speech_windows"] = s.non_speech_windows
    return record


def file_record(end: FileEnd) -> dict[str, Any]:
    return {
        "source": end.source, "rate_hz": end.rate_hz, "channels": end.channels,
        "samples": end.samples, "duration_s": end.duration_s,
        "summary": summary_record(end.summary), "warnings": list(end.warnings),
    }


def failure_record(source: str, message: str) -> dict[str, str]:
    return {"source": source, "error": message}
