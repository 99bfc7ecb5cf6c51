"""edgeser.pcmstream: live WAV and raw PCM from streams that cannot seek.

WAV bytes come from soundfile (written into memory) or are built with struct for hostile headers;
they are read back through a wrapper that cannot seek and hands out random small reads, as a pipe
does, and through a real os.pipe().
"""

from __future__ import annotations

import io
import os
import random
import struct
import threading

import numpy as np
import pytest
import soundfile as sf

from edgeser.audio import MAX_CHANNELS
from edgeser.errors import AudioError
from edgeser.pcmstream import SAMPLE_FORMATS, PcmFormat, PcmStream, open_pcm_stream

# ------------------------------------------------------------------------------------------------
# Helpers


class Trickle:
    """A non-seekable binary stream returning 1..997 bytes per read, like a pipe under load."""

    def __init__(self, data: bytes, seed: int = 0, *, with_read1: bool = True) -> None:
        self._data = memoryview(bytes(data))
        self._pos = 0
        self._rng = random.Random(seed)
        if with_read1:
            self.read1 = self._read_some

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def _read_some(self, n: int = -1) -> bytes:
        left = len(self._data) - self._pos
        if n is None or n < 0:
            n = left
        size = min(n, left, self._rng.randint(1, 997))
        chunk = bytes(self._data[self._pos : self._pos + size])
        self._pos += size
        return chunk

    def read(self, n: int = -1) -> bytes:
        return self._read_some(n)

    @property
    def position(self) -> int:
        return self._pos


def signal(frames: int, channels: int, rate_hz: int = 16000) -> np.ndarray:
    t = np.arange(frames) / rate_hz
    freqs = 220.0 * (1 + np.arange(channels))
    return 0.8 * np.sin(2 * np.pi * t[:, None] * freqs[None, :])


def wav_bytes(data: np.ndarray, rate_hz: int = 16000, subtype: str = "PCM_16",
              fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def expected(wav: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)[0]


def read_all(stream: PcmStream, max_frames: int = 4096) -> np.ndarray:
    blocks = list(stream.chunks(max_frames))
    for block in blocks:
        assert block.dtype == np.float32
        assert block.ndim == 2 and block.shape[1] == stream.format.channels
        assert 1 <= len(block) <= max_frames
    if not blocks:
        return np.zeros((0, stream.format.channels), dtype=np.float32)
    return np.concatenate(blocks)


def fmt_chunk(*, tag: int = 1, channels: int = 1, rate_hz: int = 16000, bits: int = 16,
              block_align: int | None = None) -> bytes:
    if block_align is None:
        block_align = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate_hz,
                       (rate_hz * block_align) & 0xFFFFFFFF, block_align, bits)
    return b"fmt " + struct.pack("<I", len(body)) + body


def riff(*chunks: bytes, riff_size: int = 0xFFFFFFFF) -> bytes:
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"".join(chunks)


def data_header(size: int) -> bytes:
    return b"data" + struct.pack("<I", size)


def s16(values) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def one_sentence(message: str, name: str) -> None:
    assert message.startswith(f"{name}: ")
    assert message.endswith(".")
    assert "\n" not in message


# ------------------------------------------------------------------------------------------------
# WAV streams


SUBTYPES = {
    "PCM_U8": "u8",
    "PCM_16": "s16",
    "PCM_24": "s24",
    "PCM_32": "s32",
    "FLOAT": "f32",
    "DOUBLE": "f64",
}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", sorted(SUBTYPES))
def test_wav_through_small_reads_matches_soundfile(subtype, channels):
    wav = wav_bytes(signal(5000, channels, 22050), 22050, subtype)
    stream = open_pcm_stream(Trickle(wav, seed=channels), "mic.wav")
    assert stream.container == "wav"
    assert stream.format == PcmFormat(22050, channels, SUBTYPES[subtype])
    got = read_all(stream, max_frames=700)
    np.testing.assert_array_equal(got, expected(wav))
    assert stream.frames_read == 5000


def test_wav_through_plain_read_without_read1():
    wav = wav_bytes(signal(3000, 2), subtype="PCM_24")
    stream = open_pcm_stream(Trickle(wav, seed=7, with_read1=False), "stdin")
    np.testing.assert_array_equal(read_all(stream), expected(wav))


