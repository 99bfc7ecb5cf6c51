"""Hostile audio end to end: a corpus of malformed files generated here (never downloaded) through
``audio.probe``, ``Detector.detect_file``, ``pcmstream``, a folder run of ``edgeser detect`` and the
live ``--stream`` path; plus the fuzz harness (``fuzz_audio.py``) over seeds and deterministic
mutations, without atheris.

Every case ends in a result or one ``AudioError`` whose text is one sentence naming the file, never
another exception, a traceback or a hang, and with bounded memory: each case runs under
``tracemalloc`` with a 64 MB ceiling on the traced peak (an absurd declared length must not become
an allocation). ``test_audio.py`` covers the decoder's own contract class by class; this module
runs the same classes (and more) through every entry point at once.

Hangs are caught by running each case in a thread with a 60 s limit; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import fuzz_audio
from edgeser import audio, frontend, pcmstream
from edgeser.errors import AudioError, EdgeserError, FrontendError

MEMORY_LIMIT_BYTES = 64 * 10**6
HANG_S = 60.0
CLI_TIMEOUT_S = 300
RATE_HZ = 16000

# ------------------------------------------------------------------------------------------------
# Building blocks


def wav_header(*, channels: int = 1, rate_hz: int = RATE_HZ, bits: int = 16, fmt_tag: int = 1,
               data_size: int = 0) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; fields are masked to their widths, not validated."""
    block_align = (channels * bits // 8) & 0xFFFF
    byte_rate = (rate_hz * block_align) & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag, channels & 0xFFFF, rate_hz & 0xFFFFFFFF, byte_rate,
                      block_align, bits)
    riff_size = 4 + 8 + len(fmt) + 8 + data_size
    return (b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", data_size & 0xFFFFFFFF))


def speech_like(seconds: float, rate_hz: int = RATE_HZ, channels: int = 1, seed: int = 0):
    """A voiced-sounding tone with noise: loud enough that no window is gated as silent."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate_hz))
    t = np.arange(n) / rate_hz
    phase = 2 * np.pi * np.cumsum(150 + 40 * np.sin(2 * np.pi * 0.7 * t)) / rate_hz
    x = 0.3 * sum(np.sin(k * phase) / k for k in (1, 2, 3)) + 0.02 * rng.standard_normal(n)
    if channels > 1:
        x = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return x


def encoded(data, rate_hz: int, fmt: str, subtype: str) -> bytes | None:
    return fuzz_audio.encode(np.asarray(data, dtype=np.float64), rate_hz, fmt, subtype)


def pcm16(seconds: float, rate_hz: int = RATE_HZ, channels: int = 1) -> bytes:
    x = speech_like(seconds, rate_hz, channels)
    return np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def with_list_chunk(pcm: bytes) -> tuple[bytes, int, int]:
    """A WAV with a LIST/INFO chunk between 'fmt ' and 'data': (bytes, LIST offset, data offset)."""
    fmt = struct.pack("<HHIIHH", 1, 1, RATE_HZ, 2 * RATE_HZ, 2, 16)
    text = b"edgeser hostile tests\0"
    info = b"INFO" + b"ISFT" + struct.pack("<I", len(text)) + text
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    list_at = 12 + len(body) - 4
    body += b"LIST" + struct.pack("<I", len(info)) + info
    data_at = 8 + len(body)
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body, list_at, data_at


def rf64_huge_count(pcm: bytes) -> bytes:
    """RF64 whose ds64 chunk declares 2**61 data bytes and 2**60 samples over a short payload."""
    fmt = struct.pack("<HHIIHH", 1, 1, RATE_HZ, 2 * RATE_HZ, 2, 16)
    ds64 = struct.pack("<QQQI", 2**62, 2**61, 2**60, 0)
    return (b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"ds64"
            + struct.pack("<I", len(ds64)) + ds64 + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm)


def flac_metadata_end(data: bytes) -> int:
    """Offset of the first FLAC frame (after the last metadata block)."""
    offset = 4
    while True:
        flags = data[offset]
        offset += 4 + int.from_bytes(data[offset + 1 : offset + 4], "big")
        if flags & 0x80:
            return offset


def flac_huge_total(data: bytes) -> bytes:
    """The FLAC with STREAMINFO's 36-bit total-samples field set to its maximum (~6.9e10)."""
    out = bytearray(data)
    assert out[:4] == b"fLaC" and out[4] & 0x7F == 0  # STREAMINFO first
    info = 8  # STREAMINFO body; total samples are the low 36 bits of bytes 10..17
    word = int.from_bytes(out[info + 10 : info + 18], "big") | (2**36 - 1)
    out[info + 10 : info + 18] = word.to_bytes(8, "big")
    return bytes(out)


@dataclass(frozen=True)
class Case:
    """One corpus entry. ``probe`` / ``detect``: ``ok`` (a result), ``error`` (one AudioError)
    or ``any`` (either, e.g. a stream cut inside its first frames)."""

    name: str  # path below the corpus folder (may hold surrogate escapes: a non-UTF-8 name)
    data: bytes | None  # None: a directory
    probe: str
    detect: str

    @property
    def id(self) -> str:
        return ascii(self.name)[1:-1] if len(self.name) < 60 else self.name[:20] + "...long"


def build_corpus() -> list[Case]:
    cases: list[Case] = []

    def add(name, data, probe, detect):
        cases.append(Case(name, data, probe, detect))

    one_s = pcm16(1.0)
    add("empty.wav", b"", "error", "error")
    add("header-only.wav", wav_header(data_size=0), "ok", "error")
    full = wav_header(data_size=len(one_s)) + one_s
    for cut in range(45):  # every prefix of the header: no audio in any of them
        add(f"wav-cut-{cut:02d}.wav", full[:cut], "error" if cut < 12 else "any", "error")
    listed, list_at, data_at = with_list_chunk(one_s)
    for cut in sorted({list_at + k for k in (0, 2, 4, 6, 8, 10, 12, 16, 20, 30)}
                      | {data_at + k for k in (0, 4, 7)}):
        add(f"list-cut-{cut:03d}.wav", listed[:cut], "any", "error")
    add("list-whole.wav", listed, "ok", "ok")

    flac = encoded(speech_like(1.0), RATE_HZ, "FLAC", "PCM_16")
    first_frame = flac_metadata_end(flac)
    for cut in range(0, first_frame + 24):  # every offset of the metadata, into the first frame
        add(f"flac-cut-{cut:03d}.flac", flac[:cut], "error" if cut < 42 else "any",
            "error" if cut <= first_frame else "any")
    add("flac-huge-total.flac", flac_huge_total(flac), "ok", "any")
    for fmt, subtype, rate_hz, ext in (("OGG", "VORBIS", 16000, "ogg"),
                                       ("OGG", "OPUS", 48000, "opus")):
        ogg = encoded(speech_like(1.0, rate_hz), rate_hz, fmt, subtype)
        if ogg is None:
            continue
        pages = fuzz_audio.ogg_pages(ogg)
        headers_end = pages[1][0] + pages[1][1]  # identification + comment/setup pages
        cuts = set(range(0, 64)) | set(range(64, headers_end + 1, 97))
        cuts |= {o + d for o, _ in pages[:3] for d in (-1, 0, 1, 27, 28)}
        for cut in sorted(c for c in cuts if 0 <= c < len(ogg)):
            add(f"{ext}-cut-{cut:04d}.{ext}", ogg[:cut], "any", "any")
    mp3 = encoded(speech_like(1.0, 44100), 44100, "MP3", "MPEG_LAYER_III")
    if mp3 is not None:
        for cut in (0, 1, 2, 3, 4, 10, 40, 100, 417, 418, 419, 1000):
            add(f"mp3-cut-{cut:04d}.mp3", mp3[:cut], "any", "any")

    add("data-past-end.wav", wav_header(data_size=10**6) + one_s, "ok", "ok")
    add("data-size-fffffff0.wav", wav_header(data_size=0xFFFFFFF0) + one_s, "ok", "ok")
    add("rf64-huge-count.wav", rf64_huge_count(one_s), "ok", "ok")
    add("zero-channels.wav", wav_header(channels=0, data_size=1200) + bytes(1200),
        "error", "error")
    add("65535-channels.wav", wav_header(channels=65535, data_size=1200) + bytes(1200),
        "error", "error")
    many = pcm16(0.05, channels=256)  # 800 frames of 256 channels: valid, one short window
    add("256-channels.wav", wav_header(channels=256, data_size=len(many)) + many, "ok", "ok")
    add("256-channels-4-frames.wav", wav_header(channels=256, data_size=2048) + bytes(2048),
        "ok", "error")
    add("rate-0.wav", wav_header(rate_hz=0, data_size=len(one_s)) + one_s, "error", "error")
    add("rate-4e9.wav", wav_header(rate_hz=4_000_000_000, data_size=len(one_s)) + one_s,
        "error", "error")
    add("8bit-unsigned.wav", encoded(speech_like(1.0, 22050, 2), 22050, "WAV", "PCM_U8"),
        "ok", "ok")
    add("24bit.wav", encoded(speech_like(1.0, 44100, 2), 44100, "WAV", "PCM_24"), "ok", "ok")
    nan = speech_like(1.0)
    nan[8000] = np.nan
    add("float-nan.wav", encoded(nan, RATE_HZ, "WAV", "FLOAT"), "ok", "error")
    inf = speech_like(1.0)
    inf[4000] = -np.inf
    add("float-inf.wav", encoded(inf, RATE_HZ, "WAV", "FLOAT"), "ok", "error")
    rng = np.random.default_rng(20260202)
    add("random.wav", rng.bytes(4096), "error", "error")
    add("random-riff.wav", b"RIFF" + struct.pack("<I", 4092) + b"WAVE" + rng.bytes(4084),
        "any", "error")
    prose = ("Meeting notes. Buy milk, call the studio about the microphones, and remember that "
             "the interview on Tuesday was recorded at 48 kHz.\n") * 12
    add("notes.wav", prose.encode("utf-8"), "error", "error")

    good = encoded(speech_like(1.5, seed=3), RATE_HZ, "WAV", "PCM_16")
    add("long-" + "n" * 230 + ".wav", good, "ok", "ok")  # 239 bytes: near NAME_MAX (255)
    add("ünïcødé-录音-😀.wav", good, "ok", "ok")
    add(os.fsdecode(b"latin1-caf\xe9-\xff.wav"), good, "ok", "ok")  # not UTF-8: surrogates
    add("x.wav", None, "error", "error")  # a directory with an audio name
    return cases


def good_files() -> dict[str, bytes]:
    """The two plainly good files of the folder run (one inside the directory named x.wav)."""
    return {
        "good-16k.wav": encoded(speech_like(2.0, seed=1), RATE_HZ, "WAV", "PCM_16"),
        "x.wav/inside-good.flac": encoded(speech_like(2.0, 44100, 2, seed=2), 44100, "FLAC",
                                          "PCM_16"),
    }


CORPUS = build_corpus()


def case_path(folder: Path, case: Case) -> Path:
    return folder / case.name  # a surrogate-escaped name maps back to its bytes on the way down


def write_case(folder: Path, case: Case) -> Path:
    path = case_path(folder, case)
    if case.data is None:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.data)
    return path


