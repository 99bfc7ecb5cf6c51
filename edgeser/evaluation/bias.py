"""The neutral-speech check: plain statements read by synthetic voices should sit mid-scale on
valence, whatever the voice.

The sentences are spoken by espeak-ng (the export toolchain's espeak-ng call) in a
few voices, male and female variants of two accents, at an even rate and pitch; when espeak-ng
is not installed the check does not run and says so. A model's shift is its mean valence minus
the middle of its scale (0.5: the dimensional models' outputs run from 0 to 1), its spread the
standard deviation over the sentences, per voice.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser import audio, frontend
from edgeser.errors import AudioError

NEUTRAL_SENTENCES = (
    "The meeting starts at nine in the second room on the left.",
    "Please leave the package at the front door next to the bicycle.",
    "The train to the coast leaves every hour from platform four.",
    "Turn left at the bakery, then keep going until you see the church.",
    "The report has twelve pages and three tables at the end.",
    "The library opens at ten and closes at six on weekdays.",
)
VOICES = ("en-us+m3", "en-us+f3", "en-gb-x-rp+m1", "en-gb-x-rp+f2")
SPEED_WPM = 160
PITCH = 50
VALENCE = "valence"
MIDSCALE = 0.5
NOT_INSTALLED = "espeak-ng is not installed, so the neutral-speech bias check did not run."


@dataclass(frozen=True)
class NeutralSpeech:
    """Synthesised sentences per voice (16 kHz), or why there are none."""

    clips: dict  # voice -> list of float32 arrays
    problem: str | None = None


def synthesise(voices: tuple[str, ...] = VOICES,
               sentences: tuple[str, ...] = NEUTRAL_SENTENCES) -> NeutralSpeech:
    if shutil.which("espeak-ng") is None:
        return NeutralSpeech({}, NOT_INSTALLED)
    from edgeser.export.eval_audio import espeak_wav  # the one espeak-ng call (numpy only)

    clips: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for v, voice in enumerate(voices):
            for k, text in enumerate(sentences):
                wav = Path(scratch) / f"{v}-{k}.wav"
                try:
                    espeak_wav(text, voice, SPEED_WPM, PITCH, wav)
                    samples, info = audio.read_mono(wav)
                except (subprocess.SubprocessError, OSError, AudioError) as err:
                    return NeutralSpeech({}, f"espeak-ng failed for voice {voice} ({err}), so "
                                             "the neutral-speech bias check did not run.")
                clips.setdefault(voice, []).append(frontend.resample(samples, info.rate_hz))
    return NeutralSpeech(clips)


def valence_shift(values_by_voice: dict[str, list[float]]) -> dict:
    """Per voice and over all voices: mean valence, its shift from mid-scale and the spread."""
    def stats(values: list[float]) -> dict:
        v = np.asarray(values, np.float64)
        return {"sentences": len(v), "mean": float(v.mean()), "shift": float(v.mean() - MIDSCALE),
                "spread": float(v.std())}

    out = {voice: stats(values) for voice, values in values_by_voice.items() if values}
    every = [x for values in values_by_voice.values() for x in values]
    if every:
        out["all voices"] = stats(every)
    return out