def test_wave_format_extensible_header():
    wav = wav_bytes(signal(1500, 3), subtype="PCM_16", fmt="WAVEX")
    assert struct.unpack_from("<H", wav, 20)[0] == 0xFFFE
    stream = open_pcm_stream(Trickle(wav), "array")
    assert stream.format == PcmFormat(16000, 3, "s16")
    np.testing.assert_array_equal(read_all(stream), expected(wav))


def test_wave_format_extensible_float():
    wav = wav_bytes(signal(800, 2), subtype="FLOAT", fmt="WAVEX")
    stream = open_pcm_stream(Trickle(wav), "array")
    assert stream.format.sample_format == "f32"
    np.testing.assert_array_equal(read_all(stream), expected(wav))


def test_rf64_stream():
    wav = wav_bytes(signal(900, 2), subtype="FLOAT", fmt="RF64")
    assert wav[:4] == b"RF64"
    stream = open_pcm_stream(Trickle(wav), "rf64")
    np.testing.assert_array_equal(read_all(stream), expected(wav))


def test_chunks_before_data_are_skipped_with_their_pad_byte():
    values = [0, 1000, -1000, 32767, -32768]
    odd_list = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"  # odd size, then the pad byte
    fact = b"fact" + struct.pack("<I", 4) + struct.pack("<I", len(values))
    data = riff(fmt_chunk(), odd_list, fact, data_header(len(values) * 2), s16(values))
    got = read_all(open_pcm_stream(Trickle(data), "tagged"))
    np.testing.assert_array_equal(got[:, 0], np.array(values, dtype=np.float32) / 32768)


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF])
def test_open_ended_data_size_reads_until_eof(declared):
    values = np.arange(-3000, 3000, 7)
    data = riff(fmt_chunk(), data_header(declared), s16(values))
    got = read_all(open_pcm_stream(Trickle(data), "pipe"))
    np.testing.assert_array_equal(got[:, 0], values.astype(np.float32) / 32768)


def test_declared_data_size_stops_reading_there():
    # A WAV file piped whole: the data chunk is followed by another chunk, which is not audio.
    values = [1, 2, 3, 4]
    trailer = b"LIST" + struct.pack("<I", 4) + b"INFO"
    source = Trickle(riff(fmt_chunk(), data_header(6), s16(values) + trailer))
    stream = open_pcm_stream(source, "file.wav")
    got = read_all(stream)
    np.testing.assert_array_equal(got[:, 0], np.array([1, 2, 3], dtype=np.float32) / 32768)
    assert source.position == 44 + 6  # nothing past the declared size was consumed


def test_placeholder_size_larger_than_stream_reads_until_eof():
    # arecord writing to a pipe declares a large size it never reaches.
    values = np.arange(100)
    got = read_all(open_pcm_stream(Trickle(riff(fmt_chunk(), data_header(0x7FFFFFFF),
                                                     s16(values))), "arecord"))
    np.testing.assert_array_equal(got[:, 0], values.astype(np.float32) / 32768)


def test_header_only_stream_has_no_frames():
    stream = open_pcm_stream(Trickle(riff(fmt_chunk(), data_header(0))), "silent")
    assert list(stream.chunks()) == []
    assert stream.frames_read == 0


def test_chunks_never_exceed_max_frames_and_continue_across_calls():
    wav = wav_bytes(signal(10_000, 2), subtype="PCM_16")
    stream = open_pcm_stream(io.BufferedReader(io.BytesIO(wav)), "long")
    first = next(stream.chunks(max_frames=64))
    assert 1 <= len(first) <= 64
    rest = read_all(stream, max_frames=333)
    np.testing.assert_array_equal(np.concatenate([first, rest]), expected(wav))


@pytest.mark.parametrize("bad", [0, -1])
def test_max_frames_must_be_positive(bad):
    stream = open_pcm_stream(io.BytesIO(), "x", rate_hz=16000, channels=1, sample_format="s16")
    with pytest.raises(ValueError, match="max_frames"):
        stream.chunks(bad)


# ------------------------------------------------------------------------------------------------
# Raw PCM