# ------------------------------------------------------------------------------------------------
# Checks


def one_sentence(text: str, name: str) -> str:
    """One line naming ``name``, ending in a period, with no second sentence after it."""
    assert name in text, (name, text)
    assert "\n" not in text and "\r" not in text, text
    assert text.endswith("."), text
    assert "Traceback" not in text and "Error opening" not in text, text
    rest = text.replace(name, "<name>")
    assert not re.search(r"[.!?]\s+[A-Z]", rest[:-1]), f"more than one sentence: {text}"
    return text


def guarded(fn, *args, **kwargs):
    """Run ``fn`` in a thread; fail if it is still running after HANG_S (a hang, not a timing
    assertion). Returns ``("ok", value)`` or ``("raised", exception)``."""
    outcome: list = []

    def target():
        try:
            outcome.append(("ok", fn(*args, **kwargs)))
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            outcome.append(("raised", err))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_S)
    if thread.is_alive():
        pytest.fail(f"{fn.__name__}{args!r:.200} still running after {HANG_S:g} s: a hang")
    return outcome[0]


def expect_outcome(expect: str, outcome, name: str, what: str):
    """A result, or one AudioError sentence naming the file, as ``expect`` allows."""
    kind, value = outcome
    if kind == "raised":
        if not isinstance(value, AudioError):
            raise AssertionError(f"{what} raised {type(value).__name__}, not AudioError: "
                                 f"{value}") from value
        one_sentence(str(value), name)
        assert expect in ("error", "any"), f"{what} failed unexpectedly: {value}"
        return None
    assert expect in ("ok", "any"), f"{what} gave a result where an AudioError was expected"
    return value


