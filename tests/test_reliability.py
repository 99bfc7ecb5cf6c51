"""Crash safety, long runs and concurrency: an export or a detect killed with SIGKILL at any point
leaves no half-written bundle or output file; a long live stream keeps memory and file
descriptors flat; threads sharing one detector get the serial results."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")
pytest.importorskip("torch", reason="the export toolchain is not installed "
                    "(pip install 'edgeser[export]')")

import checkpoints  # noqa: E402
from edgeser import Detector, bundle as bundles  # noqa: E402
from edgeser.errors import BundleError  # noqa: E402
from edgeser.verification import verify

REPO = Path(__file__).resolve().parent.parent

# A hang, not a timing: each killed process must at least have started its step by then.
WAIT_S = 120


def wait_for(condition, process: subprocess.Popen) -> bool:
    """Poll until ``condition()``; False when the process ended first."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.005)
    raise AssertionError("the step never started")


def staged(dest: Path, name: str | None = None) -> bool:
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        if name is None or (tmp / name).exists():
            return True
    return False


def assert_absent_or_complete(dest: Path) -> None:
    if not dest.exists():
        with pytest.raises(BundleError):
            bundles.load(dest)
        return
    report = verify(dest)  # published: every file there and hashed right
    assert report.ok, report.problems


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return checkpoints.audeering(tmp_path_factory.mktemp("ckpt") / "audeering")


# The points at which the export is killed: as soon as it starts, once staging exists, once the
# graph is in the stage, once the reference windows are, and right after it could have published.
KILL_POINTS = ["start", "stage", "model.onnx", "reference.npz", "published"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_export_killed_leaves_no_half_written_bundle(checkpoint, tmp_path, point):
    dest = tmp_path / "bundle"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeser", "export", "--model", str(checkpoint), "--out", str(dest),
         "--quantize", "none", "--eval-windows", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if point == "stage":
            wait_for(lambda: staged(dest), process)
        elif point in ("model.onnx", "reference.npz"):
            wait_for(lambda: staged(dest, point) or dest.exists(), process)
        elif point == "published":
            wait_for(dest.exists, process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=WAIT_S)
    assert_absent_or_complete(dest)
    # A fresh export to the same place succeeds whatever the killed one left beside it.
    again = subprocess.run(
        [sys.executable, "-m", "edgeser", "export", "--model", str(checkpoint), "--out", str(dest),
         "--quantize", "none", "--eval-windows", "4", "--force"],
        capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert verify(dest).ok


def test_detect_killed_midway_leaves_the_old_output(tiny_bundles, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for k in range(40):
        sf.write(folder / f"clip{k:02d}.wav", speech_like(6.0, 16000, seed=k), 16000)
    out = tmp_path / "results.jsonl"
    out.write_text("previous results\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeser", "detect", str(folder), "-f", "jsonl", "-o", str(out),
         "-m", str(tiny_bundles("dimensional")), "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The results are being written to a temp file beside the target: kill then.
        assert wait_for(lambda: any(p.name.startswith(".results.jsonl.")
                                    for p in tmp_path.iterdir()), process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=WAIT_S)
    assert out.read_text() == "previous results\n"


def test_a_long_live_stream_keeps_memory_and_descriptors_flat(tiny_bundles):
    """Half an hour of generated audio through the live path (pcmstream + one stream); after a
    5-minute warm-up, RSS stays within 4 MB and the descriptor count does not change. (The 2-hour
    run is benchmarks/soak.py; its figures are in benchmarks/RELIABILITY.md.)"""
    # A fresh process: RSS then measures the stream, not what other tests left in this one.
    code = (f"import json, sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import soak; "
            f"print(json.dumps(soak.soak({str(tiny_bundles('laughter'))!r}, hours=0.5, "
            "sample_every_s=30, warmup_s=300)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["audio_s"] == 1800 and r["windows"] > 8000 and r["voiced_windows"] > 0
    rss, fds = r["rss_after_warmup_mb"], r["fds_after_warmup"]
    assert rss["max"] - rss["min"] < 4.0, r["rss_trace_mb"]
    assert fds["min"] == fds["max"] > 0


def test_threads_detecting_files_on_one_detector_get_the_serial_results(tiny_bundles, tmp_path):
    detector = Detector.load(tiny_bundles("laughter"), threads=1, threshold=0.3)
    paths = []
    for k, rate in enumerate((16000, 22050, 44100, 48000, 8000, 32000)):
        path = tmp_path / f"clip{k}.wav"
        sf.write(path, speech_like(5.0 + k, rate, seed=k), rate)
        paths.append(path)
    serial = [detector.detect_file(p) for p in paths]
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(3):
                results[k] = detector.detect_file(paths[k])
        except BaseException as err:  # surfaced below: a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_S)
    assert not errors
    for k, expected in enumerate(serial):
        assert results[k].windows == expected.windows
        assert results[k].events == expected.events
