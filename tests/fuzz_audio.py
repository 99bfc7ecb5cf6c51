"""Fuzz harness for the decoder + frontend path: ``edgeser.audio``, ``edgeser.pcmstream`` and the
NumPy-facing cffi layer ``edgeser.frontend``.

Run it under atheris (coverage-guided, libFuzzer flags apply)::

    pip install atheris
    python tests/fuzz_audio.py --make-seeds /tmp/fuzz-seeds     # write the seed corpus
    python tests/fuzz_audio.py -max_total_time=600 -timeout=30 /tmp/fuzz-corpus /tmp/fuzz-seeds

Without atheris, :func:`TestOneInput` is an ordinary function: ``tests/test_hostile_audio.py``
runs it over :func:`seed_inputs` and deterministic mutations of them (atheris is never needed by
the test suite).

Input layout: byte 0 picks a path, bytes 1..15 are parameters (read with
``atheris.FuzzedDataProvider`` under atheris, with a small stand-in otherwise), the rest is the
payload. Paths:

- ``decode``: the payload as a file: ``audio.probe`` + ``audio.iter_blocks`` (fuzzed block size
  and NaN mode), mixdown, ``frontend.Resampler`` fed in fuzzed chunk sizes (checked against
  one-shot ``frontend.resample`` and the exact output length), ``frontend.windows``,
  ``normalize`` and ``rms_dbfs`` per window.
- ``stream``: ``pcmstream.open_pcm_stream`` on a pipe-like stream delivering fuzzed read sizes,
  as a WAV stream or raw PCM with fuzzed (also invalid) parameters; the chunks must equal a
  one-shot ``frontend.pcm_to_float`` of the same bytes.
- ``pcm``: ``frontend.pcm_to_float`` with fuzzed (also invalid) channels and formats, checked
  against the NumPy reference.
- ``arrays``: the array functions (``normalize``, ``rms_dbfs``, ``to_mono``, ``Resampler``,
  ``windows``, ``seconds_to_samples``) on the payload's float32 values, NaN/Inf/huge included.

Expected outcomes are a result or an :class:`edgeser.errors.EdgeserError` (``AudioError``,
``FrontendError``); an ``AudioError`` must be one line naming its source. Anything else
propagates: a finding.
"""

from __future__ import annotations

import io
import math
import struct
import sys

import numpy as np
import soundfile as sf

_UNDER_ATHERIS = __name__ == "__main__" and "--make-seeds" not in sys.argv
if _UNDER_ATHERIS:
    import atheris

    with atheris.instrument_imports(include=["edgeser"]):
        from edgeser import audio, frontend, pcmstream
        from edgeser.errors import AudioError, FrontendError
        from edgeser.frontend import reference
else:
    from edgeser import audio, frontend, pcmstream
    from edgeser.errors import AudioError, FrontendError
    from edgeser.frontend import reference

HEADER_BYTES = 16  # byte 0: the path; 1..15: parameters; the rest: the payload
PATHS = ("decode", "stream", "pcm", "arrays")
NAME = "fuzz-input.wav"  # the name every AudioError must carry
STREAM_NAME = "fuzz-stream"
# Decoding stops after this many frames (a tiny compressed input can decode to millions of
# frames; the harness looks for crashes, not throughput).
MAX_FRAMES = 200_000
MAX_BLOCKS = 256  # and after this many blocks (block_frames=1 would make every frame a call)
# A finite input below this magnitude must resample to finite output (the filter's gain is a
# few units; only values near float32's limit may overflow).
SANE_MAGNITUDE = 1e30
RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000, 1000, 384000, 0, 1, 999, 384001,
         2**32 - 1, 2**32)
CHANNELS = (1, 2, 3, 6, 8, 256, 0, -1, 257, 2**16, 2**32 - 1, 2**32, 2**40)
FORMATS = ("u8", "s16", "s24", "s32", "f32", "f64", "s8", "", "F32")
BLOCKS = (1, 2, 7, 100, 1000, 4096, 8191, 8192, 8193, 65536)