@pytest.fixture(scope="module")
def detector(tiny_bundles):
    from edgeser import Detector

    return Detector.load(tiny_bundles("dimensional"), threads=1)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    for case in CORPUS:
        write_case(folder, case)
    for name, data in good_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


# ------------------------------------------------------------------------------------------------
# 1. Every case through probe() and Detector.detect_file(), memory traced


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_probe_and_detect_file(case, corpus_dir, detector):
    path = case_path(corpus_dir, case)
    label = audio._display(str(path))
    tracemalloc.start()
    try:
        probed = expect_outcome(case.probe, guarded(audio.probe, path), label, "probe")
        _, probe_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = expect_outcome(case.detect, guarded(detector.detect_file, path), label,
                                "detect_file")
        _, detect_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert probe_peak < MEMORY_LIMIT_BYTES, f"probe traced {probe_peak / 1e6:.1f} MB"
    assert detect_peak < MEMORY_LIMIT_BYTES, f"detect_file traced {detect_peak / 1e6:.1f} MB"
    if probed is not None:
        assert 1 <= probed.channels <= audio.MAX_CHANNELS
        assert audio.MIN_RATE_HZ <= probed.rate_hz <= audio.MAX_RATE_HZ and probed.frames >= 0
    if result is not None:
        assert result.windows and result.samples > 0
        for warning in result.warnings:
            one_sentence(warning, label)
        for w in result.windows:
            assert 0 <= w.start < w.stop <= result.samples
            assert np.isfinite(w.level_dbfs)
            assert all(np.isfinite(v) for v in (w.scores or {}).values())


