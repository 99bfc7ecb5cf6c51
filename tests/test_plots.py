"""Figures: ``edgeser detect --plot`` and the figures of an ``edgeser eval`` report are real,
non-blank PNGs of the promised size, referenced by the report; without matplotlib each command
says in one sentence what to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import speech_like

image = pytest.importorskip("matplotlib.image", reason="the plots extra is not installed "
                            "(pip install 'edgeser[plots]')")

RATE = 16_000
TIMEOUT_S = 300
HINT = 'pip install "edgeser[plots]"'


def cli(*args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(EDGESER_HOME=str(home), **(env or {}))
    return subprocess.run([sys.executable, "-m", "edgeser", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=full_env, stdin=subprocess.DEVNULL)


def assert_drawn(path: Path, size_px: tuple[int, int] | None = None) -> np.ndarray:
    """The PNG reads back, has the size, and is not blank: many pixels differ from the
    background and from each other."""
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    if size_px is not None:
        assert pixels.shape[:2] == (size_px[1], size_px[0])
    rgb = pixels[:, :, :3]
    background = rgb[0, 0]
    differs = np.abs(rgb - background).sum(axis=2) > 0.1
    assert differs.mean() > 0.01, f"{path} is nearly blank"
    assert rgb.std() > 0.05
    return pixels


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plot-clips")
    for k in range(6):
        sf.write(folder / f"c{k}.wav", speech_like(2.5, seed=k, gap=(1.0, 1.4)), RATE)
    rows = [f"c{k}.wav,{['angry', 'happy', 'neutral', 'sad'][k % 4]},s{k % 3},"
            f"{['male', 'female'][k % 2]}" for k in range(6)]
    (folder / "classes.csv").write_text("file,class,speaker,sex\n" + "\n".join(rows) + "\n")
    return folder


def test_detect_plot_draws_waveform_scores_and_events(tiny_bundles, clip_dir, tmp_path):
    out = tmp_path / "talk.png"
    result = cli("detect", str(clip_dir / "c0.wav"), "--model", str(tiny_bundles("laughter")),
                 "--threshold", "0.01", "--plot", str(out), "-f", "json", home=tmp_path / "h")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["events"]  # there are spans to draw
    pixels = assert_drawn(out, (1200, 600))
    # the laughter spans are shaded red-ish across the plot: many pixels lean to red
    rgb = pixels[:, :, :3]
    assert ((rgb[:, :, 0] > rgb[:, :, 2] + 0.05)).mean() > 0.05
    refused = cli("detect", str(clip_dir / "c0.wav"), str(clip_dir / "c1.wav"), "--model",
                  str(tiny_bundles("laughter")), "--plot", str(out), home=tmp_path / "h")
    assert refused.returncode == 2 and "--plot draws one input" in refused.stderr


def test_eval_report_figures_are_drawn_and_referenced(tiny_bundles, clip_dir, tmp_path):
    report = tmp_path / "report"
    result = cli("eval", "--model", str(tiny_bundles("categorical")), "--labels",
                 str(clip_dir / "classes.csv"), "--perturb", "noise:20,0", "--perturb", "phone",
                 "--embeddings-plot", "--no-stability", "--no-bias-check", "--report",
                 str(report), home=tmp_path / "h")
    assert result.returncode == 0, result.stderr
    doc = json.loads((report / "report.json").read_text())
    names = {Path(f["file"]).name for f in doc["figures"]}
    assert {"metric_vs_snr.png", "conditions.png", "sexes.png", "confusion_categorical_raw.png",
            "embeddings_categorical.png"} <= names
    text = (report / "report.md").read_text()
    for figure in doc["figures"]:
        assert f"]({figure['file']})" in text
        assert_drawn(report / figure["file"])
    assert sorted(p.name for p in (report / "plots").iterdir()) == sorted(names)


BLOCKER = "raise ImportError(\"No module named 'matplotlib'\")\n"


def test_without_matplotlib_each_command_says_what_to_install(tiny_bundles, clip_dir, tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(BLOCKER)
    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    runs = [
        cli("eval", "--model", str(tiny_bundles("categorical")), "--labels",
            str(clip_dir / "classes.csv"), "--report", str(tmp_path / "r"), home=tmp_path / "h",
            env=env),
        cli("detect", str(clip_dir / "c0.wav"), "--model", str(tiny_bundles("categorical")),
            "--plot", str(tmp_path / "x.png"), home=tmp_path / "h", env=env),
    ]
    for run in runs:
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and HINT in lines[0], run.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.png").exists()
    # without figures the report is still written
    plain = cli("eval", "--model", str(tiny_bundles("categorical")), "--labels",
                str(clip_dir / "classes.csv"), "--report", str(tmp_path / "r"), "--no-plots",
                "--no-stability", home=tmp_path / "h", env=env)
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "r" / "report.md").is_file()
    assert not (tmp_path / "r" / "plots").exists()