def test_raw_s16_stereo():
    values = np.array([[0, 1], [-1, 32767], [-32768, 12345], [100, -100]], dtype=np.int16)
    stream = open_pcm_stream(Trickle(values.astype("<i2").tobytes()), "stdin",
                             rate_hz=48000, channels=2, sample_format="s16")
    assert stream.container == "raw"
    assert stream.format == PcmFormat(48000, 2, "s16")
    assert stream.format.frame_bytes == 4
    np.testing.assert_array_equal(read_all(stream), values.astype(np.float32) / 32768)


@pytest.mark.parametrize("sample_format", SAMPLE_FORMATS)
def test_raw_formats_match_soundfile_raw(sample_format):
    subtype = {v: k for k, v in SUBTYPES.items()}[sample_format]
    samples = signal(777, 2)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="RAW", subtype=subtype, endian="LITTLE")
    raw = buffer.getvalue()
    want = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True, format="RAW",
                   subtype=subtype, samplerate=16000, channels=2, endian="LITTLE")[0]
    stream = open_pcm_stream(Trickle(raw, seed=3), "raw", rate_hz=16000, channels=2,
                             sample_format=sample_format)
    np.testing.assert_array_equal(read_all(stream, 100), want)


def test_raw_stream_does_not_need_a_header():
    # Raw PCM that happens to start like nothing in particular is read from the first byte.
    stream = open_pcm_stream(Trickle(b"\x80\x00\xff"), "u8", rate_hz=8000, channels=1,
                             sample_format="u8")
    np.testing.assert_array_equal(read_all(stream)[:, 0], [0.0, -1.0, 127 / 128])


# ------------------------------------------------------------------------------------------------
# Errors


def raises(source, name="src", match=None, **raw) -> str:
    with pytest.raises(AudioError, match=match) as info:
        stream = open_pcm_stream(source if hasattr(source, "read") else Trickle(source), name,
                                 **raw)
        read_all(stream)
    message = str(info.value)
    one_sentence(message, name)
    return message


def test_not_riff_without_raw_parameters():
    message = raises(b"\x01\x02" * 100, name="stdin", match="not a WAV stream")
    assert "--rate, --channels and --sample-format" in message


def test_riff_of_another_type():
    raises(b"RIFF\x00\x00\x00\x00AVI LIST", match="not WAVE")


@pytest.mark.parametrize(
    "raw, missing",
    [
        ({"rate_hz": 16000}, "--channels, --sample-format"),
        ({"channels": 1, "sample_format": "s16"}, "--rate"),
        ({"rate_hz": 16000, "channels": 2}, "--sample-format"),
    ],
)
def test_partial_raw_parameters(raw, missing):
    message = raises(s16([1, 2]), match="raw PCM needs", **raw)
    assert f"(missing: {missing})" in message


def test_raw_parameters_are_validated():
    raises(b"", match="unknown sample format 's16le'; use one of u8, s16, s24, s32, f32, f64",
           rate_hz=16000, channels=1, sample_format="s16le")
    raises(b"", match="0 Hz", rate_hz=0, channels=1, sample_format="s16")
    raises(b"", match="channels", rate_hz=16000, channels=MAX_CHANNELS + 1, sample_format="s16")


@pytest.mark.parametrize("cut", [4, 8, 12, 20, 36, 40, 43])
def test_header_cut_short(cut):
    header = riff(fmt_chunk(), data_header(0))
    assert len(header) == 44
    message = raises(header[:cut], name="stdin", match="ended inside the WAV header")
    assert f"(after {cut} bytes)" in message


def test_header_cut_inside_a_skipped_chunk():
    header = riff(fmt_chunk(), b"LIST" + struct.pack("<I", 100) + b"INFO")
    raises(header, match=r"ended inside the WAV header \(after 48 bytes\)")


def test_empty_stream_expecting_wav():
    raises(b"", name="stdin", match="is empty")


def test_unsupported_format_code():
    message = raises(riff(fmt_chunk(tag=2, bits=4, block_align=256), data_header(0)),
                     match="format code 2")
    assert "ADPCM" in message