def test_declared_lengths_are_never_allocated(corpus_dir):
    """The corpus cases that declare far more audio than they hold, and a tiny file declaring
    256 channels, cost kilobytes in iter_blocks, not what the header promises."""
    for name in ("data-size-fffffff0.wav", "rf64-huge-count.wav", "flac-huge-total.flac",
                 "256-channels-4-frames.wav", "data-past-end.wav"):
        path = corpus_dir / name
        notes: list[str] = []
        tracemalloc.start()
        try:
            frames = sum(len(b) for b in audio.iter_blocks(path, on_warning=notes.append))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert frames <= 16000, name
        # at most the decoded audio (1 s mono float32 = 64 kB) a few times over, plus bookkeeping
        assert peak < 2 * 10**6, f"{name}: {peak / 1e6:.1f} MB traced"


def test_blocks_keep_their_size_when_a_compressed_length_hint_is_low(tmp_path, monkeypatch):
    """iter_blocks allocates what the header declares and grows when a compressed stream runs
    on past it: the blocks are the same as with an honest header."""
    path = tmp_path / "a.flac"
    sf.write(path, speech_like(1.3, channels=2), RATE_HZ, format="FLAC", subtype="PCM_24")
    honest = list(audio.iter_blocks(path, block_frames=1000))
    monkeypatch.setattr(sf.SoundFile, "frames", property(lambda self: 10))
    for block_frames in (1, 7, 1000, 4096, 65536):
        blocks = list(audio.iter_blocks(path, block_frames=block_frames))
        assert all(len(b) == block_frames for b in blocks[:-1])
        assert 1 <= len(blocks[-1]) <= block_frames
        np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate(honest))


def test_a_name_too_long_for_the_file_system(tmp_path, detector):
    path = tmp_path / ("x" * 300 + ".wav")
    for fn in (audio.probe, detector.detect_file):
        kind, err = guarded(fn, path)
        assert kind == "raised" and isinstance(err, AudioError), err
        assert "too long" in one_sentence(str(err), str(path))


# ------------------------------------------------------------------------------------------------
# 2. The live path in-process: the same bytes as a WAV stream on a pipe


@pytest.mark.parametrize("case", [c for c in CORPUS if c.data is not None],
                         ids=[c.id for c in CORPUS if c.data is not None])
