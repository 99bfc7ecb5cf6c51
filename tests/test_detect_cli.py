"""``edgeser detect`` as users run it: a subprocess, every output format, folders, stdin, live
streams, first use of the default model and one sentence (exit 1, no traceback) for every input
or model that cannot be used.

Bundles come from tiny generated checkpoints (``tiny_bundles`` in conftest.py); the default-model
tests read a generated hub cache offline (HF_HUB_OFFLINE=1). API behaviour is in test_detect.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")

from edgeser import Detector, frontend  # noqa: E402
from edgeser.cli._inputs import AUDIO_SUFFIXES  # noqa: E402
from edgeser.detector import DEFAULT_MODEL_ID  # noqa: E402

TIMEOUT_S = 120
API_ATOL = 1e-6  # CLI json vs Detector.detect_file on the same file
STREAM_ATOL = 1e-4  # --stream vs file mode
LOW_THRESHOLD = "0.01"  # laughter: low enough that the voiced parts are events
CLIP_S = 8  # seconds of the generated clip
DEFAULT_BUNDLE = f"{DEFAULT_MODEL_ID.replace('/', '--')}@main"
EXPORT_COMMAND = f"edgeser export --model {DEFAULT_MODEL_ID}"
LABELS = {"dimensional": ["arousal", "dominance", "valence"],
          "categorical": ["angry", "happy", "neutral", "sad"],
          "laughter": ["other", "laughter"]}


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def cli(*args: str, env: dict | None = None, stdin: bytes | None = None, cwd: Path | None = None,
        home: Path, preexec=None) -> subprocess.CompletedProcess:
    """``python -m edgeser ARGS`` with EDGESER_HOME=home; stdin is the given bytes or empty
    (never the terminal pytest runs on, which would let the CLI prompt)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(EDGESER_HOME=str(home), **(env or {}))
    kwargs = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    raw = subprocess.run([sys.executable, "-m", "edgeser", *args], capture_output=True,
                         timeout=TIMEOUT_S, env=full_env, cwd=cwd, preexec_fn=preexec, **kwargs)
    return subprocess.CompletedProcess(raw.args, raw.returncode,
                                       raw.stdout.decode("utf-8"), raw.stderr.decode("utf-8"))


