"""Audio for parity evaluation: a user's folder of real recordings, or a default that the
package can produce legally on any machine.

The default is speech synthesised by espeak-ng when it is installed (several voices, rates and
pitches), else a formant synthesiser of vowel sequences with moving pitch. Neither is real
speech; the manifest says which was used, and users pass ``--eval-audio DIR`` for real speech.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser import audio
from edgeser import frontend as fe
from edgeser.errors import AudioError, ExportError
from edgeser.contract import SAMPLE_RATE_HZ

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
SENTENCES = (
    "The meeting starts at nine, and nobody knows where the projector went.",
    "I can't believe you did that again, it's absolutely wonderful!",
    "Please leave the package at the front door next to the blue bicycle.",
    "Why would anyone paint the kitchen bright orange in the middle of winter?",
    "We lost the match, but honestly the weather was far worse than the score.",
    "Stop it right now, I am really angry about this whole situation.",
    "That is the funniest thing I have heard all week, tell it once more.",
    "The train to the coast was cancelled, so we walked along the river instead.",
    "Could you speak a little slower, the connection keeps dropping out.",
    "Everything is fine, there is nothing to worry about, just breathe slowly.",
    "Oh no, the cake fell on the floor just before the guests arrived.",
    "Look at that view from the hill, the whole valley is glowing in the sun.",
    "I have told you three times already, the answer is still no.",
    "My grandmother used to sing this song while she was baking bread.",
    "Are you serious? We won the tickets for the concert tonight!",
    "The doctor said the results will take another two weeks, which is hard.",
    "Turn left at the bakery, then keep going until you see the old church.",
    "Nobody cleaned the office this week and it smells like old coffee.",
    "Thank you so much for coming, it means a lot to all of us.",
    "He whispered something quietly, then laughed and walked out of the room.",
)
VOICES = ("en-us", "en-gb", "de", "fr", "es", "it")


@dataclass(frozen=True)
class EvalSet:
    """Normalised 16 kHz windows, grouped by length for batching, and where they came from."""

    windows: tuple  # of float32 1-D arrays, as the model is fed them (normalised by default)
    description: str

    def __len__(self) -> int:
        return len(self.windows)

    def full_length(self) -> "EvalSet":
        """Only the windows of the longest length: histogram calibrators need equal shapes."""
        longest = max(len(w) for w in self.windows)
        return EvalSet(tuple(w for w in self.windows if len(w) == longest), self.description)


def _windows_of(signal_16k: np.ndarray, window_s: float, hop_s: float, prepare) -> list:
    return [prepare(signal_16k[w.start : w.stop])
            for w in fe.windows(len(signal_16k), window_s, hop_s)]


def audio_files(directory: Path) -> list:
    """Audio files under ``directory`` in a fixed pseudo-random order, so a window budget
    smaller than the folder still samples all of it (speakers, languages, corpora) instead of
    its alphabetically first corpus."""
    files = [p for p in Path(directory).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES]
    if not files:
        raise ExportError(f"{directory}: holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return sorted(files, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())


def from_files(files, window_s: float, hop_s: float, max_windows: int, description: str,
               prepare=fe.normalize) -> EvalSet:
    """Windows of ``files`` as the model is fed them (``prepare``: per-window normalisation,
    or the checkpoint's own preprocessing)."""
    windows: list = []
    for path in files:
        try:
            samples, info = audio.read_mono(path, nonfinite="zero")
        except AudioError as err:
            raise ExportError(f"evaluation audio {err}") from None
        if info.frames == 0:
            continue
        windows += _windows_of(fe.resample(samples, info.rate_hz), window_s, hop_s, prepare)
        if len(windows) >= max_windows:
            break
    if not windows:
        raise ExportError(f"{description}: the audio is too short for a single window.")
    return EvalSet(tuple(windows[:max_windows]), description)


def from_directory(directory: Path, window_s: float, hop_s: float, max_windows: int,
                   prepare=fe.normalize) -> EvalSet:
    files = audio_files(directory)
    return from_files(files, window_s, hop_s, max_windows, f"{directory} ({len(files)} files)",
                      prepare)


def espeak_wav(text: str, voice: str, speed_wpm: int, pitch: int, out: Path) -> None:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-w", str(out), text],
        check=True, capture_output=True, timeout=60,
    )