def test_pcmstream_reads_or_refuses(case):
    source = fuzz_audio.Trickle(case.data, [1, 7, 4096])
    tracemalloc.start()
    try:
        def run():
            pcm = pcmstream.open_pcm_stream(source, "stdin")
            return sum(len(c) for c in pcm.chunks(max_frames=800))

        kind, value = guarded(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if kind == "raised":
        if not isinstance(value, AudioError):
            raise AssertionError(f"{type(value).__name__}: {value}") from value
        one_sentence(str(value), "stdin")
    assert peak < MEMORY_LIMIT_BYTES, f"{peak / 1e6:.1f} MB traced"


# ------------------------------------------------------------------------------------------------
# 3. The CLI: one folder run over the whole corpus, and the live path with stdin


def cli(*args: str, home: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["EDGESER_HOME"] = str(home)
    kwargs = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    raw = subprocess.run([sys.executable, "-m", "edgeser", *args], capture_output=True,
                         timeout=CLI_TIMEOUT_S, env=env, **kwargs)
    return subprocess.CompletedProcess(raw.args, raw.returncode,
                                       raw.stdout.decode("utf-8"),
                                       raw.stderr.decode("utf-8", "backslashreplace"))


def failure_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.startswith("edgeser: ") and not line.startswith("edgeser: warning: ")]


def api_outcome(detector, path: Path) -> str:
    try:
        detector.detect_file(path)
    except AudioError:
        return "error"
    return "ok"


def test_folder_run_over_the_corpus(corpus_dir, detector, tiny_bundles, tmp_path):
    result = cli("detect", str(corpus_dir), "-f", "jsonl", "-m", str(tiny_bundles("dimensional")),
                 "--threads", "1", home=tmp_path / "home")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout

    files = [case_path(corpus_dir, c) for c in CORPUS if c.data is not None]
    files += [corpus_dir / name for name in good_files()]
    expected = {str(p): api_outcome(detector, p) for p in files}
    assert expected[str(corpus_dir / "good-16k.wav")] == "ok"
    assert expected[str(corpus_dir / "x.wav" / "inside-good.flac")] == "ok"

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["type"] == "run"
    done = [r["source"] for r in rows if r["type"] == "file"]
    failed = {r["source"]: r["error"] for r in rows if r["type"] == "failure"}
    assert len(failed) == len([r for r in rows if r["type"] == "failure"])  # once each
    assert len(done) >= 10 and len(failed) >= 100, (len(done), len(failed))
    assert sorted(done) == sorted(p for p, o in expected.items() if o == "ok")
    assert sorted(failed) == sorted(p for p, o in expected.items() if o == "error")

    lines = failure_lines(result.stderr)
    *per_file, summary = lines
    assert len(per_file) == len(failed), "\n".join(lines[:50])
    for source, error in failed.items():
        label = audio._display(source)
        one_sentence(error, label)
        mine = [line for line in per_file if line.startswith(f"edgeser: {label}: ")]
        assert mine == [f"edgeser: {error}"], (source, mine)
    assert summary.startswith(f"edgeser: {len(failed)} of {len(files)} inputs failed: ")
    assert summary.endswith(".")
    for line in result.stderr.splitlines():  # warnings too: one line each, naming a file
        if line.startswith("edgeser: warning: "):
            assert any(line.startswith(f"edgeser: warning: {audio._display(p)}: ")
                       for p in expected), line


LIVE_CASES = ["empty.wav", "header-only.wav", "wav-cut-00.wav", "wav-cut-03.wav",
              "wav-cut-11.wav", "wav-cut-12.wav", "wav-cut-20.wav", "wav-cut-36.wav",
              "wav-cut-43.wav", "wav-cut-44.wav", "list-whole.wav", "data-past-end.wav",
              "data-size-fffffff0.wav", "rf64-huge-count.wav", "zero-channels.wav",
              "65535-channels.wav", "256-channels.wav", "256-channels-4-frames.wav", "rate-0.wav",
              "rate-4e9.wav", "8bit-unsigned.wav", "24bit.wav", "float-nan.wav", "float-inf.wav",
              "random.wav", "random-riff.wav", "notes.wav", "flac-cut-100.flac"]


def test_live_stream_of_malformed_bytes_on_stdin(tiny_bundles, tmp_path):
    by_name = {c.name: c for c in CORPUS}
    list_cut = next(c.name for c in CORPUS if c.name.startswith("list-cut-"))
    names = LIVE_CASES + [list_cut]
    bundle = str(tiny_bundles("dimensional"))

    def run(name: str):
        return name, cli("detect", "-", "--stream", "-f", "jsonl", "-m", bundle, "--threads", "1",
                         home=tmp_path / "home", stdin=by_name[name].data)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, names))
    outcomes = {}
    for name, result in results:
        assert result.returncode in (0, 1), (name, result.returncode, result.stderr[-2000:])
        assert "Traceback" not in result.stderr + result.stdout, (name, result.stderr)
        lines = failure_lines(result.stderr)
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        if result.returncode == 1:
            assert len(lines) == 1, (name, result.stderr)
            one_sentence(lines[0][len("edgeser: "):], "stdin")
            assert rows[-1] == {"type": "failure", "source": "stdin",
                                "error": lines[0][len("edgeser: "):]}
        else:
            assert lines == [], (name, result.stderr)
            assert rows[-1]["type"] == "file" and rows[-1]["samples"] > 0
        outcomes[name] = result.returncode
    for name in ("list-whole.wav", "8bit-unsigned.wav", "24bit.wav", "data-past-end.wav",
                 "256-channels.wav"):
        assert outcomes[name] == 0, name
    for name in ("empty.wav", "header-only.wav", "zero-channels.wav", "65535-channels.wav",
                 "rate-0.wav", "rate-4e9.wav", "float-nan.wav", "float-inf.wav", "random.wav",
                 "notes.wav"):
        assert outcomes[name] == 1, name