def detect(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return cli("detect", *args, **kwargs)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stderr
    return result


def error_lines(stderr: str) -> list[str]:
    """stderr lines that report a failure (not export progress or warnings)."""
    return [line for line in stderr.splitlines() if line.startswith("edgeser: ")
            and not line.startswith("edgeser: warning: ")
            and not (line.startswith("edgeser: exporting ") and line.endswith("(first use)"))]


def one_sentence(result: subprocess.CompletedProcess, *names: str, alone: bool = True) -> str:
    """Exit 1, no traceback, and one failure line on stderr: 'edgeser: ... .' naming ``names``.
    ``alone``: stderr holds nothing else."""
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    if alone:
        assert result.stderr.strip() == line, result.stderr
    assert line.endswith("."), line
    for name in names:
        assert name in line, (name, line)
    return line


def records(jsonl: str) -> list[dict]:
    return [json.loads(line) for line in jsonl.splitlines()]


def windows_of(jsonl: str) -> list[dict]:
    return [r for r in records(jsonl) if r["type"] == "window"]


def frontend_bounds(samples: int, window_s: float, hop_s: float) -> list[tuple[int, int]]:
    return [(w.start, w.stop) for w in frontend.windows(samples, window_s, hop_s)]


def bounds(windows: list[dict]) -> list[tuple[int, int]]:
    return [(w["start_sample"], w["end_sample"]) for w in windows]


def max_score_difference(a: list[dict], b: list[dict]) -> float:
    assert [(w["start_sample"], w["end_sample"], w["silent"]) for w in a] == \
        [(w["start_sample"], w["end_sample"], w["silent"]) for w in b]
    worst = 0.0
    for wa, wb in zip(a, b):
        if wa["scores"] is not None:
            assert wa["scores"].keys() == wb["scores"].keys()
            worst = max(worst, max(abs(wa["scores"][k] - wb["scores"][k]) for k in wa["scores"]))
    return worst


def seconds(text: str) -> Decimal:
    return Decimal(text)


def exact_s(samples: int) -> Decimal:
    return Decimal(samples) / Decimal(16000)


def s_text(samples: int) -> str:
    """Seconds as the outputs print them: exact, no trailing zeros ("2.2", "6", "60")."""
    text = format(exact_s(samples), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def patched_wav(source: Path, dest: Path, offset: int, fmt: str, value: int) -> Path:
    """A copy of a canonical 44-byte-header WAV with one header field overwritten."""
    data = bytearray(source.read_bytes())
    assert data[12:16] == b"fmt "
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    dest.write_bytes(bytes(data))
    return dest


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """EDGESER_HOME for runs that name their bundle (nothing is exported into it)."""
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="module")
def bundles(tiny_bundles):
    return {kind: tiny_bundles(kind) for kind in ("dimensional", "categorical", "laughter")}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 s of speech-like audio at 16 kHz with a silent gap long enough to split laughter events
    (1 s windows, 0.5 s merge gap) and to hold one silent 3 s emotion window."""
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, speech_like(CLIP_S, seed=1, gap=(2.0, 5.5)), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def stereo48(tmp_path_factory) -> Path:
    """~7 s of 48 kHz stereo s16."""
    path = tmp_path_factory.mktemp("stereo") / "stereo48.wav"
    sf.write(path, speech_like(7.1, 48000, 2, seed=2), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def json_run(bundles, clip, home):
    """The parsed ``-f json`` run over ``clip`` per bundle kind (laughter: low threshold)."""
    runs: dict = {}

    def get(kind: str) -> dict:
        if kind not in runs:
            result = ok(detect(str(clip), "-f", "json", *kind_args(kind, bundles), home=home))
            runs[kind] = json.loads(result.stdout)
        return runs[kind]
    return get


def kind_args(kind: str, bundles: dict) -> list[str]:
    args = ["-m", str(bundles[kind])]
    return args + ["--threshold", LOW_THRESHOLD] if kind == "laughter" else args


# ------------------------------------------------------------------------------------------
# 1. Every format, end to end
# ------------------------------------------------------------------------------------------

KINDS = ["dimensional", "categorical", "laughter"]


@pytest.mark.parametrize("kind", KINDS)
def test_json_is_the_detector_result_on_the_frontends_windows(kind, bundles, clip, json_run):
    doc = json_run(kind)
    assert doc["schema_version"] == 1
    assert doc["model"]["labels"] == LABELS[kind]
    assert doc["failures"] == []
    [f] = doc["files"]
    assert f["source"] == str(clip)
    assert (f["rate_hz"], f["channels"], f["samples"]) == (16000, 1, CLIP_S * 16000)
    assert f["duration_s"] == CLIP_S
    assert any(w["silent"] for w in f["windows"]) and not all(w["silent"] for w in f["windows"])
    window_s, hop_s = doc["model"]["window_s"], doc["model"]["hop_s"]
    assert bounds(f["windows"]) == frontend_bounds(f["samples"], window_s, hop_s)

    options = {"threshold": float(LOW_THRESHOLD)} if kind == "laughter" else {}
    expected = Detector.load(bundles[kind], threads=1, **options).detect_file(clip)
    assert (expected.window_s, expected.hop_s) == (window_s, hop_s)
    assert len(f["windows"]) == len(expected.windows)
    for got, want in zip(f["windows"], expected.windows):
        assert (got["index"], got["start_sample"], got["end_sample"], got["silent"]) == \
            (want.index, want.start, want.stop, want.silent)
        assert got["start_s"] == want.start / 16000 and got["end_s"] == want.stop / 16000
        assert got["level_dbfs"] == pytest.approx(want.level_dbfs, abs=API_ATOL)
        assert got["top_label"] == want.top_label
        if want.scores is None:
            assert got["scores"] is None
        else:
            assert list(got["scores"]) == LABELS[kind]
            for label, value in want.scores.items():
                assert got["scores"][label] == pytest.approx(value, abs=API_ATOL)
    assert [(e["start_sample"], e["end_sample"]) for e in f["events"]] == \
        [(e.start, e.stop) for e in expected.events]
    for got, want in zip(f["events"], expected.events):
        assert got["peak"] == pytest.approx(want.peak, abs=API_ATOL)
    s = f["summary"]
    assert (s["windows"], s["voiced_windows"], s["events"]) == \
        (expected.summary.windows, expected.summary.voiced_windows, expected.summary.events)
    for label, value in (expected.summary.scores or {}).items():
        assert s["scores"][label] == pytest.approx(value, abs=API_ATOL)
    if kind == "laughter":
        assert doc["model"]["threshold"] == float(LOW_THRESHOLD)
        assert doc["model"]["operating_point"] is None
        # the silent gap splits the voiced parts into two events, each inside the file
        assert len(f["events"]) == 2
        for e in f["events"]:
            assert 0 <= e["start_sample"] < e["end_sample"] <= f["samples"]
    else:
        assert f["events"] == [] and doc["model"]["threshold"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_carries_the_same_records_one_per_line(kind, bundles, clip, json_run, home):
    out = ok(detect(str(clip), "-f", "jsonl", *kind_args(kind, bundles), home=home)).stdout
    lines = records(out)
    doc = json_run(kind)
    [f] = doc["files"]
    assert lines[0]["type"] == "run" and lines[0]["schema_version"] == 1
    assert lines[0]["model"] == doc["model"]
    assert [r["type"] for r in lines[1:]].count("file") == 1 and lines[-1]["type"] == "file"
    windows = [r for r in lines if r["type"] == "window"]
    events = [r for r in lines if r["type"] == "event"]
    assert all(r["source"] == str(clip) for r in windows + events)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("type", "source")}  # noqa: E731
    assert [strip(r) for r in windows] == f["windows"]
    assert [strip(r) for r in events] == f["events"]
    file_record = strip(lines[-1]) | {"source": lines[-1]["source"]}
    assert file_record == {k: v for k, v in f.items() if k not in ("windows", "events")}


@pytest.mark.parametrize("kind", KINDS)
def test_csv_has_one_row_per_window(kind, bundles, clip, json_run, home):
    out = ok(detect(str(clip), "-f", "csv", *kind_args(kind, bundles), home=home)).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    [f] = json_run(kind)["files"]
    assert len(rows) == len(f["windows"])
    for row, w in zip(rows, f["windows"]):
        assert row["source"] == str(clip)
        assert (int(row["index"]), int(row["start_sample"]), int(row["end_sample"])) == \
            (w["index"], w["start_sample"], w["end_sample"])
        assert seconds(row["start_s"]) == exact_s(w["start_sample"])
        assert seconds(row["end_s"]) == exact_s(w["end_sample"])
        assert row["silent"] == ("true" if w["silent"] else "false")
        for label in LABELS[kind]:
            if w["silent"]:
                assert row[label] == ""
            else:
                assert float(row[label]) == w["scores"][label]  # repr: the same double
        assert row["top_label"] == (w["top_label"] or "")


@pytest.mark.parametrize("kind", KINDS)
def test_audacity_labels_are_events_or_voiced_windows(kind, bundles, clip, json_run, home):
    out = ok(detect(str(clip), "-f", "audacity", *kind_args(kind, bundles), home=home)).stdout
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines and all(len(parts) == 3 for parts in lines), out
    [f] = json_run(kind)["files"]
    if kind == "laughter":
        expected = [(e["start_sample"], e["end_sample"]) for e in f["events"]]
        assert len(expected) == 2
        assert all(text.startswith("laughter ") for _, _, text in lines)
    else:
        expected = [(w["start_sample"], w["end_sample"]) for w in f["windows"] if not w["silent"]]
    assert [(seconds(a), seconds(b)) for a, b, _ in lines] == \
        [(exact_s(a), exact_s(b)) for a, b in expected]
    if kind == "categorical":
        voiced = [w for w in f["windows"] if not w["silent"]]
        assert [text.split()[0] for _, _, text in lines] == [w["top_label"] for w in voiced]


@pytest.mark.parametrize("kind", KINDS)
def test_textgrid_spans_the_file(kind, bundles, clip, json_run, home):
    out = ok(detect(str(clip), "-f", "textgrid", *kind_args(kind, bundles), home=home)).stdout
    [f] = json_run(kind)["files"]
    assert out.startswith('File type = "ooTextFile"\nObject class = "TextGrid"\n')
    top = re.search(r"^xmax = (\S+)$", out, re.M)
    assert top and seconds(top.group(1)) == exact_s(f["samples"]) == Decimal(CLIP_S)
    # every tier spans the whole file too
    tier_xmax = re.findall(r"^        xmax = (\S+)$", out, re.M)
    assert tier_xmax and all(seconds(x) == Decimal(CLIP_S) for x in tier_xmax)
    if kind == "laughter":
        texts = re.findall(r'^            text = "(.*)"$', out, re.M)
        assert texts.count("laughter") == len(f["events"]) == 2
    else:
        for label in (LABELS[kind] if kind == "dimensional" else ["emotion"]):
            assert f'name = "{label}"' in out


@pytest.mark.parametrize("kind", KINDS)
def test_table_names_the_labels_and_every_row(kind, bundles, clip, json_run, home):
    out = ok(detect(str(clip), *kind_args(kind, bundles), home=home)).stdout
    [f] = json_run(kind)["files"]
    assert str(clip.name) in out
    for label in LABELS[kind] if kind != "laughter" else ["laughter"]:
        assert label in out
    rows = f["events"] if kind == "laughter" else f["windows"]
    for r in rows:
        if kind == "laughter":
            assert re.search(rf"│\s+{re.escape(s_text(r['start_sample']))}\s+│"
                             rf"\s+{re.escape(s_text(r['end_sample']))}\s+│", out), out
        else:
            span = f"{s_text(r['start_sample'])}–{s_text(r['end_sample'])}"
            assert span in out, (span, out)


# ------------------------------------------------------------------------------------------
# 2-3. Folders and -o
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Nested audio: wav, flac, ogg, one broken .wav and a text file (not audio by its name)."""
    root = tmp_path_factory.mktemp("folder") / "recordings"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "other").mkdir()
    sf.write(root / "one.wav", speech_like(2.5, seed=3), 16000)
    sf.write(root / "sub" / "two.flac", speech_like(3.5, 22050, seed=4), 22050)
    sf.write(root / "sub" / "deep" / "three.ogg", speech_like(4.0, 44100, 2, seed=5), 44100)
    (root / "other" / "broken.wav").write_bytes(bytes(range(256)) * 12)
    (root / "sub" / "notes.txt").write_text("not audio\n")
    return root


