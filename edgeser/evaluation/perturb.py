"""What real rooms and channels do to audio, made here from numpy alone and seeded.

- additive noise at a signal-to-noise ratio over the whole clip: white, babble (a few other clips
  of the evaluated set, each at unit level, summed), or the noise in a file;
- room reverberation by RT60: an exponentially decaying noise impulse response (the classic
  diffuse-tail model; 60 dB of decay after ``rt60_s``), applied by FFT convolution;
- a telephone channel: 300-3400 Hz at 8 kHz, a gain with clipping at full scale (the handset's
  level control driving the converter), then 8-bit mu-law (G.711);
- a gain with clipping.

Signals are mono float32 at 16 kHz in; each perturbation returns ``(samples, rate_hz)`` (the
telephone returns 8 kHz audio, as a phone line carries it). A perturbation's random numbers come
from ``(seed, condition, file)``, so every model hears exactly the same perturbed audio.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import EvaluationError

TELEPHONE_RATE_HZ = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_GAIN_DB = 6.0
MU_LAW_MU = 255
DEFAULT_SNRS_DB = (20.0, 10.0, 0.0)
BABBLE_TALKERS = 4
# Below this many seconds a room's impulse response is too short to carry its decay.
_MIN_RESPONSE_S = 0.05
# The -60 dB of RT60 as a natural-log amplitude decay: 10**(-60/20) = exp(-3 ln 10).
_DECAY_60DB = 3 * math.log(10)


# ------------------------------------------------------------------------------------------
# Signal operations
# ------------------------------------------------------------------------------------------


def power(x: np.ndarray) -> float:
    """Mean square (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if len(x) else 0.0


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The SNR of ``noisy`` against ``clean`` (same length): clean power over the power of the
    difference, in dB."""
    residual = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    return 10 * math.log10(power(clean) / power(residual))


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution of ``x`` with ``h``, cut to ``len(x)`` (numpy FFT)."""
    size = 1 << max(1, math.ceil(math.log2(len(x) + len(h) - 1)))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[: len(x)]


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random offset, looped when it is shorter."""
    if len(noise) == 0:
        raise EvaluationError("a noise signal is empty.")
    offset = int(rng.integers(len(noise)))
    reps = math.ceil((offset + n) / len(noise))
    return np.tile(noise, reps)[offset:offset + n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr: float,
              rng: np.random.Generator) -> np.ndarray:
    """``x`` plus ``noise`` (looped or cut to fit) scaled to ``snr`` dB over the whole clip.
    Not clipped: a mixture louder than full scale stays as it is, as in a float recording."""
    x = np.asarray(x, np.float64)
    noise = fit_length(np.asarray(noise, np.float64), len(x), rng)
    p_noise = power(noise)
    if p_noise == 0.0:
        raise EvaluationError("a noise signal is digital silence.")
    scale = math.sqrt(power(x) / (p_noise * 10 ** (snr / 10)))
    return (x + scale * noise).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def babble(n: int, others: Sequence[np.ndarray], rng: np.random.Generator,
           talkers: int = BABBLE_TALKERS) -> np.ndarray:
    """Several talkers at once: ``talkers`` clips from ``others`` (chosen at random), each at
    unit RMS from a random offset, summed."""
    usable = [c for c in others if len(c) and power(c) > 0]
    if not usable:
        raise EvaluationError("babble noise needs at least two clips with sound in the set.")
    picks = rng.choice(len(usable), size=min(talkers, len(usable)), replace=False)
    mix = np.zeros(n)
    for k in picks:
        clip = np.asarray(usable[k], np.float64)
        mix += fit_length(clip / math.sqrt(power(clip)), n, rng)
    return mix


def room_impulse_response(rt60_s: float, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """A diffuse room: Gaussian noise under an envelope that falls 60 dB in ``rt60_s``, with a
    unit direct path at time zero; as long as the RT60 (a further 60 dB would be inaudible)."""
    if not (math.isfinite(rt60_s) and rt60_s > 0):
        raise EvaluationError(f"an RT60 must be a positive number of seconds, got {rt60_s!r}.")
    n = max(round(rt60_s * rate_hz), round(_MIN_RESPONSE_S * rate_hz))
    t = np.arange(n) / rate_hz
    h = rng.standard_normal(n) * np.exp(-_DECAY_60DB * t / rt60_s)
    # The tail's energy relative to the direct path grows with the RT60, as in real rooms.
    h *= math.sqrt(rt60_s * 2 / np.sum(h * h) / (1 + rt60_s * 2))
    h[0] = 1.0
    return h


def decay_time_s(h: np.ndarray, rate_hz: int) -> float:
    """RT60 measured from an impulse response: the slope of its Schroeder energy decay curve
    between -5 and -35 dB (T30), extrapolated to 60 dB."""
    energy = np.cumsum((np.asarray(h, np.float64) ** 2)[::-1])[::-1]
    curve = 10 * np.log10(energy / energy[0])
    fit = (curve <= -5) & (curve >= -35)
    slope = np.polyfit(np.nonzero(fit)[0] / rate_hz, curve[fit], 1)[0]
    return -60 / slope


def reverberate(x: np.ndarray, rt60_s: float, rng: np.random.Generator,
                rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``x`` in a room of ``rt60_s``, at the level (RMS) it had."""
    x = np.asarray(x, np.float64)
    y = fft_convolve(x, room_impulse_response(rt60_s, rate_hz, rng))
    p = power(y)
    return (y * math.sqrt(power(x) / p) if p > 0 else y).astype(np.float32)


def mu_law(x: np.ndarray, mu: int = MU_LAW_MU) -> np.ndarray:
    """Encode to 8 bits and decode (G.711 mu-law's companding, quantised to 256 levels)."""
    x = np.clip(np.asarray(x, np.float64), -1.0, 1.0)
    code = np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)
    code = np.round((code + 1) / 2 * mu) / mu * 2 - 1  # 256 levels
    return np.sign(code) * ((1 + mu) ** np.abs(code) - 1) / mu


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    """``x`` times ``gain_db``, clipped at full scale."""
    return np.clip(np.asarray(x, np.float64) * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def telephone(x: np.ndarray, gain_db: float = TELEPHONE_GAIN_DB,
              rate_hz: int = SAMPLE_RATE_HZ) -> tuple[np.ndarray, int]:
    """A phone line: band-limited to 300-3400 Hz and decimated to 8 kHz, gain with clipping,
    then mu-law. Returns ``(samples at 8 kHz, 8000)``."""
    if rate_hz % TELEPHONE_RATE_HZ:
        raise EvaluationError(f"the telephone channel needs a multiple of {TELEPHONE_RATE_HZ} "
                              f"Hz, got {rate_hz}.")
    x = np.asarray(x, np.float64)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / rate_hz)
    low, high = TELEPHONE_BAND_HZ
    spectrum[(freqs < low) | (freqs > high)] = 0
    # Nothing is left above 4 kHz, so keeping every k-th sample does not alias.
    narrow = np.fft.irfft(spectrum, len(x))[:: rate_hz // TELEPHONE_RATE_HZ]
    return mu_law(apply_gain(narrow, gain_db)).astype(np.float32), TELEPHONE_RATE_HZ


# ------------------------------------------------------------------------------------------
# Conditions
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One way of hearing the set: ``clean``, ``noise`` (``source``: white, babble or a file's
    name; ``value``: SNR in dB), ``reverb`` (RT60 in s), ``phone`` (gain in dB) or ``gain``
    (dB)."""

    family: str
    value: float | None = None
    source: str | None = None
    path: Path | None = None  # the noise file

    @property
    def key(self) -> str:
        if self.family == "clean":
            return "clean"
        if self.family == "noise":
            return f"{self.source}-{self.value:g}dB"
        if self.family == "reverb":
            return f"reverb-{self.value:g}s"
        if self.family == "phone":
            return "phone" if self.value == TELEPHONE_GAIN_DB else f"phone{self.value:+g}dB"
        return f"gain{self.value:+g}dB"

    @property
    def label(self) -> str:
        if self.family == "clean":
            return "clean"
        if self.family == "noise":
            return f"{self.source} noise, SNR {self.value:g} dB"
        if self.family == "reverb":
            return f"reverb, RT60 {self.value:g} s"
        if self.family == "phone":
            return f"telephone (300-3400 Hz, 8 kHz, mu-law, gain {self.value:+g} dB, clipped)"
        return f"gain {self.value:+g} dB, clipped"

    def rng(self, seed: int, file_index: int) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(self.key.encode()), file_index])

    def apply(self, x: np.ndarray, rng: np.random.Generator,
              noises: "NoiseBank", file_index: int) -> tuple[np.ndarray, int]:
        """The perturbed ``x`` (16 kHz) and its rate."""
        if self.family == "clean":
            return np.asarray(x, np.float32), SAMPLE_RATE_HZ
        if self.family == "noise":
            return add_noise(x, noises.noise(self, len(x), rng, file_index), self.value,
                             rng), SAMPLE_RATE_HZ
        if self.family == "reverb":
            return reverberate(x, self.value, rng), SAMPLE_RATE_HZ
        if self.family == "phone":
            return telephone(x, self.value)
        return apply_gain(x, self.value), SAMPLE_RATE_HZ


CLEAN = Condition("clean")
# Small changes a model should not care about: the stability check.
STABILITY = (Condition("gain", 1.0), Condition("gain", -1.0), Condition("noise", 40.0, "white"))


class NoiseBank:
    """The noises conditions draw from: white noise, babble from the set's own clips and the
    given noise files (decoded once, at 16 kHz)."""

    def __init__(self, clips: Sequence[np.ndarray | None]):
        self._clips = clips
        self._files: dict[Path, np.ndarray] = {}

    def add_file(self, path: Path) -> None:
        from edgeser import audio, frontend
        from edgeser.errors import AudioError

        if path in self._files:
            return
        try:
            samples, info = audio.read_mono(path)
        except AudioError as err:
            raise EvaluationError(f"noise file {err}") from None
        signal = frontend.resample(samples, info.rate_hz)
        if len(signal) == 0 or power(signal) == 0:
            raise EvaluationError(f"noise file {path} holds no sound.")
        self._files[path] = signal

    def noise(self, condition: Condition, n: int, rng: np.random.Generator,
              file_index: int) -> np.ndarray:
        if condition.source == "white":
            return white_noise(n, rng)
        if condition.source == "babble":
            others = [c for i, c in enumerate(self._clips) if i != file_index and c is not None]
            return babble(n, others, rng)
        return self._files[condition.path]


def _numbers(text: str, spec: str, what: str) -> tuple[float, ...]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise EvaluationError(f"--perturb {spec}: {part!r} is not a number ({what}).") \
                from None
        if not math.isfinite(value):
            raise EvaluationError(f"--perturb {spec}: {part!r} is not a finite number.")
        values.append(value)
    return tuple(values)


def _split_file(rest: str, spec: str) -> tuple[Path, tuple[float, ...]]:
    path, _, snrs = rest.rpartition(":")
    if path:
        try:
            return Path(path), _numbers(snrs, spec, "SNRs in dB")
        except EvaluationError:
            pass
    return Path(rest), DEFAULT_SNRS_DB


def parse_perturbation(spec: str, noise_files: Sequence[Path] = ()) -> list[Condition]:
    """The conditions one ``--perturb`` value asks for:

    ``noise:20,10,0`` white noise (and every ``noise_files`` file) at each SNR in dB;
    ``noise:FILE`` or ``noise:FILE:20,10`` a file's noise (default SNRs 20, 10, 0);
    ``babble:20,10``; ``reverb:0.3,0.8`` (RT60 in s); ``phone`` or ``phone:GAIN_DB``;
    ``gain:+6,-6`` (dB, clipped).
    """
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "noise":
        if not rest:
            raise EvaluationError(f"--perturb {spec}: give SNRs in dB (noise:20,10,0) or a "
                                  "noise file (noise:FILE).")
        try:
            snrs = _numbers(rest, spec, "SNRs in dB")
        except EvaluationError:
            path, snrs = _split_file(rest, spec)
            return [Condition("noise", s, path.name, path) for s in snrs]
        out = [Condition("noise", s, "white") for s in snrs]
        out += [Condition("noise", s, p.name, p) for p in noise_files for s in snrs]
        return out
    if kind == "babble":
        return [Condition("noise", s, "babble")
                for s in (_numbers(rest, spec, "SNRs in dB") if rest else DEFAULT_SNRS_DB)]
    if kind == "reverb":
        if not rest:
            raise EvaluationError(f"--perturb {spec}: give RT60s in seconds (reverb:0.3,0.8).")
        values = _numbers(rest, spec, "RT60s in seconds")
        if any(v <= 0 for v in values):
            raise EvaluationError(f"--perturb {spec}: an RT60 must be positive.")
        return [Condition("reverb", v) for v in values]
    if kind == "phone":
        gains = _numbers(rest, spec, "gain in dB") if rest else (TELEPHONE_GAIN_DB,)
        return [Condition("phone", g) for g in gains]
    if kind == "gain":
        if not rest:
            raise EvaluationError(f"--perturb {spec}: give gains in dB (gain:+6,-6).")
        return [Condition("gain", g) for g in _numbers(rest, spec, "gains in dB")]
    raise EvaluationError(f"--perturb {spec}: unknown perturbation {kind!r}; use noise, babble, "
                          "reverb, phone or gain.")


def parse_perturbations(specs: Sequence[str], noise_files: Sequence[Path] = ()) -> list[Condition]:
    """``clean`` and every condition the specs ask for, each once, in the order given."""
    out = [CLEAN]
    for spec in specs:
        for condition in parse_perturbation(spec, noise_files):
            if condition.key not in {c.key for c in out}:
                out.append(condition)
    if noise_files and not any(s.partition(":")[0].strip().lower() == "noise"
                               and _is_snr_list(s) for s in specs):
        raise EvaluationError("--noise-file mixes its noise at the SNRs of a --perturb "
                              "noise:SNRS; add one (e.g. --perturb noise:20,10,0).")
    return out


def _is_snr_list(spec: str) -> bool:
    try:
        _numbers(spec.partition(":")[2], spec, "")
    except EvaluationError:
        return False
    return True