class _Params:
    """The stand-in for ``atheris.FuzzedDataProvider`` (only what the harness uses)."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:  # noqa: N802 - atheris' name
        span = hi - lo
        if span <= 0:
            return lo
        size = (span.bit_length() + 7) // 8
        raw = self._data[self._pos : self._pos + size].ljust(size, b"\0")
        self._pos += size
        return lo + int.from_bytes(raw, "little") % (span + 1)

    def ConsumeBool(self) -> bool:  # noqa: N802
        return bool(self.ConsumeIntInRange(0, 1))


def _params(data: bytes):
    if _UNDER_ATHERIS:
        return atheris.FuzzedDataProvider(data)
    return _Params(data)


def _pick(p, options):
    return options[p.ConsumeIntInRange(0, len(options) - 1)]


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    """One fuzz input (see the module docstring for its layout)."""
    if len(data) < 1:
        return
    path = PATHS[data[0] % len(PATHS)]
    p = _params(bytes(data[1:HEADER_BYTES]))
    payload = bytes(data[HEADER_BYTES:])
    {"decode": _decode, "stream": _stream, "pcm": _pcm, "arrays": _arrays}[path](p, payload)


# ---------------------------------------------------------------------------------------------
# Checks


def check_message(err: BaseException, name: str) -> str:
    """An AudioError (or warning) text: one line naming the source, ending in a period."""
    text = str(err)
    assert name in text, text
    assert "\n" not in text and "\r" not in text, text
    assert text.endswith("."), text
    assert "Traceback" not in text and "Error opening" not in text, text
    return text


def _expected_output_length(n: int, rate_hz: int) -> int:
    return -(-n * frontend.TARGET_RATE_HZ // rate_hz)


# ---------------------------------------------------------------------------------------------
# decode: audio.probe / iter_blocks -> mixdown -> Resampler -> windows -> normalize / rms


def _decode(p, payload: bytes) -> None:
    block_frames = _pick(p, BLOCKS) if p.ConsumeBool() else p.ConsumeIntInRange(1, 70000)
    nonfinite = "zero" if p.ConsumeBool() else "error"
    try:
        info = audio.probe(payload, name=NAME)
    except AudioError as err:
        check_message(err, NAME)
        try:
            audio.iter_blocks(payload, name=NAME)
        except AudioError as again:  # validation is the same for both
            check_message(again, NAME)
        else:
            raise AssertionError("probe() refused a source that iter_blocks() accepted")
        return
    assert 1 <= info.channels <= audio.MAX_CHANNELS, info
    assert audio.MIN_RATE_HZ <= info.rate_hz <= audio.MAX_RATE_HZ, info
    assert info.frames >= 0, info
    notes: list[str] = []
    pieces = []
    frames = 0
    short_seen = False
    blocks = audio.iter_blocks(payload, block_frames, nonfinite, name=NAME,
                               on_warning=notes.append)
    try:
        for block in blocks:
            assert not short_seen, "a short block before the last one"
            assert block.dtype == np.float32 and block.ndim == 2, (block.dtype, block.shape)
            assert block.shape[1] == info.channels, (block.shape, info)
            assert 1 <= len(block) <= block_frames, (len(block), block_frames)
            assert np.isfinite(block).all(), "a non-finite sample got through"
            short_seen = len(block) < block_frames
            pieces.append(audio.mix_to_mono(block))
            frames += len(block)
            if frames >= MAX_FRAMES or len(pieces) >= MAX_BLOCKS:
                break
    except AudioError as err:
        check_message(err, NAME)
    finally:
        blocks.close()
    for note in notes:
        check_message(note, NAME)
    if pieces:
        mono = np.concatenate(pieces)
        assert mono.dtype == np.float32 and mono.ndim == 1
        _resample_and_window(p, mono, info.rate_hz)


def _resample_and_window(p, x: np.ndarray, rate_hz: int) -> None:
    if not frontend.MIN_RATE_HZ <= rate_hz <= frontend.MAX_RATE_HZ:
        try:
            frontend.Resampler(rate_hz)
        except FrontendError:
            return
        raise AssertionError(f"Resampler accepted {rate_hz} Hz")
    resampler = frontend.Resampler(rate_hz)
    outs = []
    pos = 0
    small = p.ConsumeIntInRange(0, 4096)
    while pos < len(x):
        if len(outs) >= 64:  # the rest in one go (bounded work per input)
            step = len(x) - pos
        else:  # empty chunks too
            step = small if p.ConsumeBool() else p.ConsumeIntInRange(1, len(x))
        outs.append(resampler.process(x[pos : pos + step]))
        pos += step
    outs.append(resampler.flush())
    streamed = np.concatenate(outs)
    assert len(streamed) == _expected_output_length(len(x), rate_hz), (len(x), rate_hz)
    one_shot = frontend.resample(x, rate_hz)
    assert np.array_equal(streamed, one_shot, equal_nan=True), "stream != one-shot"
    if not np.isfinite(streamed).all():
        assert float(np.max(np.abs(x))) > SANE_MAGNITUDE, "finite input resampled to Inf/NaN"
        return
    window_s = _pick(p, (0.025, 0.1, 0.5, 1.0, 3.0))
    hop_s = min(window_s, _pick(p, (0.02, 0.05, 0.5, 1.0)))
    bounds = frontend.windows(len(streamed), window_s, hop_s)
    window = frontend.seconds_to_samples(window_s)
    for w in bounds:
        assert 0 <= w.start < w.stop <= len(streamed), w
        # full windows, then at most one short one, never shorter than one receptive field
        assert w.length == window or (w is bounds[-1] and w.length >= frontend.MIN_WINDOW_SAMPLES)
    for w in bounds[:4]:
        piece = streamed[w.start : w.stop]
        level = frontend.rms_dbfs(piece)
        assert math.isfinite(level), level
        normed = frontend.normalize(piece)
        assert normed.shape == piece.shape and np.isfinite(normed).all()


# ---------------------------------------------------------------------------------------------
# stream: pcmstream.open_pcm_stream on a pipe-like stream


class Trickle(io.RawIOBase):
    """A non-seekable stream whose reads return at most the next of ``sizes`` bytes (a pipe
    delivering audio as it arrives)."""

    def __init__(self, payload: bytes, sizes: list[int]):
        self._inner = io.BytesIO(payload)
        self._sizes = sizes or [1 << 20]
        self._k = 0

    def readable(self):
        return True

    def seekable(self):
        return False

    def read1(self, n: int = -1) -> bytes:
        limit = self._sizes[self._k % len(self._sizes)]
        self._k += 1
        return self._inner.read(limit if n is None or n < 0 else min(n, limit))

    def readinto(self, buffer) -> int:
        data = self.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stream(p, payload: bytes) -> None:
    raw = p.ConsumeBool()
    sizes = [p.ConsumeIntInRange(1, 9000) for _ in range(3)]
    max_frames = _pick(p, (1, 3, 160, 800, 4096)) if p.ConsumeBool() \
        else p.ConsumeIntInRange(1, 20000)
    kwargs = {}
    if raw:
        kwargs = {"rate_hz": _pick(p, RATES), "channels": _pick(p, CHANNELS),
                  "sample_format": _pick(p, FORMATS)}
    source = Trickle(payload, sizes)
    try:
        pcm = pcmstream.open_pcm_stream(source, STREAM_NAME, **kwargs)
    except AudioError as err:
        check_message(err, STREAM_NAME)
        return
    fmt = pcm.format
    assert 1 <= fmt.channels <= audio.MAX_CHANNELS and fmt.sample_format in pcmstream.SAMPLE_FORMATS
    assert audio.MIN_RATE_HZ <= fmt.rate_hz <= audio.MAX_RATE_HZ
    start = pcm._reader.consumed  # bytes of the header: the data starts here
    chunks = []
    failed = False
    try:
        for chunk in pcm.chunks(max_frames=max_frames):
            assert chunk.dtype == np.float32 and chunk.ndim == 2, (chunk.dtype, chunk.shape)
            assert chunk.shape[1] == fmt.channels and 1 <= len(chunk) <= max_frames
            assert np.isfinite(chunk).all()
            chunks.append(chunk)
    except AudioError as err:
        check_message(err, STREAM_NAME)
        failed = True
    frames = sum(len(c) for c in chunks)
    assert frames == pcm.frames_read
    used = frames * fmt.frame_bytes
    assert start + used <= len(payload)
    if chunks and not failed:
        whole = payload[start : start + used]
        if sys.byteorder == "big" and pcm.container == "wav" and fmt.sample_format[0] == "f":
            return  # the stream swaps WAV floats to host order; the one-shot oracle does not
        one_shot = frontend.pcm_to_float(whole, fmt.channels, fmt.sample_format)
        assert np.array_equal(np.concatenate(chunks), one_shot), "stream != one-shot"


# ---------------------------------------------------------------------------------------------
# pcm: frontend.pcm_to_float


def _pcm(p, payload: bytes) -> None:
    channels = _pick(p, CHANNELS) if p.ConsumeBool() else p.ConsumeIntInRange(1, 16)
    fmt = _pick(p, FORMATS)
    if p.ConsumeBool() and fmt in frontend.SAMPLE_FORMATS:  # make the length fit, often
        frame = max(1, min(channels, 64)) * frontend._BYTES_PER_SAMPLE[fmt]
        payload = payload[: len(payload) - len(payload) % frame]
    try:
        out = frontend.pcm_to_float(payload, channels, fmt)
    except FrontendError:
        return
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == channels
    assert out.shape[0] * channels * frontend._BYTES_PER_SAMPLE[fmt] == len(payload)
    assert np.isfinite(out).all()
    if fmt in ("u8", "s16", "s24", "s32"):
        assert out.size == 0 or (out.min() >= -1.0 and out.max() <= 1.0)
    if frontend.NATIVE and out.size:
        with np.errstate(all="ignore"):
            expected = reference.pcm_to_float(payload, channels, fmt)
        assert np.array_equal(out, expected), "native != NumPy reference"


# ---------------------------------------------------------------------------------------------
# arrays: the frontend's array functions on arbitrary float32 values


def _arrays(p, payload: bytes) -> None:
    x = np.frombuffer(payload[: len(payload) - len(payload) % 4], dtype=np.float32).copy()
    op = p.ConsumeIntInRange(0, 5)
    finite = bool(np.isfinite(x).all())
    try:
        if op == 0:
            out = frontend.normalize(x)
            assert finite and out.shape == x.shape
            assert np.isfinite(out).all(), "finite input normalised to Inf/NaN"
        elif op == 1:
            level = frontend.rms_dbfs(x)
            assert finite and math.isfinite(level), level
        elif op == 2:
            channels = p.ConsumeIntInRange(1, 9)
            frames = x[: len(x) - len(x) % channels].reshape(-1, channels)
            out = frontend.to_mono(frames)
            assert np.isfinite(frames).all(), "to_mono accepted NaN/Inf"
            assert out.shape == (len(frames),) and out.dtype == np.float32
        elif op == 3:
            _resample_and_window(p, x, _pick(p, RATES))
        elif op == 4:
            # Ordinary counts, or ones beyond size_t / negative that must be refused (a count
            # near 2**64 with valid windows would ask for ~1e15 Window objects: not tried).
            n = _pick(p, (len(x), p.ConsumeIntInRange(0, 10**6), 2**64, 2**66, -1, -(2**70)))
            window_s, hop_s = _seconds(p, payload, 0), _seconds(p, payload, 8)
            bounds = frontend.windows(n, window_s, hop_s, min_samples=_pick(
                p, (0, 1, 400, 2000, 10**9, -1, 2**64)))
            assert 0 <= n < 2**64
            assert all(0 <= w.start < w.stop <= n for w in bounds)
        else:
            samples = frontend.seconds_to_samples(_seconds(p, payload, 0), "window")
            assert samples >= frontend.FRAME_SAMPLES and samples % frontend.FRAME_SAMPLES == 0
    except FrontendError:
        return


def _seconds(p, payload: bytes, offset: int) -> float:
    """A duration: usually ordinary, sometimes the payload's bytes as a float64 (NaN, Inf,
    1e305, subnormals, negatives)."""
    if p.ConsumeBool() and len(payload) >= offset + 8:
        (value,) = struct.unpack_from("<d", payload, offset)
        return value
    return _pick(p, (0.02, 0.025, 0.5, 1.0, 3.0, 0.0, -1.0))


# ---------------------------------------------------------------------------------------------
# Seeds


def _tone(frames: int, channels: int, rate_hz: int) -> np.ndarray:
    t = np.arange(frames) / rate_hz
    freqs = 220.0 * (1 + np.arange(channels))
    return 0.6 * np.sin(2 * np.pi * t[:, None] * freqs[None, :])


def encode(data: np.ndarray, rate_hz: int, fmt: str, subtype: str) -> bytes | None:
    """``data`` as a file of ``fmt``/``subtype`` written by soundfile; None when this libsndfile
    lacks the encoder. Ogg streams get a fixed serial number (libsndfile picks a random one), so
    the bytes are the same on every run."""
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt) \
            or not sf.check_format(fmt, subtype):
        return None
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data, rate_hz, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return None
    encoded = buffer.getvalue()
    return fixed_ogg_serial(encoded) if fmt == "OGG" else encoded


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_pages(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each complete Ogg page at the start of ``data``."""
    pages = []
    offset = 0
    while offset + 27 <= len(data) and data[offset : offset + 4] == b"OggS":
        segments = data[offset + 26]
        header = 27 + segments
        if offset + header > len(data):
            break
        length = header + sum(data[offset + 27 : offset + header])
        if offset + length > len(data):
            break
        pages.append((offset, length))
        offset += length
    return pages