GOOD = ["one.wav", "sub/deep/three.ogg", "sub/two.flac"]  # sorted by path


def test_folder_run_finishes_the_good_files_and_lists_the_failure(folder, bundles, home):
    result = detect(str(folder), "-f", "json", "-m", str(bundles["dimensional"]), home=home)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert [f["source"] for f in doc["files"]] == [str(folder / p) for p in GOOD]
    for f in doc["files"]:
        assert f["windows"] and f["summary"]["scores"] is not None
    assert [x["source"] for x in doc["failures"]] == [str(folder / "other" / "broken.wav")]
    assert "broken.wav" in doc["failures"][0]["error"]
    lines = error_lines(result.stderr)
    assert result.stderr.strip().splitlines() == lines  # nothing but the two sentences
    assert len(lines) == 2, result.stderr
    assert "broken.wav" in lines[0] and lines[0].endswith(".")
    assert lines[1].startswith("edgeser: 1 of 4 inputs failed") and "broken.wav" in lines[1]
    assert "notes.txt" not in result.stderr + result.stdout


def test_output_file_keeps_the_good_results_when_an_input_fails(tmp_path, clip, stereo48,
                                                                bundles, home):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all " * 100)
    out = tmp_path / "results.jsonl"
    result = detect(str(clip), str(broken), str(stereo48), "-f", "jsonl", "-o", str(out),
                    "-m", str(bundles["laughter"]), home=home)
    assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 2 and "broken.wav" in lines[0] and "1 of 3 inputs failed" in lines[1]
    rows = records(out.read_text(encoding="utf-8"))
    assert [(r["type"], r["source"]) for r in rows if r["type"] in ("file", "failure")] == \
        [("file", str(clip)), ("failure", str(broken)), ("file", str(stereo48))]
    assert {r["source"] for r in rows if r["type"] == "window"} == {str(clip), str(stereo48)}
    assert list(tmp_path.glob(".results.jsonl.*")) == []


