"""Single-channel noise suppression for speech: the native suppressor (``edgeser_denoiser_*`` in
``native/include/edgeser/frontend.h``) behind a NumPy API.

The suppressor works at the signal's own rate (``MIN_RATE_HZ``..``MAX_RATE_HZ``); its output
trails its input by a fixed ``latency_samples`` (one analysis frame: 1024 samples, 64 ms, at
16 kHz). Streaming equals one shot: the output is bit-identical however the input is chunked.
NaN and infinite samples are taken as 0 (the C code does it; nothing is rejected here), and the
output is always finite.

There is no NumPy fallback: without the compiled module (a checkout that was never built) the
suppressor raises :class:`~edgeser.errors.FrontendError` saying how to build it.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

import numpy as np

from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import FrontendError
from edgeser.frontend._binding import check, ffi, lib

__all__ = ["MAX_RATE_HZ", "MIN_RATE_HZ", "DenoisedFile", "NoiseSuppressor", "denoise",
           "denoise_file"]

# The rates the suppressor takes (the header's EDGESER_DENOISE_MIN/MAX_RATE_HZ).
MIN_RATE_HZ = 8_000
MAX_RATE_HZ = 192_000


def _rate(rate_hz: object) -> int:
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, numbers.Real):
        raise FrontendError(f"sample rate must be a whole number of Hz, got {rate_hz!r}")
    try:
        value = float(rate_hz)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value != int(value):
        raise FrontendError(f"sample rate must be a whole number of Hz, got {rate_hz!r}")
    if not MIN_RATE_HZ <= int(value) <= MAX_RATE_HZ:
        raise FrontendError(
            f"the noise suppressor works at {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz, not {int(rate_hz)} Hz"
        )
    return int(rate_hz)


def _mono(x: object) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise FrontendError(f"samples must be numeric audio ({exc})") from None
    if arr.ndim != 1:
        raise FrontendError(f"samples must be a 1-D mono array, got shape {arr.shape}")
    return arr


def _fptr(arr: np.ndarray):
    return ffi.cast("float *", ffi.from_buffer(arr))


class NoiseSuppressor:
    """Streaming noise suppressor for one mono signal at ``rate_hz``.

    :meth:`process` returns as many samples as it is given: the processed signal delayed by
    :attr:`latency_samples` (zeros first). :meth:`flush` ends the stream and returns the last
    ``latency_samples`` samples; :meth:`reset` starts a new stream. Not thread-safe: use one
    object per stream.
    """

    def __init__(self, rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.rate_hz = _rate(rate_hz)
        if lib is None:
            raise FrontendError(
                "noise suppression needs the compiled frontend (edgeser._native); reinstall "
                "edgeser with a C compiler available"
            )
        handle = ffi.new("edgeser_denoiser **")
        check(lib.edgeser_denoiser_create(self.rate_hz, handle), "creating a noise suppressor")
        self._handle = ffi.gc(handle[0], lib.edgeser_denoiser_destroy)
        info = ffi.new("edgeser_denoiser_info *")
        check(lib.edgeser_denoiser_info_get(self._handle, info), "reading suppressor info")
        self._latency = int(info.latency)
        self.frame_samples = int(info.frame)
        self._flushed = False

    @property
    def latency_samples(self) -> int:
        """Samples by which the output trails the input."""
        return self._latency

    def _check_open(self) -> None:
        if self._flushed:
            raise FrontendError("this noise suppressor was flushed; call reset() to start anew")

    def process(self, x: np.ndarray) -> np.ndarray:
        """Consume mono samples; return as many, delayed by :attr:`latency_samples`."""
        self._check_open()
        arr = _mono(x)
        out = np.empty_like(arr)
        if arr.size:
            check(lib.edgeser_denoiser_process(self._handle, _fptr(arr), _fptr(out), arr.size),
                  "suppressing noise")
        return out

    def flush(self) -> np.ndarray:
        """End the stream: the last :attr:`latency_samples` samples (input padded with zeros)."""
        self._check_open()
        out = np.empty(self._latency, dtype=np.float32)
        n_out = ffi.new("size_t *")
        check(lib.edgeser_denoiser_flush(self._handle, _fptr(out), out.size, n_out),
              "flushing the noise suppressor")
        self._flushed = True
        return out[: n_out[0]]

    def reset(self) -> None:
        """Start a new stream: the next sample is time zero, noise estimates start afresh."""
        check(lib.edgeser_denoiser_reset(self._handle), "resetting the noise suppressor")
        self._flushed = False


def denoise(x: np.ndarray, rate_hz: int) -> np.ndarray:
    """The whole mono signal ``x`` at ``rate_hz`` denoised, latency removed: float32, same
    length as ``x``."""
    arr = _mono(x)
    suppressor = NoiseSuppressor(rate_hz)
    lead = suppressor.latency_samples
    out = np.concatenate([suppressor.process(arr), suppressor.flush()])
    return out[lead:lead + arr.size]


# ------------------------------------------------------------------ files

# Output sample format by the input's: 16-bit for 16-bit-or-less and lossy sources, 24-bit for
# 24-bit, 32-bit float for 32-bit and float sources.
_SUBTYPE_24 = frozenset({"PCM_24"})
_SUBTYPE_FLOAT = frozenset({"PCM_32", "FLOAT", "DOUBLE"})


@dataclass(frozen=True)
class DenoisedFile:
    """What :func:`denoise_file` wrote."""

    source: str
    destination: str
    rate_hz: int
    samples: int
    subtype: str  # the WAV's sample format (soundfile's name)

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate_hz


def denoise_file(source: str | os.PathLike, destination: str | os.PathLike, *,
                 rate_hz: int | None = None) -> DenoisedFile:
    """Decode ``source`` (any format :mod:`edgeser.audio` reads), mix it to mono, denoise it and
    write a mono WAV to ``destination`` (temp file + rename: never half written), in blocks, so
    memory stays bounded however long the file is.

    The signal is denoised at its own rate, or first resampled to ``rate_hz`` (which may only be
    :data:`~edgeser.contract.SAMPLE_RATE_HZ`, the frontend resampler's rate). The WAV has as
    many samples as the (resampled) input, latency removed. A bad file raises
    :class:`~edgeser.errors.AudioError` naming it.
    """
    import soundfile as sf

    from edgeser import audio, frontend
    from edgeser.atomic import atomic_file
    from edgeser.errors import AudioError

    label = os.fspath(source)
    if rate_hz is not None and rate_hz != SAMPLE_RATE_HZ:
        raise FrontendError(f"denoise resamples only to {SAMPLE_RATE_HZ} Hz, not {rate_hz!r}")
    info = audio.probe(source)
    resampler = None
    out_rate = info.rate_hz
    if rate_hz is not None and rate_hz != info.rate_hz:
        resampler = frontend.Resampler(info.rate_hz)
        out_rate = rate_hz
    if not MIN_RATE_HZ <= out_rate <= MAX_RATE_HZ:
        raise AudioError(
            f"{label}: its rate of {out_rate} Hz is outside the noise suppressor's "
            f"{MIN_RATE_HZ}..{MAX_RATE_HZ} Hz; resample it to {SAMPLE_RATE_HZ} Hz first"
        )
    suppressor = NoiseSuppressor(out_rate)
    subtype = ("PCM_24" if info.subtype in _SUBTYPE_24
               else "FLOAT" if info.subtype in _SUBTYPE_FLOAT else "PCM_16")
    blocks = audio.iter_blocks(source)
    skip = suppressor.latency_samples  # the output's leading delay, dropped
    written = 0
    with atomic_file(destination, binary=True) as fh, \
            sf.SoundFile(fh, mode="w", samplerate=out_rate, channels=1, format="WAV",
                         subtype=subtype) as wav:

        def write(y: np.ndarray) -> None:
            nonlocal skip, written
            drop = min(skip, y.size)
            skip -= drop
            y = y[drop:]
            # libsndfile wraps float values beyond full scale when it writes integers.
            wav.write(y if subtype == "FLOAT" else np.clip(y, -1.0, 1.0))
            written += y.size

        for block in blocks:
            mono = audio.mix_to_mono(block)
            write(suppressor.process(resampler.process(mono) if resampler else mono))
        if resampler is not None:
            write(suppressor.process(resampler.flush()))
        write(suppressor.flush())
    return DenoisedFile(label, os.fspath(destination), out_rate, written, subtype)
