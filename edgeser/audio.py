"""Audio decoding: WAV, FLAC, Ogg (Vorbis, Opus), MP3 and the rest of libsndfile, through soundfile.

Every source is decoded to float32 arrays shaped ``(frames, channels)``; integer encodings land in
[-1, 1) (libsndfile's scaling), float encodings keep their values. Files are read in blocks, so
memory stays bounded by the block size however long the recording is.

Conventions:

- A *source* is a path (``str`` / ``os.PathLike``), a binary file object (``name=`` names it in
  messages; a non-seekable one such as ``sys.stdin.buffer`` is first spooled to a temporary file,
  in memory up to 32 MiB and on disk beyond), or ``bytes``.
- Headers are validated before any large allocation: rate in ``MIN_RATE_HZ..MAX_RATE_HZ``, 1 to
  ``MAX_CHANNELS`` channels, and for uncompressed encodings a frame count that fits in the file.
- Every failure is an :class:`~edgeser.errors.AudioError` whose message is one sentence naming the
  source and the problem. Invalid *arguments* (block size, ``nonfinite`` mode) are programming
  errors and raise ``ValueError`` / ``TypeError``.
- A file that ends early (a WAV whose data chunk runs past the end of the file, a compressed stream
  cut mid-way or damaged so the decoder loses sync) is decoded up to where the audio stops, with one
  :class:`AudioWarning` saying so: a partial recording is more useful than none, and the warning
  keeps the loss visible.
- A header with no audio (e.g. a WAV whose data chunk is empty) is a valid file of 0 frames; callers
  decide what too short means.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import warnings
from dataclasses import dataclass
from typing import IO, Callable, Iterator, Literal, Union

import numpy as np
import soundfile as sf

from edgeser import frontend
from edgeser.errors import AudioError

__all__ = [
    "DEFAULT_BLOCK_FRAMES",
    "MAX_CHANNELS",
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "AudioInfo",
    "AudioWarning",
    "iter_blocks",
    "mix_to_mono",
    "probe",
    "read",
    "read_mono",
]

MIN_RATE_HZ = 1
# Highest rate accepted: 384 kHz is the top rate of professional converters; anything above is a
# corrupt header, not a recording.
MAX_RATE_HZ = 384_000
# Channel limit: 256 covers every real layout (ambisonics, mic arrays); a larger count is a corrupt
# header, and channels multiply every buffer we allocate.
MAX_CHANNELS = 256
# Frames per yielded block: 65536 frames is 4.1 s at 16 kHz and 1.4 s at 48 kHz, 512 KiB as stereo
# float32. Large enough that per-block overhead (Python, libsndfile calls, the NaN scan) vanishes,
# small enough for edge-device memory, and a multiple of common codec frame sizes (FLAC's 4096).
DEFAULT_BLOCK_FRAMES = 65536

# Frames per libsndfile read call inside a block; a decoder error mid-stream discards at most the
# frames of the call that failed, so smaller calls lose less of a damaged file.
_READ_FRAMES = 8192
# Bytes of the source's start read to diagnose WAV headers (chunks beyond it are not inspected).
_HEAD_BYTES = 65536
# A non-seekable stream is spooled to a temporary file; this much stays in memory.
_SPOOL_MEMORY_BYTES = 32 * 1024 * 1024
# read() of a compressed file preallocates at most this many bytes from the (unverifiable)
# declared length and grows from there.
_PREALLOC_COMPRESSED_BYTES = 64 * 1024 * 1024

# Containers whose frame count comes from a compressed stream: the byte-size check does not apply.
_COMPRESSED_FORMATS = frozenset({"FLAC", "OGG", "MP3", "MPEG"})
# Bytes per sample of the uncompressed subtypes (for the frame-count plausibility check).
_BYTES_PER_SAMPLE = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}

Source = Union[str, "os.PathLike[str]", IO[bytes], bytes, bytearray, memoryview]
NonFinite = Literal["error", "zero"]


class AudioWarning(UserWarning):
    """Audio was decoded but something was lost or changed (truncated file, zeroed NaN/Inf)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a source declares, after validation.

    ``frames`` is the frame count per channel from the header (exact for uncompressed formats,
    which libsndfile clamps to the data present; an estimate or hint for compressed ones, where the
    decoded length is what counts).
    """

    path: str
    rate_hz: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        """Declared duration in seconds."""
        return self.frames / self.rate_hz


# ---------------------------------------------------------------------------------------------
# Public API


def probe(source: Source, *, name: str | None = None) -> AudioInfo:
    """Open ``source``, validate its header and return its :class:`AudioInfo` without decoding.

    A seekable file object is left at the position it had.
    """
    opened = _open(source, name, restore=True)
    try:
        return opened.info
    finally:
        opened.close()


def iter_blocks(
    source: Source,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    nonfinite: NonFinite = "error",
    *,
    name: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``source`` as float32 blocks shaped ``(frames, channels)``.

    Every block has ``block_frames`` frames except the last, which may be shorter; a file of 0
    frames yields nothing. The source is opened and validated at the call, so a bad file raises
    :class:`AudioError` here, not at the first ``next()``; decoding errors later on are
    :class:`AudioError` too.

    ``nonfinite``: ``"error"`` raises :class:`AudioError` at the first NaN or infinity, naming its
    time; ``"zero"`` replaces them by 0.0 and warns (:class:`AudioWarning`) with the count once the
    iteration ends.

    A file that ends before its header says, or whose compressed stream breaks off (truncated or
    damaged), yields the audio up to that point and then warns once (:class:`AudioWarning`).

    ``on_warning``, when given, receives those warning sentences instead of :mod:`warnings`
    (which is process-global, so concurrent callers cannot tell whose warning is whose).
    """
    _check_block_frames(block_frames)
    _check_nonfinite(nonfinite)
    opened = _open(source, name)
    return _blocks(opened, block_frames, nonfinite, on_warning or _warn)