def test_output_file_replaces_the_target_and_stdout_stays_empty(tmp_path, clip, bundles, home):
    out = tmp_path / "results.json"
    out.write_text("old results\n")
    result = ok(detect(str(clip), "-f", "json", "-o", str(out), "-m", str(bundles["categorical"]),
                       home=home))
    assert result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["files"][0]["source"] == str(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_output_files_get_the_permissions_of_any_new_file(tmp_path, clip, folder, bundles, home):
    """-o writes through a temp file; the result must still be readable as a plain redirect's
    would be (0o666 minus the umask), not private to the owner like a mkstemp file."""
    umask = lambda: os.umask(0o022)  # noqa: E731
    out = tmp_path / "results.csv"
    ok(detect(str(clip), "-f", "csv", "-o", str(out), "-m", str(bundles["categorical"]),
              home=home, preexec=umask))
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
    labels = tmp_path / "labels"
    detect(str(folder), "-f", "audacity", "-o", str(labels), "-m", str(bundles["categorical"]),
           home=home, preexec=umask)
    assert oct((labels / "one.txt").stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("fmt", ["audacity", "textgrid"])
def test_label_formats_need_a_folder_for_several_inputs(fmt, folder, clip, bundles, home):
    result = detect(str(folder), "-f", fmt, "-m", str(bundles["laughter"]), home=home)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "-o" in result.stderr
    # two files named on the command line too
    result = detect(str(clip), str(clip), "-f", fmt, "-m", str(bundles["laughter"]), home=home)
    assert result.returncode == 2 and result.stdout == ""


@pytest.mark.parametrize("fmt,suffix", [("audacity", ".txt"), ("textgrid", ".TextGrid")])
def test_label_formats_write_one_file_per_input_mirroring_subfolders(fmt, suffix, tmp_path, folder,
                                                                     bundles, home):
    out = tmp_path / "labels"
    result = detect(str(folder), "-f", fmt, "-o", str(out), "-m", str(bundles["laughter"]),
                    "--threshold", LOW_THRESHOLD, home=home)
    assert result.returncode == 1 and result.stdout == ""  # broken.wav
    assert "broken.wav" in error_lines(result.stderr)[0]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(str(Path(p).with_suffix(suffix)) for p in GOOD)
    for rel in GOOD:
        text = (out / Path(rel).with_suffix(suffix)).read_text(encoding="utf-8")
        single = ok(detect(str(folder / rel), "-f", fmt, "-m", str(bundles["laughter"]),
                           "--threshold", LOW_THRESHOLD, home=home)).stdout
        assert text == single and text.strip()


# ------------------------------------------------------------------------------------------
# 4. Inputs that cannot be used: one sentence naming them, exit 1
# ------------------------------------------------------------------------------------------


def _empty(d: Path, wav: Path) -> Path:
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _garbage(d: Path, wav: Path) -> Path:
    (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    return d / "garbage.wav"


def _truncated_header(d: Path, wav: Path) -> Path:
    (d / "truncated.wav").write_bytes(wav.read_bytes()[:20])
    return d / "truncated.wav"


def _nan(d: Path, wav: Path) -> Path:
    x = speech_like(2.0)
    x[12345] = np.nan
    sf.write(d / "nan.wav", x, 16000, subtype="FLOAT")
    return d / "nan.wav"


def _short(d: Path, wav: Path) -> Path:
    sf.write(d / "short.wav", speech_like(300 / 16000), 16000)
    return d / "short.wav"


def _no_audio_folder(d: Path, wav: Path) -> Path:
    (d / "texts").mkdir()
    (d / "texts" / "readme.txt").write_text("no audio here\n")
    return d / "texts"


BAD_INPUTS = {
    "empty": _empty,
    "non-audio bytes": _garbage,
    "truncated header": _truncated_header,
    "zero channels": lambda d, wav: patched_wav(wav, d / "zero-channels.wav", 22, "<H", 0),
    "absurd rate": lambda d, wav: patched_wav(wav, d / "absurd-rate.wav", 24, "<I", 4_000_000_000),
    "absurd channels": lambda d, wav: patched_wav(wav, d / "absurd-channels.wav", 22, "<H", 65535),
    "NaN samples": _nan,
    "nonexistent": lambda d, wav: d / "no-such-file.wav",
    "folder without audio": _no_audio_folder,
    "shorter than a frame": _short,
}


# Inputs that cannot be used at all are named before the model is resolved or loaded.
CHECKED_BEFORE_THE_MODEL = ("nonexistent", "folder without audio")


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_input_is_one_sentence_naming_it(case, tmp_path, clip, bundles, home):
    path = BAD_INPUTS[case](tmp_path, clip)
    result = detect(str(path), "-f", "json", "-m", str(bundles["dimensional"]), home=home)
    line = one_sentence(result, path.name)
    if case in CHECKED_BEFORE_THE_MODEL:  # said before any model is loaded: no document
        assert result.stdout == ""
        return
    doc = json.loads(result.stdout)  # the results document is still complete
    assert doc["files"] == []
    assert [f["source"] for f in doc["failures"]] == [str(path)]
    assert doc["failures"][0]["error"] == line[len("edgeser: "):]


def test_an_unreadable_file_is_one_sentence_naming_it(tmp_path, clip, bundles, home):
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file anyway")
    locked = tmp_path / "locked.wav"
    shutil.copy(clip, locked)
    locked.chmod(0)
    try:
        result = detect(str(locked), "-f", "json", "-m", str(bundles["dimensional"]), home=home)
    finally:
        locked.chmod(0o644)
    one_sentence(result, "locked.wav")


def test_a_tampered_bundle_is_one_sentence_naming_it(tmp_path, clip, bundles, home):
    bundle = tmp_path / "tampered-bundle"
    shutil.copytree(bundles["dimensional"], bundle)
    model = bytearray((bundle / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(model))
    result = detect(str(clip), "-f", "json", "-m", str(bundle), home=home)
    one_sentence(result, "tampered-bundle", "model.onnx")
    assert result.stdout == ""


def test_a_stream_that_ends_mid_sample_keeps_its_complete_windows(tmp_path, bundles, home):
    x = speech_like(5.5, seed=6)
    pcm = np.round(x * 32767).astype("<i2").tobytes()
    sf.write(tmp_path / "same.wav", x, 16000, subtype="PCM_16")
    result = detect("-", "--stream", "--rate", "16000", "--channels", "1", "--sample-format",
                    "s16", "-f", "jsonl", "-m", str(bundles["dimensional"]), home=home,
                    stdin=pcm + b"\x01")
    line = one_sentence(result, "stdin", "ended mid-sample")
    lines = records(result.stdout)
    assert lines[-1] == {"type": "failure", "source": "stdin", "error": line[len("edgeser: "):]}
    streamed = windows_of(result.stdout)
    run = lines[0]["model"]
    full = [(s, e) for s, e in frontend_bounds(len(x), run["window_s"], run["hop_s"])
            if e - s == round(run["window_s"] * 16000)]
    assert len(full) == 3 and bounds(streamed) == full
    whole = windows_of(ok(detect(str(tmp_path / "same.wav"), "-f", "jsonl", "-m",
                                 str(bundles["dimensional"]), home=home)).stdout)
    assert max_score_difference(streamed, whole[:len(streamed)]) <= STREAM_ATOL


# ------------------------------------------------------------------------------------------
# 5. stdin and live streams
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["wav", "flac"])
def test_stdin_in_file_mode_equals_the_file_run(container, tmp_path, bundles, home):
    path = tmp_path / f"clip.{container}"
    sf.write(path, speech_like(4.4, 22050, 2, seed=7), 22050)
    args = ("-f", "json", "-m", str(bundles["laughter"]))
    piped = json.loads(ok(detect("-", *args, home=home, stdin=path.read_bytes())).stdout)
    direct = json.loads(ok(detect(str(path), *args, home=home)).stdout)
    [a], [b] = piped["files"], direct["files"]
    assert a.pop("source") == "stdin" and b.pop("source") == str(path)
    assert a == b and a["windows"]


@pytest.mark.parametrize("kind", ["dimensional", "laughter"])
def test_streaming_a_wav_on_stdin_equals_the_file_run(kind, stereo48, bundles, home):
    args = ("-f", "jsonl", "-m", str(bundles[kind]))
    streamed = ok(detect("-", "--stream", *args, home=home, stdin=stereo48.read_bytes())).stdout
    whole = ok(detect(str(stereo48), *args, home=home)).stdout
    a, b = windows_of(streamed), windows_of(whole)
    assert len(a) >= 6
    assert max_score_difference(a, b) <= STREAM_ATOL
    ea = [r for r in records(streamed) if r["type"] == "event"]
    eb = [r for r in records(whole) if r["type"] == "event"]
    assert [(e["start_sample"], e["end_sample"]) for e in ea] == \
        [(e["start_sample"], e["end_sample"]) for e in eb]
    end_a, end_b = records(streamed)[-1], records(whole)[-1]
    assert end_a["type"] == end_b["type"] == "file"
    assert (end_a["source"], end_a["rate_hz"], end_a["channels"], end_a["samples"]) == \
        ("stdin", 48000, 2, end_b["samples"])


def test_streaming_raw_pcm_on_stdin_equals_the_file_run(stereo48, bundles, home):
    pcm = sf.read(stereo48, dtype="int16")[0].astype("<i2").tobytes()
    args = ("-f", "jsonl", "-m", str(bundles["laughter"]))
    streamed = ok(detect("-", "--stream", "--rate", "48000", "--channels", "2", "--sample-format",
                         "s16", *args, home=home, stdin=pcm)).stdout
    whole = ok(detect(str(stereo48), *args, home=home)).stdout
    assert max_score_difference(windows_of(streamed), windows_of(whole)) <= STREAM_ATOL
    assert records(streamed)[-1]["samples"] == records(whole)[-1]["samples"]


def test_raw_pcm_options_without_stream_are_a_usage_error(clip, bundles, home):
    result = detect(str(clip), "--rate", "16000", "-m", str(bundles["dimensional"]), home=home)
    assert result.returncode == 2 and "--stream" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# 6. First use of the default model (generated hub cache, offline)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(HF_HOME holding a tiny audeering checkpoint under the default id, the checkpoint dir)."""
    pytest.importorskip("torch", reason="the export toolchain is not installed "
                        "(pip install 'edgeser[export]')")
    import checkpoints

    root = tmp_path_factory.mktemp("hub")
    ckpt = checkpoints.audeering_trained_like(root / "checkpoint-dir")
    checkpoints.hub_cache(root / "hf-home", DEFAULT_MODEL_ID, ckpt)
    return root / "hf-home", ckpt


def offline(hf_home: Path) -> dict:
    return {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}


def test_first_use_without_yes_names_the_export_command(tmp_path, hub, clip):
    home = tmp_path / "home"
    result = detect(str(clip), "-f", "json", home=home, env=offline(hub[0]))
    line = one_sentence(result, EXPORT_COMMAND, "--yes")
    assert result.stdout == ""
    assert not (home / "bundles" / DEFAULT_BUNDLE).exists(), line


def test_first_use_with_yes_exports_once_then_reuses_the_bundle(tmp_path, hub, clip):
    home = tmp_path / "home"
    first = ok(detect(str(clip), "-f", "json", "--yes", home=home, env=offline(hub[0])))
    doc = json.loads(first.stdout)  # stdout is the JSON document alone
    assert doc["model"]["model_id"] == DEFAULT_MODEL_ID
    assert doc["files"][0]["windows"] and doc["failures"] == []
    assert "exporting" in first.stderr
    bundle = home / "bundles" / DEFAULT_BUNDLE
    assert (bundle / "manifest.json").is_file()
    assert doc["model"]["bundle"] == str(bundle)

    again = ok(detect(str(clip), "-f", "json", home=home, env=offline(hub[0])))
    assert "exporting" not in again.stderr
    assert json.loads(again.stdout) == doc


def test_first_use_with_an_empty_hub_cache_fails_in_one_sentence(tmp_path, clip):
    home = tmp_path / "home"
    result = detect(str(clip), "-f", "json", "--yes", home=home,
                    env=offline(tmp_path / "empty-hf-home"))
    one_sentence(result, EXPORT_COMMAND, alone=False)
    assert result.stdout == ""
    bundles_dir = home / "bundles"
    assert not bundles_dir.exists() or list(bundles_dir.iterdir()) == []


def test_a_local_checkpoint_is_exported_on_first_use(tmp_path, hub, clip):
    home = tmp_path / "home"
    work = tmp_path / "work"
    shutil.copytree(hub[1], work / "checkpoint-dir")
    first = ok(detect(str(clip), "-f", "json", "--model", "./checkpoint-dir", "--yes", home=home,
                      cwd=work))
    doc = json.loads(first.stdout)
    bundle = home / "bundles" / "checkpoint-dir@local"
    assert (bundle / "manifest.json").is_file()
    assert doc["model"]["bundle"] == str(bundle) and doc["files"][0]["windows"]
    again = ok(detect(str(clip), "-f", "json", "--model", "./checkpoint-dir", home=home, cwd=work))
    assert "exporting" not in again.stderr and json.loads(again.stdout) == doc


# ------------------------------------------------------------------------------------------
# 7-8. --verbose, laughter options
# ------------------------------------------------------------------------------------------


def test_verbose_describes_the_session_on_stderr(clip, bundles, home):
    result = ok(detect(str(clip), "-f", "json", "--verbose", "--threads", "1",
                       "-m", str(bundles["laughter"]), home=home))
    json.loads(result.stdout)  # nothing but results on stdout
    session = next(line for line in result.stderr.splitlines() if line.startswith("session"))
    assert "threads=1" in session and "arena=" in session and "memory_pattern=" in session
    providers = next(line for line in result.stderr.splitlines() if line.startswith("providers"))
    assert "CPUExecutionProvider" in providers
    assert str(bundles["laughter"]) in result.stderr
    quiet = ok(detect(str(clip), "-f", "json", "--threads", "1", "-m", str(bundles["laughter"]),
                      home=home))
    assert "threads=" not in quiet.stderr


def test_a_device_this_machine_lacks_is_refused_or_falls_back_said(clip, bundles, home):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: nothing is missing or falls back")
    refused = detect(str(clip), "-f", "json", "--device", "cuda", "-m", str(bundles["laughter"]),
                     home=home)
    one_sentence(refused, "CUDAExecutionProvider", "--fallback")
    fell_back = ok(detect(str(clip), "-f", "json", "--device", "cuda", "--fallback",
                          "-m", str(bundles["laughter"]), home=home))
    assert "cuda was asked for" in fell_back.stderr and "cpu" in fell_back.stderr
    assert json.loads(fell_back.stdout)["files"][0]["windows"]


def test_operating_point_sets_the_threshold(clip, bundles, home):
    doc = json.loads(ok(detect(str(clip), "-f", "json", "--operating-point", "high-precision",
                               "-m", str(bundles["laughter"]), home=home)).stdout)
    assert doc["model"]["threshold"] == 0.9
    assert doc["model"]["operating_point"] == "high-precision"
    [f] = doc["files"]
    expected = Detector.load(bundles["laughter"], threads=1,
                             operating_point="high-precision").detect_file(clip)
    assert [(e["start_sample"], e["end_sample"]) for e in f["events"]] == \
        [(e.start, e.stop) for e in expected.events]
    assert all(e["peak"] >= 0.9 for e in f["events"])
    default = json.loads(ok(detect(str(clip), "-f", "json", "-m", str(bundles["laughter"]),
                                   home=home)).stdout)
    assert (default["model"]["threshold"], default["model"]["operating_point"]) == (0.5, "default")


def test_release_threshold_reaches_the_events_and_the_record(clip, bundles, home):
    doc = json.loads(ok(detect(str(clip), "-f", "json", "--threshold", "0.6", "--release", "0.3",
                               "-m", str(bundles["laughter"]), home=home)).stdout)
    assert (doc["model"]["threshold"], doc["model"]["release"]) == (0.6, 0.3)
    expected = Detector.load(bundles["laughter"], threads=1, threshold=0.6,
                             release=0.3).detect_file(clip)
    assert [(e["start_sample"], e["end_sample"]) for e in doc["files"][0]["events"]] == \
        [(e.start, e.stop) for e in expected.events]
    refused = detect(str(clip), "--threshold", "0.4", "--release", "0.5",
                     "-m", str(bundles["laughter"]), home=home)
    one_sentence(refused, "at most the threshold")


def test_unknown_operating_point_lists_the_available_ones(clip, bundles, home):
    result = detect(str(clip), "-f", "json", "--operating-point", "very-sure",
                    "-m", str(bundles["laughter"]), home=home)
    one_sentence(result, "very-sure", "default", "high-precision")
    assert result.stdout == ""


def test_threshold_on_an_emotion_bundle_is_refused(clip, bundles, home):
    result = detect(str(clip), "-f", "json", "--threshold", "0.3",
                    "-m", str(bundles["dimensional"]), home=home)
    one_sentence(result, str(bundles["dimensional"]))
    assert result.stdout == ""


# ------------------------------------------------------------------------------------------
# 9. Trials on real recordings
# ------------------------------------------------------------------------------------------


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES)


def _check_real_run(folder: Path, result: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    sources = [f["source"] for f in doc["files"]] + [x["source"] for x in doc["failures"]]
    assert sorted(sources) == [str(p) for p in _audio_files(folder)]
    if doc["failures"]:  # only a genuinely undecodable file may fail, named in its sentence
        assert result.returncode == 1
        for failure in doc["failures"]:
            assert Path(failure["source"]).name in failure["error"]
            assert Path(failure["source"]).name in result.stderr
    else:
        assert result.returncode == 0, result.stderr
    window_s, hop_s = doc["model"]["window_s"], doc["model"]["hop_s"]
    for f in doc["files"]:
        info = sf.info(f["source"])
        assert (f["rate_hz"], f["channels"]) == (info.samplerate, info.channels)
        assert abs(f["samples"] - info.frames * 16000 / info.samplerate) <= 1, f["source"]
        assert f["windows"], f["source"]
        assert bounds(f["windows"]) == frontend_bounds(f["samples"], window_s, hop_s), f["source"]
        for w in f["windows"]:
            assert 0 <= w["start_sample"] < w["end_sample"] <= f["samples"]
            assert math.isfinite(w["level_dbfs"])
            assert w["silent"] == (w["scores"] is None)
            for value in (w["scores"] or {}).values():
                assert math.isfinite(value), (f["source"], w)
        for e in f["events"]:
            assert 0 <= e["start_sample"] < e["end_sample"] <= f["samples"]
            assert math.isfinite(e["peak"])
        assert f["summary"]["windows"] == len(f["windows"])
        assert all(math.isfinite(v) for v in (f["summary"]["scores"] or {}).values())
    return doc


def test_real_recordings_in_varied_formats(test_data_dir, bundles, home):
    folder = test_data_dir / "formats"
    result = detect(str(folder), "-f", "json", "-m", str(bundles["dimensional"]), home=home)
    doc = _check_real_run(folder, result)
    assert len(doc["files"]) >= 10


def test_real_laughter_recordings(test_data_dir, bundles, home):
    folder = test_data_dir / "laughter"
    result = detect(str(folder), "-f", "json", "-m", str(bundles["laughter"]), home=home)
    doc = _check_real_run(folder, result)
    assert len(doc["files"]) >= 60
    assert doc["model"]["task"] == "laughter"


@pytest.mark.parametrize("name", [
    "pydub__test_data_test1-24bit.wav",  # 24-bit stereo 44.1 kHz
    "pydub__test_data_test1-8bit.wav",  # 8-bit unsigned stereo 32 kHz
    "nodewav__test_fixtures_M1F1-float32-AFsp.wav",  # 32-bit float stereo 8 kHz
])
def test_streaming_a_real_wav_equals_the_file_run(name, test_data_dir, bundles, home):
    path = test_data_dir / "formats" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the test data")
    args = ("-f", "jsonl", "-m", str(bundles["laughter"]))
    streamed = ok(detect(str(path), "--stream", *args, home=home)).stdout
    whole = ok(detect(str(path), *args, home=home)).stdout
    a, b = windows_of(streamed), windows_of(whole)
    assert a
    assert max_score_difference(a, b) <= STREAM_ATOL
    ea = [r for r in records(streamed) if r["type"] == "event"]
    eb = [r for r in records(whole) if r["type"] == "event"]
    assert [(e["start_sample"], e["end_sample"]) for e in ea] == \
        [(e["start_sample"], e["end_sample"]) for e in eb]
    assert records(streamed)[-1]["samples"] == records(whole)[-1]["samples"]
