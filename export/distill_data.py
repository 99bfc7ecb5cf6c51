"""Audio for distillation: the folder scanned, split into training and held-out files, cut into
windows the way ``detect`` cuts them, and (optionally) augmented.

- Files: every audio file under the folder (:data:`eval_audio.AUDIO_SUFFIXES`); files that cannot
  be opened are skipped and named in a warning.
- Held-out split by speaker when speakers can be told apart: files in sub-folders are grouped by
  their first folder level below the audio folder (``audio/<speaker>/...``), or by
  ``--speaker-pattern`` (a regex on the path relative to the folder: its groups, joined, or its
  whole match name the speaker); otherwise by file. Whole groups are held out, chosen with the
  seed, until they hold ``--holdout`` of the audio's seconds.
- Windows: :func:`edgeser.frontend.windows` with the bundle's window and hop (full windows every
  hop, then a final short window; a file shorter than a window is one short window), windows
  below the silence gate dropped (the runtime does not score them), each prepared as the
  checkpoint's preprocessing says.
- Augmentation (``--augment K``: K extra copies of each training window, seeded): a gain of
  -12..+6 dB (clipped to full scale), babble from the same recording mixed in at 5..25 dB SNR,
  and a band limit (low-pass 2.5..7 kHz or high-pass 100..400 Hz), each with probability 1/2
  (at least one per copy), on the raw audio before the checkpoint's preprocessing.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser import audio
from edgeser import frontend as fe
from edgeser.errors import AudioError, ExportError, FrontendError
from edgeser.export.eval_audio import AUDIO_SUFFIXES

MIN_TRAINING_WINDOWS = 8
MIN_HELDOUT_WINDOWS = 4
MAX_HELDOUT_WINDOWS = 1000


@dataclass(frozen=True)
class AudioFile:
    path: Path
    rel: str  # POSIX path relative to the audio folder
    group: str  # speaker (or the file itself)
    seconds: float
    samples_16k: int  # declared length at 16 kHz
    bytes: int


@dataclass(frozen=True)
class Corpus:
    folder: Path
    files: tuple  # of AudioFile, sorted by rel
    skipped: tuple  # of (rel, reason)
    grouping: str  # how files were grouped into speakers

    @property
    def seconds(self) -> float:
        return float(sum(f.seconds for f in self.files))

    def groups(self) -> list:
        return sorted({f.group for f in self.files})


def _group_of(rel: str, pattern: re.Pattern | None) -> str | None:
    if pattern is not None:
        match = pattern.search(rel)
        if match is None:
            return None
        parts = [g for g in match.groups() if g]
        return "".join(parts) if parts else match.group(0)
    head, sep, _ = rel.partition("/")
    return head if sep else None


def scan(folder: Path, speaker_pattern: str | None = None) -> Corpus:
    """Every readable audio file under ``folder`` with its speaker group; ExportError (one
    sentence) for a missing folder, a folder without audio, or one where nothing can be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"--audio {folder}: is not a folder.")
    pattern = None
    if speaker_pattern is not None:
        try:
            pattern = re.compile(speaker_pattern)
        except re.error as err:
            raise ExportError(f"--speaker-pattern {speaker_pattern!r} is not a regular "
                              f"expression ({err}).") from None
    paths = sorted((p for p in folder.rglob("*")
                    if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not paths:
        raise ExportError(f"--audio {folder}: holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    files, skipped = [], []
    for path in paths:
        rel = path.relative_to(folder).as_posix()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = audio.probe(path)
            size = path.stat().st_size
        except (AudioError, OSError) as err:
            skipped.append((rel, str(err)))
            continue
        if info.frames <= 0:
            skipped.append((rel, "no samples"))
            continue
        samples = math.ceil(info.frames * fe.TARGET_RATE_HZ / info.rate_hz)
        group = _group_of(rel, pattern)
        files.append(AudioFile(path, rel, group if group is not None else f"file:{rel}",
                               info.frames / info.rate_hz, samples, size))
    if not files:
        first = skipped[0][1] if skipped else "no samples"
        raise ExportError(f"--audio {folder}: holds no readable audio ({len(skipped)} audio files, "
                          f"none could be read; the first: {first}).")
    named = sum(1 for f in files if not f.group.startswith("file:"))
    speakers = len({f.group for f in files if not f.group.startswith("file:")})
    alone = len(files) - named
    if pattern is not None:
        grouping = (f"by speaker (--speaker-pattern: {speakers} speakers, {alone} files "
                    "unmatched, each its own group)")
    elif named:
        grouping = (f"by speaker (first folder level: {speakers} folders"
                    + (f", {alone} top-level files each their own group" if alone else "") + ")")
    else:
        grouping = "by file (no speaker folders)"
    return Corpus(folder, tuple(files), tuple(skipped), grouping)


def split(corpus: Corpus, holdout: float, seed: int) -> tuple:
    """(training file indices, held-out file indices): whole speaker groups held out, chosen with
    ``seed``, until they hold ``holdout`` of the seconds."""
    if not 0.0 < holdout < 1.0:
        raise ExportError(f"--holdout {holdout} must be a fraction between 0 and 1, e.g. 0.2.")
    groups = corpus.groups()
    if len(groups) < 2:
        raise ExportError(
            f"--audio {corpus.folder}: too little audio for a held-out split: "
            f"{len(corpus.files)} file(s) in one speaker group; held-out files must be files "
            "never trained on, so give at least two files (or speakers)."
        )
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    seconds = {g: 0.0 for g in groups}
    for f in corpus.files:
        seconds[f.group] += f.seconds
    target = holdout * corpus.seconds
    held, total = [], 0.0
    for group in order:
        if total >= target or len(held) == len(groups) - 1:
            break
        held.append(group)
        total += seconds[group]
    held = set(held)
    train = tuple(i for i, f in enumerate(corpus.files) if f.group not in held)
    heldout = tuple(i for i, f in enumerate(corpus.files) if f.group in held)
    return train, heldout


def estimated_windows(f: AudioFile, window_s: float, hop_s: float) -> int:
    return len(fe.windows(f.samples_16k, window_s, hop_s))


def decode(f: AudioFile) -> np.ndarray:
    """The file as 16 kHz mono float32 (NaN/Inf zeroed; truncation warnings ignored: what was
    decoded is used)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples, info = audio.read_mono(f.path, nonfinite="zero")
        return fe.resample(samples, info.rate_hz) if info.frames else np.zeros(0, np.float32)
    except (AudioError, FrontendError) as err:
        raise ExportError(f"--audio {f.rel}: {err}") from None


def voiced_windows(samples: np.ndarray, window_s: float, hop_s: float,
                   silence_dbfs: float) -> list:
    """(start, length) of every window ``detect`` would score (silent windows dropped)."""
    return [(w.start, w.length) for w in fe.windows(len(samples), window_s, hop_s)
            if fe.rms_dbfs(samples[w.start:w.start + w.length]) >= silence_dbfs]


def keep_mask(count: int, fraction: float, seed: int, file_index: int) -> np.ndarray:
    """Which of a file's ``count`` windows a window budget keeps (all when fraction >= 1)."""
    if fraction >= 1.0:
        return np.ones(count, bool)
    return np.random.default_rng([seed, file_index, 17]).random(count) < fraction


def _band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    spectrum = np.fft.rfft(x.astype(np.float64))
    freqs = np.fft.rfftfreq(n, 1.0 / fe.TARGET_RATE_HZ)
    if rng.random() < 0.5:
        cutoff = rng.uniform(2500.0, 7000.0)
        gain = 1.0 / (1.0 + (freqs / cutoff) ** 8)
    else:
        cutoff = rng.uniform(100.0, 400.0)
        gain = 1.0 / (1.0 + (cutoff / np.maximum(freqs, 1e-3)) ** 4)
    return np.fft.irfft(spectrum * gain, n).astype(np.float32)


def augment(raw: np.ndarray, recording: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of the raw window ``raw`` = ``recording[start:start+len(raw)]``."""
    x = raw.astype(np.float32).copy()
    kinds = rng.random(3) < 0.5
    if not kinds.any():
        kinds[rng.integers(3)] = True
    gain_db, snr_db = rng.uniform(-12.0, 6.0), rng.uniform(5.0, 25.0)
    offset = int(rng.integers(len(recording))) if len(recording) else 0
    if kinds[1] and len(recording) > len(x):
        # babble: another stretch of the same recording, not overlapping this window's start
        shift = (start + len(x) + offset) % len(recording)
        babble = np.take(recording, np.arange(shift, shift + len(x)), mode="wrap")
        p_x = float(np.mean(x.astype(np.float64) ** 2))
        p_b = float(np.mean(babble.astype(np.float64) ** 2))
        if p_x > 0 and p_b > 0:
            x = x + babble * np.float32(math.sqrt(p_x / (p_b * 10 ** (snr_db / 10))))
    if kinds[2]:
        x = _band_limit(x, rng)
    if kinds[0]:
        x = np.clip(x * np.float32(10 ** (gain_db / 20)), -1.0, 1.0)
    return x.astype(np.float32)


def _content_sha256(path: Path) -> str:
    digest_ = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest_.update(block)
    return digest_.hexdigest()


def fingerprint(corpus: Corpus, indices) -> list:
    """What identifies the audio of ``indices`` for the cache key: path, size and a sha256 of
    the bytes. Content, not mtime: a copy, an rsync without -t or a remount keeps the cache
    (the teacher pass is the expensive part of a run), an edit in place does not."""
    return [[corpus.files[i].rel, corpus.files[i].bytes, _content_sha256(corpus.files[i].path)]
            for i in indices]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()