def test_cli_names_a_path_too_long_for_the_file_system(tiny_bundles, corpus_dir, tmp_path):
    """`detect` with a name longer than NAME_MAX: one sentence, the other inputs still run
    (os.stat's ENAMETOOLONG used to escape from the input expansion as a traceback)."""
    long_name = str(tmp_path / ("y" * 300 + ".wav"))
    good = str(corpus_dir / "good-16k.wav")
    bundle = str(tiny_bundles("dimensional"))
    result = cli("detect", long_name, good, "-f", "jsonl", "-m", bundle, home=tmp_path / "home")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    first, summary = failure_lines(result.stderr)
    assert "too long" in one_sentence(first[len("edgeser: "):], long_name)
    assert summary.startswith("edgeser: 1 of 2 inputs failed")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows if r["type"] == "file"] == [good]
    streamed = cli("detect", long_name, "--stream", "-m", bundle, home=tmp_path / "home")
    assert streamed.returncode == 1 and "Traceback" not in streamed.stderr, streamed.stderr
    assert len(failure_lines(streamed.stderr)) == 1


def test_cli_refuses_an_absurd_window_in_one_sentence(tiny_bundles, corpus_dir, tmp_path):
    """--window 1e305: the sample count overflows a float (was an OverflowError traceback)."""
    result = cli("detect", str(corpus_dir / "good-16k.wav"), "--window", "1e305", "-m",
                 str(tiny_bundles("dimensional")), home=tmp_path / "home")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [line] = failure_lines(result.stderr)
    assert "too long" in line and line.endswith(".")


# ------------------------------------------------------------------------------------------------
# 4. Rates below the frontend's minimum and float samples that overflow when resampled


@pytest.mark.parametrize("rate_hz", [1, 999])
def test_a_rate_below_the_frontends_minimum_names_the_file(rate_hz, tmp_path, detector):
    """audio accepts 1..384000 Hz, the frontend resamples from 1000 Hz: detect_file must still
    answer in one sentence naming the file."""
    pcm = pcm16(1.0)
    path = tmp_path / f"rate-{rate_hz}.wav"
    path.write_bytes(wav_header(rate_hz=rate_hz, data_size=len(pcm)) + pcm)
    assert audio.probe(path).rate_hz == rate_hz
    kind, err = guarded(detector.detect_file, path)
    assert kind == "raised" and isinstance(err, EdgeserError), err
    one_sentence(str(err), str(path))