def read(
    source: Source,
    nonfinite: NonFinite = "error",
    max_duration_s: float | None = None,
    *,
    name: str | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """Decode all of ``source`` into one float32 array shaped ``(frames, channels)``.

    ``max_duration_s`` guards memory: a source declaring or decoding more than that many seconds
    raises :class:`AudioError` before (or as soon as) it exceeds the limit. Truncation and
    ``nonfinite`` behave as in :func:`iter_blocks`.
    """
    return _read_all(source, nonfinite, max_duration_s, name, mono=False)


def read_mono(
    source: Source,
    nonfinite: NonFinite = "error",
    max_duration_s: float | None = None,
    *,
    name: str | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """As :func:`read`, mixed block by block to one float32 channel (1-D) by :func:`mix_to_mono`."""
    return _read_all(source, nonfinite, max_duration_s, name, mono=True)


def mix_to_mono(block: np.ndarray) -> np.ndarray:
    """Mean over channels of a ``(frames, channels)`` block, accumulated in float64, as float32 1-D
    (the frontend's mixdown). A 1-D block is taken as mono already and returned as a float32 copy.
    """
    block = np.asarray(block)
    if block.ndim == 1:
        return block.astype(np.float32, copy=True)
    if block.ndim != 2:
        raise ValueError(f"expected a (frames, channels) block, got shape {block.shape}")
    return frontend.to_mono(block)


# ---------------------------------------------------------------------------------------------
# Opening and validation


@dataclass
class _Opened:
    """An open, validated source: the soundfile handle and what is needed to read it."""

    file: sf.SoundFile
    info: AudioInfo
    stream: _GuardedStream | None  # the wrapper of a file-object source, to report its errors
    expected_frames: int | None  # frames the header promises beyond libsndfile's count, if known
    truncated_header: bool  # the header itself is cut short (no length to compare against)
    cleanup: list  # extra things to close (a spool file)
    restore: tuple | None = None  # (stream, position) to seek back to after probe()

    def close(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real outcome
            pass
        for thing in self.cleanup:
            try:
                thing.close()
            except Exception:  # noqa: BLE001
                pass
        if self.restore is not None:
            stream, position = self.restore
            try:
                stream.seek(position)
            except Exception:  # noqa: BLE001
                pass


def _open(source: Source, name: str | None, *, restore: bool = False) -> _Opened:
    """Open ``source`` with soundfile after checking what can be checked by hand.

    ``restore``: seek a file-object source back to where it was once the result is closed.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        given = name if name is not None else path
        label = _display(given)
        try:
            st = os.stat(path)
        except OSError as err:
            raise AudioError(f"{label}: {_os_problem(err)}.") from None
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(f"{label}: is a directory, not an audio file.")
        if not stat.S_ISREG(st.st_mode):
            # A pipe or device (e.g. /dev/stdin): read it as a stream.
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by _Opened.cleanup
            except OSError as err:
                raise AudioError(f"{label}: {_os_problem(err)}.") from None
            try:
                opened = _open_stream(handle, given, restore=False)
            except BaseException:
                handle.close()
                raise
            opened.cleanup.append(handle)
            return opened
        try:
            with open(path, "rb") as handle:
                head = handle.read(_HEAD_BYTES)
                size = os.fstat(handle.fileno()).st_size
        except OSError as err:
            raise AudioError(f"{label}: {_os_problem(err)}.") from None
        return _open_checked(_sndfile_path(path), given, head, size, stream=None, cleanup=[])
    if isinstance(source, (bytes, bytearray, memoryview)):
        given = name if name is not None else "<bytes>"
        return _open_stream(io.BytesIO(bytes(source)), given, restore=False)
    if not hasattr(source, "read"):
        kind = type(source).__name__
        raise TypeError(f"audio source must be a path, a binary file object or bytes, not {kind}")
    if name is None:
        attr = getattr(source, "name", None)
        name = attr if isinstance(attr, str) else "<stream>"
    return _open_stream(source, name, restore=restore)


def _open_stream(stream: IO[bytes], given: str, *, restore: bool) -> _Opened:
    """Open a file object: seekable ones in place (from their current position), others spooled."""
    label = _display(given)
    cleanup: list = []
    start = _stream_position(stream)
    if start is None:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)  # noqa: SIM115
        cleanup.append(spool)
        try:
            _spool(stream, spool, label)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        guarded = _GuardedStream(spool, 0)
        restore_to = None
    else:
        guarded = _GuardedStream(stream, start)
        restore_to = (stream, start) if restore else None
    try:
        size = guarded.size()
        head = guarded.read(_HEAD_BYTES)
        guarded.seek(0)
        if guarded.error is not None:
            raise AudioError(f"{label}: cannot be read ({_one_line(guarded.error)}).")
        if not isinstance(head, bytes):
            raise TypeError(
                f"{label} is a text stream; pass a binary file object (e.g. sys.stdin.buffer)"
            )
        opened = _open_checked(guarded, given, head, size, stream=guarded, cleanup=cleanup)
    except BaseException:
        for thing in cleanup:
            thing.close()
        if restore_to is not None:
            _quiet_seek(stream, start)
        raise
    opened.restore = restore_to
    return opened


def _open_checked(
    target, given: str, head: bytes, size: int | None, *, stream, cleanup: list
) -> _Opened:
    """Open ``target`` (a path or guarded stream) with soundfile and validate its header."""
    label = _display(given)
    if size == 0 or (size is None and not head):
        raise AudioError(f"{label}: is empty (0 bytes).")
    wav = _sniff_wav(head, size)
    try:
        handle = sf.SoundFile(target, mode="r")
    except (RuntimeError, ValueError, EOFError, OSError, sf.SoundFileError) as err:
        if stream is not None and stream.error is not None:
            raise AudioError(f"{label}: cannot be read ({_one_line(stream.error)}).") from None
        raise AudioError(f"{label}: {_open_problem(err, head, wav)}.") from None
    try:
        info = AudioInfo(
            path=given,
            rate_hz=int(handle.samplerate),
            channels=int(handle.channels),
            frames=int(handle.frames),
            format=str(handle.format),
            subtype=str(handle.subtype),
        )
        _validate_info(info, size)
    except BaseException:
        handle.close()
        raise
    expected = None
    truncated_header = False
    if wav is not None and info.format in ("WAV", "WAVEX"):
        expected, truncated_header = wav.expected_frames, wav.truncated_header
    return _Opened(handle, info, stream, expected, truncated_header, cleanup)


def _validate_info(info: AudioInfo, size_bytes: int | None) -> None:
    """Raise :class:`AudioError` if the header's rate, channels or frame count are implausible."""
    label = _display(info.path)
    if info.channels < 1:
        raise AudioError(f"{label}: declares {info.channels} channels; at least 1 is required.")
    if info.channels > MAX_CHANNELS:
        raise AudioError(
            f"{label}: declares {info.channels} channels; at most {MAX_CHANNELS} are supported."
        )
    if not MIN_RATE_HZ <= info.rate_hz <= MAX_RATE_HZ:
        raise AudioError(f"{label}: {_rate_problem(info.rate_hz)}.")
    if info.frames < 0:
        raise AudioError(f"{label}: declares a negative length ({info.frames} frames).")
    width = _BYTES_PER_SAMPLE.get(info.subtype)
    if width is not None and info.format not in _COMPRESSED_FORMATS and size_bytes is not None:
        needed = info.frames * info.channels * width
        if needed > size_bytes:
            raise AudioError(
                f"{label}: declares {info.frames} frames ({needed} bytes of {info.subtype} audio) "
                f"but the file holds only {size_bytes} bytes."
            )


def _rate_problem(rate_hz: int) -> str:
    return (
        f"declares a sample rate of {rate_hz} Hz; supported rates are "
        f"{MIN_RATE_HZ} to {MAX_RATE_HZ} Hz"
    )


def _open_problem(err: Exception, head: bytes, wav: _WavHeader | None) -> str:
    """The problem (a sentence fragment, no name, no final period) behind a failed open."""
    if wav is not None and wav.channels is not None:
        if wav.channels == 0:
            return "declares 0 channels; at least 1 is required"
        if wav.channels > MAX_CHANNELS:
            return f"declares {wav.channels} channels; at most {MAX_CHANNELS} are supported"
        if not MIN_RATE_HZ <= wav.rate_hz <= MAX_RATE_HZ:
            return _rate_problem(wav.rate_hz)
    text = _libsndfile_text(err)
    lowered = text.lower()
    if "format not recognised" in lowered or "format not recognized" in lowered:
        if _looks_like_text(head):
            return "is a text file, not audio"
        return "is not in a recognised audio format (WAV, FLAC, Ogg, MP3, ...)"
    if "no 'data' chunk" in lowered:
        return "is a WAV file without a 'data' chunk (its header is truncated or damaged)"
    if "'fmt ' chunk" in lowered:
        return "has a truncated or malformed WAV 'fmt ' chunk"
    if "sf_info struct incomplete" in lowered:
        return "has an invalid header (sample rate, channel count or sample format is missing)"
    if "channel count is zero" in lowered:
        return "declares 0 channels; at least 1 is required"
    if "too many channels" in lowered:
        return f"declares too many channels; at most {MAX_CHANNELS} are supported"
    if "unimplemented format" in lowered:
        return "uses an encoding that is not supported, or its header is truncated"
    if "malformed" in lowered or "not a regular file" in lowered:
        # libsndfile's MPEG reader says "not a regular file (possibly a pipe?)" for a cut stream.
        return "is damaged or truncated and cannot be decoded"
    if "system error" in lowered:
        return "could not be opened (system error)"
    return f"could not be decoded ({text})"


def _libsndfile_text(err: Exception) -> str:
    """libsndfile's own message without soundfile's "Error opening ...:" prefix, on one line."""
    text = getattr(err, "error_string", None) or str(err)
    text = _one_line(text).strip()
    if text.lower().startswith("error :"):
        text = text[len("error :") :].strip()
    return text.rstrip(".") or type(err).__name__


def _os_problem(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "does not exist"
    if isinstance(err, IsADirectoryError):
        return "is a directory, not an audio file"
    if isinstance(err, PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(err, NotADirectoryError):
        return "does not exist (a parent in its path is not a directory)"
    reason = err.strerror or str(err) or type(err).__name__
    return f"cannot be read ({_one_line(reason)})"


def _looks_like_text(head: bytes) -> bool:
    sample = head[:4096]
    if not sample:
        return False
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in decoded)


# ---------------------------------------------------------------------------------------------
# WAV header diagnosis (libsndfile reports a bad fmt chunk only as "SF_INFO struct incomplete",
# and clamps a data chunk that runs past the end of the file without a word)


@dataclass(frozen=True)
class _WavHeader:
    channels: int | None  # None when the fmt chunk is missing or cut short
    rate_hz: int
    expected_frames: int | None  # frames the data chunk declares when it runs past the file end
    truncated_header: bool  # the file ends inside a chunk header before any audio


def _sniff_wav(head: bytes, size: int | None) -> _WavHeader | None:
    """Parse the RIFF/WAVE chunks found in ``head``; None if it is not a RIFF/WAVE file."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    channels = rate = block_align = tag = None
    expected = None
    truncated_header = False
    offset = 12
    while offset < len(head):
        if offset + 8 > len(head):
            truncated_header = size is not None and size <= len(head)
            break
        chunk_id = head[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", head, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            tag, channels, rate, _, block_align, _ = struct.unpack_from("<HHIIHH", head, body)
        elif chunk_id == b"data":
            known_size = chunk_size not in (0, 0xFFFFFFFF)  # 0 / all ones: length left open
            pcm_like = tag in (1, 3, 0xFFFE) and block_align
            if size is not None and known_size and pcm_like and body + chunk_size > size:
                expected = chunk_size // block_align
            break
        offset = body + chunk_size + (chunk_size & 1)
    if channels is None:
        return _WavHeader(None, 0, None, truncated_header)
    return _WavHeader(channels, rate, expected, truncated_header)


# ---------------------------------------------------------------------------------------------
# Decoding


def _warn(message: str) -> None:
    warnings.warn(message, AudioWarning, stacklevel=3)


def _blocks(opened: _Opened, block_frames: int, nonfinite: str,
            notify: Callable[[str], None]) -> Iterator[np.ndarray]:
    info = opened.info
    label = _display(info.path)
    channels = info.channels
    done = 0  # frames yielded so far
    zeroed = 0
    stopped: str | None = None  # why decoding broke off, if it did
    try:
        while stopped is None:
            # Allocate what the header says is left, not block_frames up front (a file of a few
            # bytes declaring 256 channels must not cost block_frames * 256 floats); grow if the
            # decoder delivers more than the header said (a compressed length is only a hint).
            capacity = min(block_frames, max(1, info.frames - done))
            block = np.empty((capacity, channels), dtype=np.float32)
            filled = 0
            while filled < block_frames:
                room = capacity - filled
                if room:
                    want = min(_READ_FRAMES, room)
                    chunk = block[filled : filled + want]
                else:  # at the length the header declares: does the decoder run on?
                    want = 1
                    chunk = np.empty((1, channels), dtype=np.float32)
                try:
                    got = len(opened.file.read(want, dtype="float32", out=chunk))
                except (RuntimeError, ValueError, EOFError, OSError, sf.SoundFileError) as err:
                    if opened.stream is not None and opened.stream.error is not None:
                        raise AudioError(
                            f"{label}: cannot be read ({_one_line(opened.stream.error)})."
                        ) from None
                    stopped = _libsndfile_text(err)
                    break
                if opened.stream is not None and opened.stream.error is not None:
                    raise AudioError(f"{label}: cannot be read ({_one_line(opened.stream.error)}).")
                if got == 0:
                    break
                if not room:
                    capacity = min(block_frames, 2 * capacity)
                    grown = np.empty((capacity, channels), dtype=np.float32)
                    grown[:filled] = block
                    grown[filled] = chunk[0]
                    block = grown
                filled += got
            if filled == 0:
                break
            out = block if filled == capacity else block[:filled].copy()
            del block
            finite = np.isfinite(out)
            if not finite.all():
                if nonfinite == "error":
                    row = int(np.argmin(finite.all(axis=1)))
                    raise AudioError(
                        f"{label}: contains a non-finite sample (NaN or infinity) at "
                        f"{(done + row) / info.rate_hz:.3f} s."
                    )
                bad = ~finite
                zeroed += int(bad.sum())
                out[bad] = 0.0
            done += filled
            yield out
            if filled < block_frames and stopped is None:
                break  # end of stream
    finally:
        opened.close()
    if zeroed:
        notify(f"{label}: replaced {zeroed} non-finite samples (NaN or infinity) with 0.0.")
    _warn_if_short(opened, done, stopped, notify)


def _warn_if_short(opened: _Opened, done: int, stopped: str | None,
                   notify: Callable[[str], None]) -> None:
    info = opened.info
    label = _display(info.path)
    got_s = done / info.rate_hz
    if stopped is not None:
        message = (
            f"{label}: decoding stopped at {got_s:.3f} s ({stopped}); the file is truncated or "
            f"damaged, so only the audio before that is returned."
        )
    elif opened.expected_frames is not None and done < opened.expected_frames:
        message = (
            f"{label}: its data ends at {got_s:.3f} s, before the "
            f"{opened.expected_frames / info.rate_hz:.3f} s its header declares (the file is "
            f"truncated); the audio that is there is returned."
        )
    elif opened.truncated_header and done == 0:
        message = f"{label}: the file ends inside its header (truncated), so it holds no audio."
    elif done < info.frames:
        message = (
            f"{label}: its audio ends at {got_s:.3f} s, before the {info.duration_s:.3f} s its "
            f"header declares (the file is truncated); the audio that is there is returned."
        )
    else:
        return
    notify(message)


def _read_all(
    source: Source,
    nonfinite: str,
    max_duration_s: float | None,
    name: str | None,
    *,
    mono: bool,
) -> tuple[np.ndarray, AudioInfo]:
    _check_nonfinite(nonfinite)
    if max_duration_s is not None and not (
        isinstance(max_duration_s, (int, float))
        and max_duration_s > 0
        and np.isfinite(max_duration_s)
    ):
        raise ValueError(
            f"max_duration_s must be a positive number of seconds, got {max_duration_s!r}"
        )
    opened = _open(source, name)
    info = opened.info
    limit = None
    if max_duration_s is not None:
        limit = int(np.floor(max_duration_s * info.rate_hz))
        if info.frames > limit:
            opened.close()
            raise AudioError(_too_long(_display(info.path), info.duration_s, max_duration_s))
    width = 1 if mono else info.channels
    capacity = info.frames
    if info.format in _COMPRESSED_FORMATS or info.subtype not in _BYTES_PER_SAMPLE:
        # The declared length is not checked against the file size: start smaller, grow on demand.
        capacity = min(capacity, max(1, _PREALLOC_COMPRESSED_BYTES // (4 * width)))
    shape = (capacity,) if mono else (capacity, width)
    out = np.empty(shape, dtype=np.float32)
    done = 0
    blocks = _blocks(opened, DEFAULT_BLOCK_FRAMES, nonfinite, _warn)
    try:
        for block in blocks:
            piece = mix_to_mono(block) if mono else block
            end = done + len(piece)
            if limit is not None and end > limit:
                raise AudioError(_too_long(_display(info.path), end / info.rate_hz, max_duration_s))
            if end > len(out):
                grown = max(end, 2 * len(out))
                if limit is not None:
                    grown = min(grown, limit)
                bigger = np.empty((grown,) + out.shape[1:], dtype=np.float32)
                bigger[:done] = out[:done]
                out = bigger
            out[done:end] = piece
            done = end
    finally:
        blocks.close()
    if done < len(out):
        out = out[:done].copy()
    return out, info


def _too_long(label: str, duration_s: float, max_duration_s: float) -> str:
    return (
        f"{label}: is at least {duration_s:.3f} s long, more than the {max_duration_s:g} s "
        f"allowed (max_duration_s)."
    )


# ---------------------------------------------------------------------------------------------
# Streams


class _GuardedStream:
    """A read-only view of a binary file object from ``start`` on, for soundfile's virtual I/O.

    soundfile calls these methods from C callbacks, where an exception would be printed as a
    traceback and swallowed; here errors are kept in ``error`` and reported as an AudioError.
    """

    def __init__(self, raw: IO[bytes], start: int) -> None:
        self._raw = raw
        self._start = start
        self._pos = 0
        self.error: BaseException | None = None

    def _fail(self, err: BaseException) -> None:
        if self.error is None:
            self.error = err

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except Exception as err:  # noqa: BLE001 - reported through self.error
            self._fail(err)
            return b""
        if data is None:  # a non-blocking stream with nothing ready
            return b""
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        raw_readinto = getattr(self._raw, "readinto", None)
        try:
            if raw_readinto is not None:
                count = raw_readinto(buffer) or 0
            else:
                data = self._raw.read(len(buffer)) or b""
                count = len(data)
                buffer[:count] = data
        except Exception as err:  # noqa: BLE001
            self._fail(err)
            return 0
        self._pos += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            if whence == io.SEEK_SET:
                self._pos = self._raw.seek(self._start + offset, io.SEEK_SET) - self._start
            else:
                self._pos = self._raw.seek(offset, whence) - self._start
        except Exception as err:  # noqa: BLE001
            self._fail(err)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def size(self) -> int | None:
        """Bytes from ``start`` to the end, leaving the position at 0."""
        try:
            end = self._raw.seek(0, io.SEEK_END)
            self._raw.seek(self._start, io.SEEK_SET)
        except Exception as err:  # noqa: BLE001
            self._fail(err)
            return None
        self._pos = 0
        return max(0, end - self._start)


def _sndfile_path(path: str) -> str | bytes:
    """``path`` as libsndfile should get it. soundfile encodes a ``str`` path strictly in the file
    system encoding, which fails for a name that is not valid in it (on Linux, bytes that are not
    UTF-8 arrive as surrogate escapes): ``os.fsencode`` gives back the real bytes of the name."""
    return path if os.name == "nt" else os.fsencode(path)


def _stream_position(stream) -> int | None:
    """The current position of a seekable stream, or None when it cannot seek."""
    try:
        seekable = stream.seekable() if hasattr(stream, "seekable") else hasattr(stream, "seek")
        if not seekable:
            return None
        return int(stream.tell())
    except Exception:  # noqa: BLE001 - e.g. io.UnsupportedOperation on a pipe
        return None


def _spool(stream, spool, label: str) -> None:
    chunk = 1024 * 1024
    while True:
        try:
            data = stream.read(chunk)
        except Exception as err:  # noqa: BLE001
            raise AudioError(f"{label}: cannot be read ({_one_line(err)}).") from None
        if not data:
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{label} is a text stream; pass a binary file object (e.g. sys.stdin.buffer)"
            )
        spool.write(data)


def _quiet_seek(stream, position: int) -> None:
    try:
        stream.seek(position)
    except Exception:  # noqa: BLE001
        pass


# ---------------------------------------------------------------------------------------------
# Small helpers


def _check_block_frames(block_frames: int) -> None:
    if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)):
        raise TypeError(f"block_frames must be an int, got {type(block_frames).__name__}")
    if block_frames < 1:
        raise ValueError(f"block_frames must be at least 1, got {block_frames}")


def _check_nonfinite(nonfinite: str) -> None:
    if nonfinite not in ("error", "zero"):
        raise ValueError(f"nonfinite must be 'error' or 'zero', got {nonfinite!r}")


def _one_line(value: object) -> str:
    text = str(value) or type(value).__name__
    return " ".join(text.split())


def _display(name: str) -> str:
    """A name safe to put in a one-line message (control characters escaped)."""
    name = str(name)
    if name.isprintable():
        return name
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)
