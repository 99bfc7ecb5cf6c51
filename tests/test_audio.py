"""edgeser.audio: decoding every container and subtype, block iteration, and hostile inputs.

Fixtures are generated in tmp_path (numpy + soundfile, or byte by byte with struct for hostile WAV
headers). The real recordings are only read in place, through the ``test_data_dir`` fixture.
"""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser import audio
from edgeser.audio import (
    DEFAULT_BLOCK_FRAMES,
    MAX_CHANNELS,
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    AudioInfo,
    AudioWarning,
    iter_blocks,
    mix_to_mono,
    probe,
    read,
    read_mono,
)
from edgeser.errors import AudioError, EdgeserError

# ------------------------------------------------------------------------------------------------
# Helpers


def tone(frames: int, channels: int, rate_hz: int, amplitude: float = 0.8) -> np.ndarray:
    """A float64 (frames, channels) signal: one sine per channel at its own frequency."""
    t = np.arange(frames) / rate_hz
    freqs = 220.0 * (1 + np.arange(channels))
    return amplitude * np.sin(2 * np.pi * t[:, None] * freqs[None, :])


def wav_header(
    *,
    channels: int = 1,
    rate_hz: int = 16000,
    bits: int = 16,
    fmt_tag: int = 1,
    data_size: int = 0,
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header (fmt chunk of 16 bytes, then the data chunk header)."""
    block_align = (channels * bits // 8) & 0xFFFF
    byte_rate = (rate_hz * block_align) & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate_hz, byte_rate, block_align, bits)
    riff_size = 4 + (8 + len(fmt)) + 8 + data_size
    return (
        b"RIFF"
        + struct.pack("<I", riff_size & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size & 0xFFFFFFFF)
    )


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def assert_clean_message(err: BaseException, name: str) -> str:
    """One sentence on one line naming the source, none of libsndfile's noise."""
    message = str(err)
    assert name in message, message
    assert "\n" not in message and "\r" not in message, message
    assert message.endswith("."), message
    assert "Error opening" not in message, message
    assert "Traceback" not in message, message
    return message


def audio_error(source, expect_name: str, /, **kwargs) -> str:
    """Read ``source`` expecting an AudioError naming ``expect_name``; return its message."""
    with pytest.raises(AudioError) as excinfo:
        read(source, **kwargs)
    return assert_clean_message(excinfo.value, expect_name)


def read_or_error(source, name: str, **kwargs):
    """Read ``source``: a result (with AudioWarnings only) or a clean AudioError, nothing else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            samples, info = read(source, **kwargs)
        except AudioError as err:
            assert_clean_message(err, name)
            return None, [w for w in caught if issubclass(w.category, AudioWarning)]
    ours = [w for w in caught if issubclass(w.category, AudioWarning)]
    for w in ours:
        assert_clean_message(w.message, name)
    assert samples.dtype == np.float32 and samples.ndim == 2
    assert samples.shape[1] == info.channels
    assert np.isfinite(samples).all()
    return (samples, info), ours


def require_encoder(fmt: str, subtype: str) -> None:
    version = sf.__libsndfile_version__
    if (
        fmt not in sf.available_formats()
        or subtype not in sf.available_subtypes(fmt)
        or not sf.check_format(fmt, subtype)
    ):
        pytest.skip(f"libsndfile {version} lacks the {fmt}/{subtype} encoder")


def write_encoded(path: Path, data: np.ndarray, rate_hz: int, fmt: str, subtype: str) -> None:
    require_encoder(fmt, subtype)
    try:
        sf.write(path, data, rate_hz, format=fmt, subtype=subtype)
    except sf.LibsndfileError as err:
        version = sf.__libsndfile_version__
        pytest.skip(f"libsndfile {version} lacks the {fmt}/{subtype} encoder ({err})")


# ------------------------------------------------------------------------------------------------
# Constants and types


def test_constants_and_error_type():
    assert (MIN_RATE_HZ, MAX_RATE_HZ, MAX_CHANNELS) == (1, 384_000, 256)
    assert DEFAULT_BLOCK_FRAMES == 65536
    assert issubclass(AudioError, EdgeserError)
    assert issubclass(AudioWarning, UserWarning)


def test_audio_info_is_frozen_with_duration(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(8000, 2, 16000), 16000, subtype="PCM_16")
    info = probe(path)
    assert info == AudioInfo(str(path), 16000, 2, 8000, "WAV", "PCM_16")
    assert info.duration_s == pytest.approx(0.5)
    with pytest.raises(AttributeError):
        info.rate_hz = 8000  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# Round trips

# Decoded integer PCM is x * (2**(bits-1) - 1) / 2**(bits-1) after rounding: two quantisation steps.
WAV_SUBTYPES = {
    "PCM_U8": 2 / 2**7,
    "PCM_16": 2 / 2**15,
    "PCM_24": 2 / 2**23,
    "PCM_32": 1e-6,  # beyond float32's resolution near 1.0 anyway
    "FLOAT": 0.0,
    "DOUBLE": 0.0,
}


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", sorted(WAV_SUBTYPES))
def test_wav_subtypes_round_trip(tmp_path, subtype, channels):
    rate_hz = 16000
    data = tone(4000, channels, rate_hz)
    data[0, :] = -1.0  # full scale both ways
    data[1, :] = 1.0
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, data, rate_hz, format="WAV", subtype=subtype)

    samples, info = read(path)

    assert (info.rate_hz, info.channels, info.frames) == (rate_hz, channels, 4000)
    assert info.format == "WAV"
    assert info.subtype == subtype
    assert samples.dtype == np.float32 and samples.shape == (4000, channels)
    if subtype in ("FLOAT", "DOUBLE"):
        np.testing.assert_array_equal(samples, data.astype(np.float32))
    else:
        assert samples.min() >= -1.0 and samples.max() <= 1.0
        np.testing.assert_allclose(samples, data, atol=WAV_SUBTYPES[subtype], rtol=0)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac_round_trip(tmp_path, subtype, channels):
    data = tone(9000, channels, 44100)
    path = tmp_path / "a.flac"
    sf.write(path, data, 44100, format="FLAC", subtype=subtype)
    samples, info = read(path)
    assert (info.format, info.subtype) == ("FLAC", subtype)
    assert (info.rate_hz, info.channels) == (44100, channels)
    np.testing.assert_allclose(samples, data, atol=WAV_SUBTYPES[subtype], rtol=0)


LOSSY = [
    pytest.param("OGG", "VORBIS", 16000, "ogg", id="ogg-vorbis"),
    pytest.param("OGG", "OPUS", 48000, "opus", id="ogg-opus"),
    pytest.param("MP3", "MPEG_LAYER_III", 44100, "mp3", id="mp3"),
]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("fmt", "subtype", "rate_hz", "ext"), LOSSY)
def test_lossy_round_trip(tmp_path, fmt, subtype, rate_hz, ext, channels):
    frames = rate_hz  # one second
    data = tone(frames, channels, rate_hz, amplitude=0.5)
    path = tmp_path / f"a.{ext}"
    write_encoded(path, data, rate_hz, fmt, subtype)

    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioWarning)
        samples, info = read(path)

    assert (info.format, info.subtype) == (fmt, subtype)
    assert (info.rate_hz, info.channels) == (rate_hz, channels)
    assert samples.dtype == np.float32 and samples.shape[1] == channels
    assert abs(len(samples) - frames) <= rate_hz // 100  # codecs may pad; within 10 ms
    assert np.isfinite(samples).all()
    # Each channel's tone survives encoding (codecs may shift it by their delay: compare spectra).
    middle = samples[len(samples) // 10 : len(samples) * 9 // 10].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))[:, None], axis=0))
    peak_hz = np.argmax(spectrum, axis=0) * rate_hz / len(middle)
    np.testing.assert_allclose(peak_hz, 220.0 * (1 + np.arange(channels)), atol=3.0)
    rms = np.sqrt(np.mean(middle**2, axis=0))
    np.testing.assert_allclose(rms, 0.5 / np.sqrt(2), rtol=0.2)


def test_six_channel_blocks_and_mono(tmp_path):
    data = tone(5000, 6, 16000)
    path = tmp_path / "six.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    blocks = list(iter_blocks(path, block_frames=777))
    assert all(b.shape[1] == 6 and b.dtype == np.float32 for b in blocks)
    whole, _ = read(path)
    mono, info = read_mono(path)
    assert mono.dtype == np.float32 and mono.shape == (5000,)
    np.testing.assert_allclose(mono, data.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(mono, mix_to_mono(whole))
    assert info.channels == 6


def test_mix_to_mono_accumulates_in_float64():
    block = np.array([[1e8, 1.0, -1e8], [0.25, 0.25, 0.25]], dtype=np.float32)
    mono = mix_to_mono(block)
    assert mono.dtype == np.float32 and mono.shape == (2,)
    np.testing.assert_allclose(mono, [1.0 / 3.0, 0.25], rtol=1e-6)
    single = np.arange(4, dtype=np.float32)[:, None]
    out = mix_to_mono(single)
    np.testing.assert_array_equal(out, single[:, 0])
    assert not np.shares_memory(out, single)
    np.testing.assert_array_equal(mix_to_mono(np.ones(3)), np.ones(3, np.float32))


# ------------------------------------------------------------------------------------------------
# Blocks


@pytest.fixture(scope="module")
def stereo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocks")
    data = tone(10007, 2, 16000)
    wav = folder / "odd.wav"
    flac = folder / "odd.flac"
    sf.write(wav, data, 16000, subtype="FLOAT")
    sf.write(flac, data, 16000, format="FLAC", subtype="PCM_24")
    return {"wav": wav, "flac": flac}


@pytest.mark.parametrize("kind", ["wav", "flac"])
@pytest.mark.parametrize("block_frames", [1, 7, 1000, 4097, 8193, 10007, 65537])
def test_blocks_equal_whole_read(stereo_files, kind, block_frames):
    path = stereo_files[kind]
    whole, info = read(path)
    blocks = list(iter_blocks(path, block_frames=block_frames))
    assert all(b.dtype == np.float32 and b.shape[1] == 2 for b in blocks)
    assert all(len(b) == block_frames for b in blocks[:-1])  # only the last block is short
    assert 1 <= len(blocks[-1]) <= block_frames
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    assert len(whole) == info.frames == 10007


def test_blocks_equal_whole_read_random_sizes(stereo_files):
    whole, _ = read(stereo_files["flac"])
    sizes = np.random.default_rng(20261125).integers(1, 12000, size=25)
    for block_frames in sizes.tolist():
        blocks = list(iter_blocks(stereo_files["flac"], block_frames=block_frames))
        assert max(len(b) for b in blocks) <= block_frames
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_long_file_is_read_in_bounded_blocks(tmp_path):
    """Ten minutes of 48 kHz stereo: every block within block_frames, allocations bounded."""
    rate_hz, seconds, channels = 48000, 600, 2
    path = tmp_path / "long.wav"
    one_second = (tone(rate_hz, channels, rate_hz, amplitude=0.5) * 32767).astype(np.int16)
    with sf.SoundFile(path, "w", rate_hz, channels, subtype="PCM_16") as out:
        for _ in range(seconds):
            out.write(one_second)
    total_frames = rate_hz * seconds
    assert path.stat().st_size > total_frames * channels * 2  # ~115 MB on disk

    block_frames = 65536
    frames = 0
    tracemalloc.start()
    try:
        for block in iter_blocks(path, block_frames=block_frames):
            assert block.dtype == np.float32
            assert block.shape[1] == channels and 1 <= block.shape[0] <= block_frames
            frames += block.shape[0]
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames == total_frames
    block_bytes = block_frames * channels * 4
    assert peak_bytes < 8 * block_bytes  # a few blocks, not the 230 MB of decoded audio


def test_iter_blocks_rejects_bad_arguments(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(100, 1, 8000), 8000)
    with pytest.raises(ValueError):
        iter_blocks(path, block_frames=0)
    with pytest.raises(TypeError):
        iter_blocks(path, block_frames=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        iter_blocks(path, nonfinite="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        read(path, max_duration_s=0)


def test_iter_blocks_validates_eagerly(tmp_path):
    """A bad file raises at the call, not at the first next()."""
    path = write_bytes(tmp_path / "bad.wav", b"not audio at all, just some words\n")
    with pytest.raises(AudioError):
        iter_blocks(path)


# ------------------------------------------------------------------------------------------------
# read() limits


def test_max_duration_guard(tmp_path):
    path = tmp_path / "two_seconds.wav"
    sf.write(path, tone(32000, 1, 16000), 16000)
    message = audio_error(path, str(path), max_duration_s=1.0)
    assert "max_duration_s" in message
    samples, _ = read(path, max_duration_s=2.0)
    assert len(samples) == 32000
    with pytest.raises(AudioError):
        read_mono(path, max_duration_s=0.5)


def test_max_duration_guard_while_decoding_compressed(tmp_path, monkeypatch):
    """A compressed file whose header understates its length still stops at the limit."""
    path = tmp_path / "a.flac"
    sf.write(path, tone(32000, 1, 16000), 16000, format="FLAC")
    monkeypatch.setattr(sf.SoundFile, "frames", property(lambda self: 100))
    message = audio_error(path, str(path), max_duration_s=1.0)
    assert "max_duration_s" in message


def test_compressed_length_is_only_a_hint(tmp_path, monkeypatch):
    """read() grows past a wrong declared length of a compressed file."""
    path = tmp_path / "a.flac"
    data = tone(20000, 2, 16000)
    sf.write(path, data, 16000, format="FLAC", subtype="PCM_24")
    monkeypatch.setattr(sf.SoundFile, "frames", property(lambda self: 10))
    samples, info = read(path)
    assert info.frames == 10
    np.testing.assert_allclose(samples, data, atol=2 / 2**23)
    mono, _ = read_mono(path)
    assert mono.shape == (20000,)


def test_uncompressed_length_must_fit_the_file():
    info = AudioInfo("lie.au", 16000, 2, 10**9, "AU", "PCM_16")
    with pytest.raises(AudioError) as excinfo:
        audio._validate_info(info, 1000)
    assert "holds only 1000 bytes" in assert_clean_message(excinfo.value, "lie.au")
    audio._validate_info(AudioInfo("ok.flac", 16000, 2, 10**9, "FLAC", "PCM_16"), 1000)
    audio._validate_info(AudioInfo("ok.au", 16000, 2, 250, "AU", "PCM_16"), 1000)


# ------------------------------------------------------------------------------------------------
# Streams


def test_binary_stream_with_name(tmp_path):
    data = tone(3000, 2, 16000)
    buffer = io.BytesIO()
    sf.write(buffer, data, 16000, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    info = probe(buffer, name="<stdin>")
    assert info.path == "<stdin>" and info.frames == 3000
    assert buffer.tell() == 0  # probe leaves a seekable stream where it was
    blocks = list(iter_blocks(buffer, block_frames=1000, name="<stdin>"))
    np.testing.assert_allclose(np.concatenate(blocks), data, atol=2 / 2**15)


def test_bytes_and_stream_at_an_offset():
    buffer = io.BytesIO()
    sf.write(buffer, tone(500, 1, 8000), 8000, format="WAV", subtype="PCM_16")
    payload = buffer.getvalue()
    samples, info = read(payload, name="payload")
    assert info.path == "payload" and samples.shape == (500, 1)
    shifted = io.BytesIO(b"JUNKJUNK" + payload)
    shifted.seek(8)
    again, _ = read(shifted, name="shifted")
    np.testing.assert_array_equal(again, samples)


class Unseekable(io.RawIOBase):
    """A pipe-like stream (stdin): readable, not seekable; optionally fails after some bytes."""

    def __init__(self, payload: bytes, fail_after: int | None = None):
        self._inner = io.BytesIO(payload)
        self._fail_after = fail_after

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        if self._fail_after is not None and self._inner.tell() >= self._fail_after:
            raise OSError("connection reset by peer")
        return self._inner.readinto(buffer)


def test_unseekable_stream_is_spooled():
    buffer = io.BytesIO()
    data = tone(12000, 2, 16000)
    sf.write(buffer, data, 16000, format="FLAC", subtype="PCM_24")
    samples, info = read(io.BufferedReader(Unseekable(buffer.getvalue())), name="<stdin>")
    assert info.path == "<stdin>" and info.format == "FLAC"
    np.testing.assert_allclose(samples, data, atol=2 / 2**23)


def test_failing_stream_is_one_audio_error(capfd):
    buffer = io.BytesIO()
    sf.write(buffer, tone(12000, 1, 16000), 16000, format="WAV")
    stream = Unseekable(buffer.getvalue(), fail_after=4096)
    message = audio_error(stream, "<stdin>", name="<stdin>")
    assert "connection reset by peer" in message
    assert "Traceback" not in capfd.readouterr().err


class FlakySeekable(io.BytesIO):
    """A seekable stream whose reads fail after a point (a network file system going away)."""

    def __init__(self, payload: bytes, fail_after: int):
        super().__init__(payload)
        self.fail_after = fail_after

    def readinto(self, buffer):
        if self.tell() >= self.fail_after:
            raise OSError("stale file handle")
        return super().readinto(buffer)

    def read(self, n=-1):
        if self.tell() >= self.fail_after:
            raise OSError("stale file handle")
        return super().read(n)


def test_seekable_stream_failing_mid_decode(capfd):
    buffer = io.BytesIO()
    sf.write(buffer, tone(160000, 1, 16000), 16000, format="WAV", subtype="PCM_16")
    stream = FlakySeekable(buffer.getvalue(), fail_after=100_000)
    with pytest.raises(AudioError) as excinfo:
        for _ in iter_blocks(stream, block_frames=4096, name="remote.wav"):
            pass
    assert "stale file handle" in assert_clean_message(excinfo.value, "remote.wav")
    assert "Traceback" not in capfd.readouterr().err


def test_text_stream_is_a_type_error():
    with pytest.raises(TypeError):
        probe(io.StringIO("RIFF...."), name="text")
    with pytest.raises(TypeError):
        probe(12345)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Bad input, one class per test


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    assert "does not exist" in audio_error(path, str(path))
    with pytest.raises(AudioError):
        probe(path)


def test_directory(tmp_path):
    assert "directory" in audio_error(tmp_path, str(tmp_path))


def test_unreadable_path(tmp_path):
    path = tmp_path / "secret.wav"
    sf.write(path, tone(100, 1, 8000), 8000)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running with privileges that read a chmod 000 file anyway (root)")
        assert "permission denied" in audio_error(path, str(path))
    finally:
        path.chmod(0o644)


def test_empty_file(tmp_path):
    path = write_bytes(tmp_path / "empty.wav", b"")
    assert "empty" in audio_error(path, str(path))
    with pytest.raises(AudioError):
        probe(io.BytesIO(b""), name="<stdin>")


def test_header_only_is_zero_frames(tmp_path):
    """A valid header with a data chunk of 0 bytes is a valid, empty recording."""
    path = write_bytes(tmp_path / "header_only.wav", wav_header(channels=2, data_size=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = probe(path)
        samples, _ = read(path)
        mono, _ = read_mono(path)
        blocks = list(iter_blocks(path))
    assert (info.frames, info.channels, info.duration_s) == (0, 2, 0.0)
    assert samples.shape == (0, 2) and samples.dtype == np.float32
    assert mono.shape == (0,) and mono.dtype == np.float32
    assert blocks == []


def test_truncated_at_every_header_offset(tmp_path):
    """Each prefix of a 44-byte header: a clean AudioError or a valid (warned) result."""
    data = (tone(16000, 1, 16000) * 32767).astype("<i2").tobytes()
    full = wav_header(data_size=len(data)) + data
    assert len(wav_header()) == 44
    outcomes = []
    for cut in range(0, 45):
        path = write_bytes(tmp_path / f"cut{cut:02d}.wav", full[:cut])
        result, warned = read_or_error(path, str(path))
        outcomes.append(result is not None)
        if result is not None:
            samples, _ = result
            assert len(samples) == 0
            assert len(warned) == 1  # the header promised a second of audio
    assert not any(outcomes[:12])  # no RIFF/WAVE preamble: never a result
    assert outcomes[44]  # the complete header: an empty result with a warning


def test_truncated_inside_the_data(tmp_path):
    """A WAV cut mid-data decodes what is there and warns once."""
    data = tone(16000, 2, 16000)
    path = tmp_path / "whole.wav"
    sf.write(path, data, 16000, subtype="PCM_16")
    raw = path.read_bytes()
    cut = write_bytes(tmp_path / "cut.wav", raw[: 44 + 4 * 6000 + 3])  # ends mid-frame
    with pytest.warns(AudioWarning) as record:
        samples, info = read(cut)
    assert len(record) == 1
    message = assert_clean_message(record[0].message, str(cut))
    assert "truncated" in message and "1.000 s" in message
    assert samples.shape == (6000, 2) and info.frames == 6000
    np.testing.assert_allclose(samples, data[:6000], atol=2 / 2**15)


def test_data_size_beyond_file_end(tmp_path):
    pcm = (tone(1000, 1, 16000) * 32767).astype("<i2").tobytes()
    path = write_bytes(tmp_path / "liar.wav", wav_header(data_size=10**8) + pcm)
    with pytest.warns(AudioWarning, match="header declares"):
        samples, info = read(path)
    assert samples.shape == (1000, 1) and info.frames == 1000


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate_hz", "ext"),
    [pytest.param("FLAC", "PCM_16", 16000, "flac", id="flac"), *LOSSY],
)
def test_truncated_compressed_never_crashes(tmp_path, fmt, subtype, rate_hz, ext):
    source = tmp_path / f"whole.{ext}"
    write_encoded(source, tone(2 * rate_hz, 2, rate_hz, amplitude=0.5), rate_hz, fmt, subtype)
    raw = source.read_bytes()
    header_cuts = set(range(0, min(len(raw), 160), 7))
    stream_cuts = set(range(0, len(raw), max(1, len(raw) // 12)))
    cuts = sorted(header_cuts | stream_cuts)
    for cut in cuts:
        path = write_bytes(tmp_path / f"cut{cut}.{ext}", raw[:cut])
        read_or_error(path, str(path))


def test_truncated_flac_keeps_the_decodable_prefix(tmp_path):
    data = tone(48000, 1, 16000)
    source = tmp_path / "whole.flac"
    sf.write(source, data, 16000, format="FLAC", subtype="PCM_16")
    raw = source.read_bytes()
    path = write_bytes(tmp_path / "half.flac", raw[: len(raw) // 2])
    with pytest.warns(AudioWarning) as record:
        samples, _ = read(path)
    assert len(record) == 1
    assert "truncated" in assert_clean_message(record[0].message, str(path))
    assert 0 < len(samples) < 48000
    np.testing.assert_allclose(samples, data[: len(samples)], atol=2 / 2**15)


def test_non_audio_bytes(tmp_path):
    junk = np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path = write_bytes(tmp_path / "junk.wav", junk)
    assert "not in a recognised audio format" in audio_error(path, str(path))
    binary = write_bytes(tmp_path / "zeros.bin", bytes(1000))
    audio_error(binary, str(binary))


def test_text_file_renamed_wav(tmp_path):
    path = write_bytes(tmp_path / "notes.wav", b"meeting notes\nbuy milk\n" * 20)
    assert "text file" in audio_error(path, str(path))


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (0, "declares 0 channels"),
        (300, "declares 300 channels"),
        (65535, "declares 65535 channels"),
    ],
)
def test_channel_count(tmp_path, channels, expected):
    path = write_bytes(
        tmp_path / "talk.wav", wav_header(channels=channels, data_size=1200) + bytes(1200)
    )
    message = audio_error(path, str(path))
    assert expected in message
    if channels:
        assert f"at most {MAX_CHANNELS} are supported" in message
    with pytest.raises(AudioError):
        probe(path)


@pytest.mark.parametrize("rate_hz", [0, 500_000, 4_000_000_000])
def test_sample_rate(tmp_path, rate_hz):
    header = wav_header(rate_hz=rate_hz, data_size=200)
    path = write_bytes(tmp_path / "rate.wav", header + bytes(200))
    message = audio_error(path, str(path))
    assert f"sample rate of {rate_hz} Hz" in message


def test_nan_inf_error_names_the_time(tmp_path):
    data = np.zeros((16000, 2), np.float32)
    data[8000, 1] = np.nan
    data[12345, 0] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    message = audio_error(path, str(path))
    assert "0.500 s" in message and "non-finite" in message
    with pytest.raises(AudioError, match="0.500 s"):
        list(iter_blocks(path, block_frames=1000))  # the offset counts across blocks


def test_nan_inf_zero_mode_warns_with_count(tmp_path):
    data = tone(16000, 2, 16000).astype(np.float32)
    data[3, 0] = np.nan
    data[9000, 1] = np.inf
    data[15999, 0] = -np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="DOUBLE")
    with pytest.warns(AudioWarning) as record:
        samples, _ = read(path, nonfinite="zero")
    assert len(record) == 1
    message = assert_clean_message(record[0].message, str(path))
    assert "replaced 3 non-finite samples" in message
    assert np.isfinite(samples).all()
    assert samples[3, 0] == samples[9000, 1] == samples[15999, 0] == 0.0
    mask = np.isfinite(data)
    np.testing.assert_array_equal(samples[mask], data[mask])
    with pytest.warns(AudioWarning, match="replaced 3"):
        mono, _ = read_mono(path, nonfinite="zero")
    assert np.isfinite(mono).all()


def test_name_with_control_characters_stays_one_line(tmp_path):
    path = tmp_path / "bad\nname.wav"
    message = audio_error(path, "name.wav")
    assert "\\n" in message


# ------------------------------------------------------------------------------------------------
# Real recordings (read in place; never copied)

REAL_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg"}


def test_real_recordings_decode(test_data_dir):
    folder = test_data_dir / "formats"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the test data")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in REAL_EXTENSIONS)
    assert {p.suffix.lower() for p in files} == REAL_EXTENSIONS
    failures = []
    for path in files:
        expected = sf.info(str(path))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", AudioWarning)
                samples, info = read(path)
                mono, _ = read_mono(path)
        except (AudioError, AudioWarning) as err:
            failures.append(f"{path.name}: {err}")
            continue
        checks = {
            "float32": samples.dtype == np.float32 and mono.dtype == np.float32,
            "rate": info.rate_hz == expected.samplerate,
            "channels": info.channels == expected.channels == samples.shape[1],
            "frames": len(samples) == expected.frames == len(mono),
            "finite": bool(np.isfinite(samples).all()),
            "non-silent": float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) > 1e-3,
        }
        if expected.subtype.startswith("PCM"):
            checks["range"] = float(np.abs(samples).max()) <= 1.0
        failures += [f"{path.name}: {name} check failed" for name, ok in checks.items() if not ok]
    assert not failures, "\n".join(failures)


def test_permission_denied_message(tmp_path, monkeypatch):
    """The permission path, also when the suite runs as root (where chmod 000 does not bite)."""
    path = tmp_path / "locked.wav"
    sf.write(path, tone(100, 1, 8000), 8000)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio, "open", denied, raising=False)
    assert "permission denied" in audio_error(path, str(path))