def fixed_ogg_serial(data: bytes, serial: int = 0x5EED) -> bytes:
    out = bytearray(data)
    for offset, length in ogg_pages(data):
        page = bytearray(out[offset : offset + length])
        struct.pack_into("<I", page, 14, serial)
        struct.pack_into("<I", page, 22, 0)
        struct.pack_into("<I", page, 22, _ogg_crc(bytes(page)))
        out[offset : offset + length] = page
    return bytes(out)


# (format, subtype, rate, channels, seconds): small files of the containers users have
ENCODED_SEEDS = (
    ("WAV", "PCM_U8", 8000, 1, 0.1),
    ("WAV", "PCM_16", 16000, 2, 0.1),
    ("WAV", "PCM_24", 22050, 1, 0.1),
    ("WAV", "PCM_32", 11025, 1, 0.05),
    ("WAV", "FLOAT", 44100, 2, 0.05),
    ("WAV", "DOUBLE", 48000, 1, 0.05),
    ("WAV", "ULAW", 8000, 1, 0.1),
    ("WAVEX", "PCM_16", 48000, 6, 0.02),
    ("RF64", "PCM_16", 16000, 1, 0.1),
    ("W64", "PCM_16", 16000, 1, 0.05),
    ("AIFF", "PCM_16", 44100, 2, 0.05),
    ("AU", "PCM_16", 8000, 1, 0.1),
    ("CAF", "FLOAT", 16000, 1, 0.05),
    ("FLAC", "PCM_16", 44100, 2, 0.2),
    ("FLAC", "PCM_24", 16000, 1, 0.2),
    ("FLAC", "PCM_S8", 8000, 1, 0.2),
    ("OGG", "VORBIS", 16000, 1, 0.3),
    ("OGG", "OPUS", 48000, 1, 0.2),
    ("MP3", "MPEG_LAYER_III", 44100, 1, 0.2),
)


