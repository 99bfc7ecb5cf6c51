"""Live audio from a byte stream that cannot seek: a WAV stream or raw PCM described by the caller.

``edgeser.audio`` decodes files; this module reads audio as it arrives, for pipes such as
``arecord -f S16_LE -r 48000 -c 1 | edgeser ...``, FIFOs and sockets. It never seeks and never
waits for the end of the stream before delivering audio.

Conventions:

- The stream is a binary file object (``sys.stdin.buffer``, ``open(fifo, "rb")``,
  ``socket.makefile("rb")``); ``name`` names it in messages.
- With ``rate_hz``, ``channels`` and ``sample_format`` all given, the stream is raw interleaved
  PCM: integers little-endian (``u8`` unsigned, ``s16``/``s24``/``s32`` signed), floats
  (``f32``/``f64``) in host byte order. With none given, the stream must start with a RIFF/WAVE
  (or RF64/BW64) header, which is read byte by byte as needed; other chunks before ``data`` are
  read and discarded.
- The WAV ``data`` chunk is read until the end of the stream or until its declared size, whichever
  comes first: tools that write WAV to a pipe cannot know the length and put a placeholder there
  (0, 0xFFFFFFFF, or a large value as arecord does). 0 and 0xFFFFFFFF mean "until the end".
- Audio comes out as float32 arrays shaped ``(frames, channels)`` converted by
  :func:`edgeser.frontend.pcm_to_float`: integers scaled to [-1, 1), floats unchanged.
- Memory is bounded by ``max_frames`` of :meth:`PcmStream.chunks`, however long the stream runs.
- Every failure of the stream or its data is an :class:`~edgeser.errors.AudioError` whose message
  is one sentence naming the source and the problem; values a user gives on the command line
  (rate, channels, sample format) are checked the same way. Invalid programming arguments
  (``max_frames``, wrong types) raise ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

import io
import numbers
import select
import struct
import sys
import time
from dataclasses import dataclass
from typing import IO, Iterator

import numpy as np

from edgeser import frontend
from edgeser.audio import MAX_CHANNELS, MAX_RATE_HZ, MIN_RATE_HZ
from edgeser.contract import SAMPLE_FORMAT_BYTES, SAMPLE_FORMATS
from edgeser.errors import AudioError, FrontendError

__all__ = ["SAMPLE_FORMATS", "PcmFormat", "PcmStream", "open_pcm_stream"]


# Largest single read: bounds the buffer a read preallocates (BufferedReader.read1(n) allocates n
# bytes up front) when a caller asks for very large chunks.
_MAX_READ_BYTES = 1 << 20
# Piece size when discarding a chunk before 'data' (a LIST chunk may be large).
_SKIP_BYTES = 1 << 16
# Bytes of a 'fmt ' chunk that are interpreted (WAVE_FORMAT_EXTENSIBLE is 40); the rest is skipped.
_FMT_BYTES = 40

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The subformat GUIDs of WAVE_FORMAT_EXTENSIBLE are a 16-bit format code followed by this suffix.
_KSDATAFORMAT_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")
# Names for format codes users meet in practice, to make the "unsupported" message actionable.
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}
_UNTIL_EOF = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class PcmFormat:
    """The layout of the PCM data: rate, interleaved channels and the encoding of one sample."""

    rate_hz: int
    channels: int
    sample_format: str

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample of one channel."""
        return SAMPLE_FORMAT_BYTES[self.sample_format]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame (one sample of every channel)."""
        return self.channels * self.sample_bytes


def open_pcm_stream(
    stream: IO[bytes],
    name: str,
    *,
    rate_hz: int | None = None,
    channels: int | None = None,
    sample_format: str | None = None,
) -> PcmStream:
    """Open ``stream`` for live reading: raw PCM when all three of ``rate_hz``, ``channels`` and
    ``sample_format`` are given, otherwise a WAV stream whose header is read here.

    Reads only the header bytes (nothing for raw PCM), so it returns as soon as the header has
    arrived; raises :class:`AudioError` for a missing, cut or unsupported header and for invalid
    raw parameters.
    """
    if not hasattr(stream, "read"):
        raise TypeError(f"stream must be a binary file object, not {type(stream).__name__}")
    label = _display(name)
    given = {"--rate": rate_hz, "--channels": channels, "--sample-format": sample_format}
    missing = [option for option, value in given.items() if value is None]
    reader = _Reader(stream, label)
    if not missing:
        fmt = _raw_format(label, rate_hz, channels, sample_format)
        return PcmStream(reader, name, fmt, "raw", None)
    if len(missing) < len(given):
        raise AudioError(
            f"{label}: raw PCM needs --rate, --channels and --sample-format "
            f"(missing: {', '.join(missing)})."
        )
    fmt, data_bytes = _read_wav_header(reader, label)
    return PcmStream(reader, name, fmt, "wav", data_bytes)


class PcmStream:
    """An open PCM stream: its format, and :meth:`chunks` to read the audio as it arrives.

    ``container`` is ``"wav"`` or ``"raw"``. Not thread-safe; one reader per stream.
    """

    def __init__(
        self, reader: _Reader, name: str, fmt: PcmFormat, container: str, data_bytes: int | None
    ) -> None:
        self.name = name
        self.format = fmt
        self.container = container
        self._reader = reader
        self._label = _display(name)
        # Bytes of audio left before the declared end of the data chunk; None: until EOF.
        self._remaining = data_bytes
        self._pending = b""  # an incomplete frame carried over to the next read
        self._frames = 0
        self._ended = False
        # WAV floats are little-endian; the frontend reads floats in host order.
        self._swap = (
            container == "wav" and sys.byteorder == "big" and fmt.sample_format in ("f32", "f64")
        )

    @property
    def frames_read(self) -> int:
        """Frames yielded by :meth:`chunks` so far."""
        return self._frames

    def chunks(self, max_frames: int = 4096) -> Iterator[np.ndarray]:
        """Yield float32 arrays shaped ``(frames, channels)`` with 1 to ``max_frames`` frames, each
        as soon as the stream has delivered whole frames (a live pipe is not waited on to fill
        ``max_frames``), until the stream ends or the WAV data chunk's declared size is reached.

        A stream that ends inside a frame raises :class:`AudioError` after the complete frames
        were yielded; so do NaN or infinite float samples (naming the time of the first) and read
        errors. Calling again continues where the previous iteration stopped.
        """
        if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral):
            raise TypeError(f"max_frames must be an int, got {type(max_frames).__name__}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        return self._chunks(int(max_frames))

    def _chunks(self, max_frames: int) -> Iterator[np.ndarray]:
        frame_bytes = self.format.frame_bytes
        budget = max_frames * frame_bytes
        while not self._ended:
            want = min(budget - len(self._pending), _MAX_READ_BYTES)
            if self._remaining is not None:
                want = min(want, self._remaining)
            if want <= 0:
                # The declared data size is reached: reading on could block on a live pipe or
                # take the chunks after 'data' for audio.
                self._finish()
                return
            data = self._reader.read_some(want)
            if not data:
                self._finish()
                return
            if self._remaining is not None:
                self._remaining -= len(data)
            buffer = self._pending + data if self._pending else data
            whole = len(buffer) - len(buffer) % frame_bytes
            self._pending = buffer[whole:]
            if whole:
                block = self._convert(buffer[:whole] if whole < len(buffer) else buffer)
                self._frames += len(block)
                yield block

    def _finish(self) -> None:
        self._ended = True
        if self._pending:
            trailing = len(self._pending)
            self._pending = b""
            plural = "" if trailing == 1 else "s"
            raise AudioError(
                f"{self._label}: the stream ended mid-sample ({trailing} trailing byte{plural}; "
                f"a frame is {self.format.frame_bytes} bytes)."
            )

    def _convert(self, data: bytes) -> np.ndarray:
        fmt = self.format
        if self._swap:
            data = np.frombuffer(data, dtype=_float_dtype(fmt.sample_format)).byteswap().tobytes()
        try:
            return frontend.pcm_to_float(data, fmt.channels, fmt.sample_format)
        except FrontendError:
            if fmt.sample_format not in ("f32", "f64"):
                raise
            # The frontend rejects NaN/Inf without saying where; find the first bad frame.
            with np.errstate(over="ignore", invalid="ignore"):
                values = np.frombuffer(data, dtype=_float_dtype(fmt.sample_format))
                values = values.astype(np.float32).reshape(-1, fmt.channels)
            finite = np.isfinite(values).all(axis=1)
            if finite.all():
                raise
            row = int(np.argmin(finite))
            self._ended = True
            raise AudioError(
                f"{self._label}: contains a non-finite sample (NaN or infinity) at "
                f"{(self._frames + row) / fmt.rate_hz:.3f} s."
            ) from None


# ---------------------------------------------------------------------------------------------
# Reading the stream


class _Reader:
    """Reads from a non-seekable binary stream, turning its failures into AudioError."""

    def __init__(self, stream: IO[bytes], label: str) -> None:
        self._stream = stream
        self._label = label
        # read1() returns what is buffered or one raw read's worth, so a live pipe delivers
        # audio without waiting for a full block; plain read() is the fallback.
        self._read = getattr(stream, "read1", None) or stream.read
        self.consumed = 0  # bytes read so far (for messages about the header)

    def read_some(self, size: int) -> bytes:
        """Up to ``size`` bytes (at least 1 unless the stream has ended)."""
        while True:
            try:
                data = self._read(size)
            except BlockingIOError:
                data = None
            except (OSError, ValueError) as err:  # ValueError: the stream was closed
                raise AudioError(f"{self._label}: cannot be read ({_problem(err)}).") from None
            if data is None:  # a non-blocking stream with nothing ready yet
                self._wait_readable()
                continue
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"{self._label} is a text stream; pass a binary file object "
                    f"(e.g. sys.stdin.buffer)"
                )
            data = bytes(data)
            self.consumed += len(data)
            return data

    def read_exact(self, size: int) -> bytes:
        """``size`` bytes, or fewer only when the stream ends first."""
        parts = []
        missing = size
        while missing > 0:
            data = self.read_some(missing)
            if not data:
                break
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    def skip(self, size: int) -> bool:
        """Read and discard ``size`` bytes; False when the stream ends first."""
        while size > 0:
            data = self.read_some(min(size, _SKIP_BYTES))
            if not data:
                return False
            size -= len(data)
        return True

    def _wait_readable(self) -> None:
        try:
            select.select([self._stream.fileno()], [], [])
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Formats and the WAV header


def _raw_format(label: str, rate_hz: object, channels: object, sample_format: object) -> PcmFormat:
    """Validate the raw PCM parameters a user gave."""
    for what, value in (("rate_hz", rate_hz), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not isinstance(sample_format, str):
        raise TypeError(f"sample_format must be a str, got {type(sample_format).__name__}")
    if sample_format not in SAMPLE_FORMATS:
        raise AudioError(
            f"{label}: unknown sample format {_display(repr(sample_format))}; use one of "
            f"{', '.join(SAMPLE_FORMATS)}."
        )
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise AudioError(
            f"{label}: a raw PCM rate of {rate_hz} Hz is not supported; supported rates are "
            f"{MIN_RATE_HZ} to {MAX_RATE_HZ} Hz."
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            f"{label}: raw PCM with {channels} channels is not supported; give 1 to "
            f"{MAX_CHANNELS} channels."
        )
    return PcmFormat(int(rate_hz), int(channels), sample_format)


def _read_wav_header(reader: _Reader, label: str) -> tuple[PcmFormat, int | None]:
    """Read the header up to the start of the data; return the format and the data bytes to read
    (None: until EOF)."""

    def need(size: int) -> bytes:
        data = reader.read_exact(size)
        if len(data) < size:
            raise AudioError(
                f"{label}: the stream ended inside the WAV header (after {reader.consumed} bytes)."
            )
        return data

    magic = reader.read_exact(4)
    if not magic:
        raise AudioError(f"{label}: is empty (0 bytes); a WAV header was expected.")
    if not any(form.startswith(magic) for form in (b"RIFF", b"RF64", b"BW64")):
        raise AudioError(
            f"{label}: not a WAV stream; for raw PCM give --rate, --channels and --sample-format."
        )
    if len(magic) < 4:
        need(4)  # raises: the stream has ended
    rf64 = magic != b"RIFF"
    form = need(8)[4:]  # the RIFF size is ignored: streaming writers cannot know it
    if form != b"WAVE":
        raise AudioError(
            f"{label}: is a RIFF stream of type {_fourcc(form)}, not WAVE; for raw PCM give "
            f"--rate, --channels and --sample-format."
        )
    fmt: PcmFormat | None = None
    ds64_data_bytes: int | None = None
    while True:
        chunk_id, size = struct.unpack("<4sI", need(8))
        padded = size + (size & 1)  # chunks are word-aligned: an odd size is followed by a pad byte
        if chunk_id == b"data":
            if fmt is None:
                raise AudioError(
                    f"{label}: its WAV 'data' chunk comes before the 'fmt ' chunk, so the "
                    f"format of the audio is unknown."
                )
            if rf64 and size == 0xFFFFFFFF and ds64_data_bytes is not None:
                size = ds64_data_bytes
                data_bytes = None if size in (0, 0xFFFFFFFFFFFFFFFF) else size
            else:
                data_bytes = None if size in _UNTIL_EOF else size
            if data_bytes is not None:
                # A placeholder size need not be a whole number of frames; stop at the last one.
                data_bytes -= data_bytes % fmt.frame_bytes
            return fmt, data_bytes
        if chunk_id == b"fmt ":
            if fmt is not None:
                raise AudioError(f"{label}: its WAV header has two 'fmt ' chunks.")
            if size < 16:
                raise AudioError(
                    f"{label}: its WAV 'fmt ' chunk has {size} bytes; at least 16 are required."
                )
            body = need(min(size, _FMT_BYTES))
            fmt = _parse_fmt(body, label)
            if not reader.skip(padded - len(body)):
                need(1)  # raises
        elif chunk_id == b"ds64" and rf64 and size >= 24:
            body = need(24)
            (ds64_data_bytes,) = struct.unpack_from("<Q", body, 8)
            if not reader.skip(padded - 24):
                need(1)
        elif not reader.skip(padded):
            need(1)


def _parse_fmt(body: bytes, label: str) -> PcmFormat:
    tag, channels, rate_hz, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
    code = tag
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < _FMT_BYTES:
            raise AudioError(
                f"{label}: its WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {len(body)} bytes; "
                f"{_FMT_BYTES} are required."
            )
        guid = body[24:40]
        (code,) = struct.unpack_from("<H", guid)
        if guid[2:] != _KSDATAFORMAT_SUFFIX:
            raise AudioError(
                f"{label}: uses WAVE_FORMAT_EXTENSIBLE with the unknown subformat {guid.hex()}; "
                f"only PCM and IEEE float are supported."
            )
    if code == _WAVE_FORMAT_PCM:
        sample_format = {8: "u8", 16: "s16", 24: "s24", 32: "s32"}.get(bits)
        if sample_format is None:
            raise AudioError(
                f"{label}: declares {bits}-bit PCM; supported are 8, 16, 24 and 32 bits."
            )
    elif code == _WAVE_FORMAT_IEEE_FLOAT:
        sample_format = {32: "f32", 64: "f64"}.get(bits)
        if sample_format is None:
            raise AudioError(
                f"{label}: declares {bits}-bit IEEE float; supported are 32 and 64 bits."
            )
    else:
        known = _FORMAT_NAMES.get(code)
        what = f"{code} (0x{code:04X}, {known})" if known else f"{code} (0x{code:04X})"
        where = " as the WAVE_FORMAT_EXTENSIBLE subformat" if tag != code else ""
        raise AudioError(
            f"{label}: uses WAV format code {what}{where}; only PCM (1) and IEEE float (3) "
            f"are supported."
        )
    if channels < 1:
        raise AudioError(f"{label}: declares {channels} channels; at least 1 is required.")
    if channels > MAX_CHANNELS:
        raise AudioError(
            f"{label}: declares {channels} channels; at most {MAX_CHANNELS} are supported."
        )
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise AudioError(
            f"{label}: declares a sample rate of {rate_hz} Hz; supported rates are "
            f"{MIN_RATE_HZ} to {MAX_RATE_HZ} Hz."
        )
    fmt = PcmFormat(rate_hz, channels, sample_format)
    if block_align != fmt.frame_bytes:
        of = "1 channel of" if channels == 1 else f"{channels} channels of"
        verb = "takes" if channels == 1 else "take"
        raise AudioError(
            f"{label}: declares a block size of {block_align} bytes, but {of} {bits}-bit "
            f"samples {verb} {fmt.frame_bytes} bytes."
        )
    return fmt


# ---------------------------------------------------------------------------------------------
# Small helpers


def _float_dtype(sample_format: str) -> np.dtype:
    return np.dtype(np.float32 if sample_format == "f32" else np.float64)


def _fourcc(tag: bytes) -> str:
    return _display(repr(tag.decode("latin-1")))


def _problem(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _display(name: str) -> str:
    """A name safe to put in a one-line message (control characters escaped)."""
    name = str(name)
    if name.isprintable():
        return name
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)