def test_float_samples_that_overflow_the_resampler_name_the_file(tmp_path, detector):
    """A float WAV at float32's limit is finite, so the decoder passes it; resampled, it
    overflows to Inf and the frontend refuses it: the error must still name the file."""
    x = np.full(44100, np.finfo(np.float32).max, dtype=np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    kind, err = guarded(detector.detect_file, path)
    assert kind == "raised" and isinstance(err, EdgeserError), err
    one_sentence(str(err), str(path))


# ------------------------------------------------------------------------------------------------
# 5. The frontend refuses out-of-range arguments before C, with its one exception type


@pytest.mark.parametrize("call", [
    lambda: frontend.pcm_to_float(b"", 2**32, "s16"),
    lambda: frontend.pcm_to_float(b"", 2**40, "u8"),
    lambda: frontend.to_mono(np.zeros((0, 2**32), dtype=np.float32)),
    lambda: frontend.windows(2**64, 3.0, 1.0),
    lambda: frontend.windows(100, 3.0, 1.0, min_samples=-1),
    lambda: frontend.windows(100, 1e20, 1e20),
    lambda: frontend.windows(100, 1e305, 1.0),
    lambda: frontend.seconds_to_samples(1e305),
    lambda: frontend.seconds_to_samples(10**400),
], ids=["pcm-2**32-channels", "pcm-2**40-channels", "mono-2**32-channels", "windows-n-2**64",
        "windows-negative-min", "windows-1e20-s", "windows-1e305-s", "seconds-1e305",
        "seconds-10**400"])
def test_frontend_refuses_integers_beyond_the_c_types(call):
    with pytest.raises(FrontendError):
        call()


def test_frontend_still_takes_the_largest_values_that_fit():
    assert frontend.pcm_to_float(b"", 2**32 - 1, "s16").shape == (0, 2**32 - 1)
    assert len(frontend.windows(2**64 - 1, 1e14, 1e14, min_samples=2**64 - 1)) == 11
    assert frontend.seconds_to_samples(1e300) % frontend.FRAME_SAMPLES == 0


# ------------------------------------------------------------------------------------------------
# 6. The fuzz harness without atheris: seeds and deterministic mutations

INTERESTING_U32 = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0,
                   0xFFFFFFFF, 44, 16000, 4_000_000_000)
# Offsets (in the payload) of the RIFF/WAVE header fields: sizes, tag, channels, rate, byte rate,
# block align, bits, the data size; for FLAC/Ogg they land on STREAMINFO / page header fields.
FIELD_OFFSETS = (4, 16, 20, 22, 24, 28, 32, 34, 40, 8, 12, 18, 26, 36)


def mutations(seed: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """Deterministic mutants of one fuzz input: bit flips, truncations, insertions, deletions,
    header field overwrites, parameter changes."""
    head = fuzz_audio.HEADER_BYTES
    out = []
    for _ in range(count):
        data = bytearray(seed)
        kind = int(rng.integers(0, 7))
        payload_len = len(data) - head
        if kind == 0 and payload_len:  # flip bits, mostly in the first 128 bytes of the payload
            for _ in range(int(rng.integers(1, 4))):
                span = min(payload_len, 128) if rng.random() < 0.8 else payload_len
                pos = head + int(rng.integers(0, span))
                data[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # truncate
            data = data[: head + int(rng.integers(0, max(1, payload_len)))]
        elif kind == 2:  # insert random bytes
            pos = head + int(rng.integers(0, payload_len + 1))
            data[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
        elif kind == 3 and payload_len > 8:  # delete a span
            pos = head + int(rng.integers(0, payload_len - 1))
            del data[pos : pos + int(rng.integers(1, 64))]
        elif kind == 4:  # overwrite a header field with an interesting value
            offset = head + FIELD_OFFSETS[int(rng.integers(0, len(FIELD_OFFSETS)))]
            value = INTERESTING_U32[int(rng.integers(0, len(INTERESTING_U32)))]
            width = 2 if rng.random() < 0.4 else 4
            if offset + width <= len(data):
                data[offset : offset + width] = (value & (256**width - 1)).to_bytes(width,
                                                                                      "little")
        elif kind == 5:  # other parameters, or another path
            data[: head] = bytes([seed[0] if rng.random() < 0.7 else int(rng.integers(0, 4))]) \
                + rng.bytes(head - 1)
        else:  # duplicate a span (repeated chunks, long runs)
            if payload_len:
                pos = head + int(rng.integers(0, payload_len))
                span = bytes(data[pos : pos + int(rng.integers(1, 256))])
                data[pos:pos] = span * int(rng.integers(1, 4))
        out.append(bytes(data))
    return out


def test_fuzz_harness_smoke():
    seeds = fuzz_audio.seed_inputs()
    assert len(seeds) >= 20
    rng = np.random.default_rng(20260303)
    per_seed = -(-2000 // len(seeds))
    inputs = list(seeds)
    for seed in seeds:
        inputs += mutations(seed, rng, per_seed)
    assert len(inputs) >= 2000
    failures = []
    for k, data in enumerate(inputs):
        kind, err = guarded(fuzz_audio.TestOneInput, data)
        if kind == "raised":
            failures.append(f"input {k} (path {fuzz_audio.PATHS[data[0] % 4]}, {len(data)} "
                            f"bytes): {type(err).__name__}: {err}")
    assert not failures, "\n".join(failures[:20])