def test_unsupported_extensible_subformat():
    wav = bytearray(wav_bytes(signal(10, 3), subtype="PCM_16", fmt="WAVEX"))
    wav[44:46] = struct.pack("<H", 2)  # subformat GUID's code: ADPCM
    raises(bytes(wav), match="format code 2")


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"channels": 0, "block_align": 2}, "0 channels"),
        ({"channels": MAX_CHANNELS + 1}, f"at most {MAX_CHANNELS}"),
        ({"rate_hz": 0}, "sample rate of 0 Hz"),
        ({"rate_hz": 4_000_000_000}, "sample rate of 4000000000 Hz"),
        ({"bits": 12, "block_align": 2}, "12-bit PCM"),
        ({"tag": 3, "bits": 16}, "16-bit IEEE float"),
        ({"block_align": 3}, "block size of 3 bytes"),
    ],
)
def test_invalid_fmt_fields(fields, match):
    raises(riff(fmt_chunk(**fields), data_header(0), s16([1, 2])), match=match)


def test_data_before_fmt():
    raises(riff(data_header(4), s16([1, 2]), fmt_chunk()), match="'data' chunk comes before")


def test_ended_mid_sample_after_complete_frames():
    values = np.arange(1, 11)
    payload = s16(values) + b"\x01"  # one byte of an eleventh frame
    stream = open_pcm_stream(Trickle(riff(fmt_chunk(), data_header(0), payload)), "mic")
    got = []
    with pytest.raises(AudioError) as info:
        for block in stream.chunks(4):
            got.append(block)
    message = "mic: the stream ended mid-sample (1 trailing byte; a frame is 2 bytes)."
    assert str(info.value) == message
    np.testing.assert_array_equal(np.concatenate(got)[:, 0], values.astype(np.float32) / 32768)


def test_raw_ended_mid_sample():
    raises(b"\x00" * 7, match=r"3 trailing bytes; a frame is 4 bytes", rate_hz=8000, channels=2,
           sample_format="s16")


@pytest.mark.parametrize("sample_format, dtype", [("f32", "<f4"), ("f64", "<f8")])
def test_float_nan_names_its_time(sample_format, dtype):
    values = np.zeros(40_000)
    values[24_000] = np.nan
    stream = open_pcm_stream(Trickle(values.astype(dtype).tobytes()), "float", rate_hz=16000,
                             channels=1, sample_format=sample_format)
    with pytest.raises(AudioError, match=r"non-finite sample \(NaN or infinity\) at 1\.500 s\.$"):
        read_all(stream, 1000)
    assert stream.frames_read <= 24_000


def test_wav_float_infinity():
    wav = wav_bytes(np.zeros((100, 1)), subtype="FLOAT")
    data = bytearray(wav)
    struct.pack_into("<f", data, len(data) - 4 * 20, float("inf"))
    raises(bytes(data), name="mic", match="at 0.005 s")


class Failing(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise OSError(5, "Input/output error")


def test_text_stream_is_refused():
    with pytest.raises(TypeError, match="binary file object"):
        open_pcm_stream(io.StringIO("RIFF"), "stdin")


def test_read_error_is_an_audio_error():
    message = raises(Failing(), name="/dev/stdin", match="cannot be read")
    assert "Input/output error" in message
    raises(io.BufferedReader(Failing()), name="sock", match="cannot be read", rate_hz=8000,
           channels=1, sample_format="u8")


# ------------------------------------------------------------------------------------------------
# A live pipe


def test_live_pipe_delivers_audio_before_the_writer_finishes():
    first = np.arange(0, 1000, dtype=np.int16)
    second = np.arange(1000, 3000, dtype=np.int16)
    go_on = threading.Event()
    finished = threading.Event()
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            out.write(riff(fmt_chunk(), data_header(0xFFFFFFFF)) + first.astype("<i2").tobytes())
            go_on.wait(timeout=5)  # a reader that waits for EOF fails the test instead of hanging
            out.write(second.astype("<i2").tobytes())
            finished.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            stream = open_pcm_stream(source, "pipe")
            blocks = stream.chunks(max_frames=4096)
            got = [next(blocks)]
            assert not finished.is_set(), "the first chunk waited for the writer to finish"
            while sum(len(b) for b in got) < len(first):
                got.append(next(blocks))
                assert not finished.is_set()
            go_on.set()
            got.extend(blocks)
    finally:
        go_on.set()
        thread.join(timeout=10)
    expected_values = np.concatenate([first, second]).astype(np.float32) / 32768
    np.testing.assert_array_equal(np.concatenate(got)[:, 0], expected_values)