def seed_inputs() -> list[bytes]:
    """The seed corpus: valid files of several containers and subtypes for every path, plus raw
    PCM and float arrays. Deterministic."""
    rng = np.random.default_rng(20260101)
    params = [bytes(rng.integers(0, 256, HEADER_BYTES - 1, dtype=np.uint8)) for _ in range(4)]
    files = []
    for fmt, subtype, rate_hz, channels, seconds in ENCODED_SEEDS:
        encoded = encode(_tone(int(rate_hz * seconds), channels, rate_hz), rate_hz, fmt, subtype)
        if encoded is not None:
            files.append((fmt, subtype, encoded))
    seeds = []
    for k, (fmt, subtype, encoded) in enumerate(files):
        seeds.append(bytes([PATHS.index("decode")]) + params[k % 4] + encoded)
        if fmt in ("WAV", "WAVEX", "RF64") and subtype != "ULAW":
            seeds.append(bytes([PATHS.index("stream")]) + params[(k + 1) % 4] + encoded)
    pcm16 = (_tone(800, 2, 16000) * 32767).astype("<i2").tobytes()
    floats = _tone(1000, 1, 48000).astype(np.float32).tobytes()
    seeds.append(bytes([PATHS.index("stream")]) + bytes([1]) + params[0][1:] + pcm16)
    seeds.append(bytes([PATHS.index("pcm")]) + params[1] + pcm16)
    seeds.append(bytes([PATHS.index("pcm")]) + params[2] + floats)
    seeds.append(bytes([PATHS.index("arrays")]) + params[3] + floats)
    seeds.append(bytes([PATHS.index("arrays")]) + params[0] + floats[:400])
    return seeds


def write_seeds(folder: str) -> int:
    import os

    os.makedirs(folder, exist_ok=True)
    seeds = seed_inputs()
    for k, seed in enumerate(seeds):
        with open(os.path.join(folder, f"seed-{k:03d}"), "wb") as out:
            out.write(seed)
    return len(seeds)


if __name__ == "__main__":
    if "--make-seeds" in sys.argv:
        target = sys.argv[sys.argv.index("--make-seeds") + 1]
        print(f"wrote {write_seeds(target)} seeds to {target}")
        sys.exit(0)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
