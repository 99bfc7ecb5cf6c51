"""The installed ``edgeser`` command: version, help, exit codes and one-sentence errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

import edgeser


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeser", *args], capture_output=True, text=True, timeout=120
    )


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"edgeser {edgeser.__version__}"


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "probe" in result.stdout


def test_usage_error_exits_2():
    assert run("probe").returncode == 2
    assert run("no-such-command").returncode == 2


def test_probe_reports_good_files_and_names_bad_ones(tmp_path):
    good = tmp_path / "tone.wav"
    sf.write(good, np.zeros((4410, 2), np.float32), 44100, subtype="PCM_16")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    missing = tmp_path / "missing.flac"

    result = run("probe", str(good), str(text), str(missing))

    assert result.returncode == 1
    assert f"{good}\t44100 Hz\t2 ch\t0.100 s\tWAV/PCM_16" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert any("notes.wav" in line for line in errors)
    assert any("missing.flac" in line for line in errors)
    assert errors[-1] == "edgeser: 2 of 3 files could not be read."


def test_probe_of_good_files_exits_0(tmp_path):
    good = tmp_path / "a.flac"
    sf.write(good, np.zeros(16000, np.float32), 16000)
    result = run("probe", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