def _espeak_speech(seconds: float, sentences: tuple, seed: int) -> np.ndarray | None:
    if shutil.which("espeak-ng") is None:
        return None
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        k = 0
        while total < seconds * SAMPLE_RATE_HZ:
            wav = Path(scratch) / f"{k}.wav"
            try:
                espeak_wav(sentences[k % len(sentences)], VOICES[k % len(VOICES)],
                        int(rng.integers(120, 200)), int(rng.integers(20, 80)), wav)
                samples, info = audio.read_mono(wav)
            except (subprocess.SubprocessError, OSError, AudioError):
                return None
            speech = fe.resample(samples, info.rate_hz)
            parts += [speech, np.zeros(int(rng.integers(1600, 8000)), np.float32)]
            total += len(speech)
            k += 1
    return np.concatenate(parts)


# Formant resonators: two-pole filters of 90 Hz bandwidth. Their impulse response decays below
# 1e-15 within 2048 samples, so an FFT convolution with it equals the recursive filter to double
# precision, with numpy alone (the export toolchain does not need scipy).
_FORMANT_BANDWIDTH_HZ = 90.0
_RESONATOR_TAPS = 2048


def resonator_response(centre_hz: float, rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Impulse response of ``y[n] = (1-r) x[n] + 2 r cos(w) y[n-1] - r^2 y[n-2]``."""
    r = np.exp(-np.pi * _FORMANT_BANDWIDTH_HZ / rate_hz)
    w = 2 * np.pi * centre_hz / rate_hz
    n = np.arange(_RESONATOR_TAPS)
    return (1 - r) * r**n * np.sin((n + 1) * w) / np.sin(w)


def _filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    size = 1 << int(np.ceil(np.log2(len(x) + len(response) - 1)))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(response, size), size)
    return y[: len(x)]


def _formant_vowels(seconds: float, seed: int) -> np.ndarray:
    """Vowel-like sounds: a glottal pulse train with moving pitch through formant resonators."""
    rng = np.random.default_rng(seed)
    formants = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
                (570, 840, 2410), (440, 1020, 2240)]
    out = []
    for _ in range(int(seconds / 0.6) + 1):
        n = int(rng.integers(3200, 12000))
        f0 = rng.uniform(90, 260) * (1 + 0.2 * np.sin(np.linspace(0, rng.uniform(1, 6), n)))
        phase = np.cumsum(f0 / SAMPLE_RATE_HZ)
        source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
        source += 0.02 * rng.standard_normal(n)
        voiced = source
        for f in formants[int(rng.integers(len(formants)))]:
            voiced = _filter(voiced, resonator_response(f))
        envelope = np.hanning(n)
        out += [0.3 * voiced * envelope / (np.abs(voiced).max() + 1e-9), np.zeros(int(rng.integers(800, 4800)))]
    return np.concatenate(out).astype(np.float32)


# Evaluation and calibration use disjoint sentences and seeds, so a recipe is never judged on
# the audio it was calibrated on.
_PURPOSES = {"evaluation": (SENTENCES[0::2], 7), "calibration": (SENTENCES[1::2], 8)}


def default(window_s: float, hop_s: float, max_windows: int, purpose: str = "evaluation",
            prepare=fe.normalize) -> EvalSet:
    """Generated audio with up to ``max_windows`` windows, for evaluation or calibration."""
    sentences, seed = _PURPOSES[purpose]
    seconds = window_s + hop_s * (max_windows + 1)
    speech = _espeak_speech(seconds, sentences, seed)
    if speech is not None:
        description = f"espeak-ng synthetic speech, {purpose} sentences (generated; not real speech)"
    else:
        speech = _formant_vowels(seconds, seed)
        description = f"formant-synthesised vowels, {purpose} seed (generated; espeak-ng not installed)"
    windows = _windows_of(speech, window_s, hop_s, prepare)[:max_windows]
    return EvalSet(tuple(windows), description)
