"""``edgeser bench``: the statistics it reports, the structure of its report, the device that ran
named on every line, and one-sentence failures for devices this machine does not have.
Timings are never asserted; only that they are measured and consistent with each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgeser import bench
from edgeser.bench import P99_MIN_RUNS, latency_stats
from edgeser.devices import resolve_device

DEVICE_ERROR = "CUDAExecutionProvider"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeser", "bench", *args], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))


def test_percentiles_are_nearest_rank():
    stats = latency_stats([i * 1_000_000 for i in range(1, 101)])  # 1..100 ms
    assert (stats.runs, stats.p50_ms, stats.p90_ms, stats.max_ms) == (100, 50.0, 90.0, 100.0)
    assert stats.mean_ms == pytest.approx(50.5)


def test_p99_only_from_a_thousand_runs():
    assert latency_stats([1_000_000] * (P99_MIN_RUNS - 1)).p99_ms is None
    stats = latency_stats(list(range(1, P99_MIN_RUNS + 1)))
    assert stats.p99_ms == pytest.approx(990 / 1e6)


def test_no_measurements_is_an_error():
    with pytest.raises(ValueError):
        latency_stats([])


def test_measure_honours_a_run_count_and_discards_warmup():
    calls = []
    durations = bench._measure(lambda x: calls.append(x), "x", budget_s=None, runs=5)
    assert len(durations) == 5 and len(calls) == 5 + bench.WARMUP_RUNS
    assert all(d >= 0 for d in durations)


def test_report_of_a_tiny_bundle(tiny_bundles):
    device = resolve_device("cpu")
    report = bench.run_bench(tiny_bundles("dimensional"), device, threads=1,
                             windows_s=(1.0, 3.0), duration_s=None, runs=5, batches=(1, 2))
    assert [w.window_s for w in report.windows] == [1.0, 3.0]
    for w in report.windows:
        assert w.latency.runs == 5 and w.latency.p99_ms is None
        assert 0 < w.latency.p50_ms <= w.latency.p90_ms <= w.latency.max_ms
        assert w.real_time_factor == pytest.approx(w.latency.p50_ms / (1000 * w.window_s))
        assert set(w.windows_per_s_by_batch) == {1, 2}
        assert w.best_windows_per_s == max(w.windows_per_s_by_batch.values())
        assert w.windows_per_s_by_batch[w.best_batch] == w.best_windows_per_s
        assert 0 < w.frontend_share < 1 and w.frontend_ms_per_audio_s > 0
    c = report.cold_start
    assert c.imports_s > 0 and c.session_s > 0 and c.first_inference_s > 0
    assert 0 < c.rss_after_imports_mb <= c.rss_after_session_mb <= c.peak_rss_mb
    assert report.providers == ("CPUExecutionProvider",) and report.fallback is None
    assert report.model_bytes == (tiny_bundles("dimensional") / "model.onnx").stat().st_size
    doc = json.loads(report.to_json())
    assert doc["schema_version"] == 1 and doc["machine"]["onnxruntime"]
    assert doc["windows"][0]["latency"]["p50_ms"] == report.windows[0].latency.p50_ms


def test_cli_prints_the_report_and_writes_json(tiny_bundles, tmp_path):
    out = tmp_path / "bench.json"
    done = cli("--model", str(tiny_bundles("categorical")), "--device", "cpu", "--runs", "3",
               "--batches", "1,2", "--window", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "CPUExecutionProvider" in done.stdout and "p50 ms" in done.stdout
    assert "cold start" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["providers"] == ["CPUExecutionProvider"] and doc["windows"][0]["window_s"] == 1.0


def test_a_missing_provider_is_one_sentence(tiny_bundles):
    done = cli("--model", str(tiny_bundles("categorical")), "--device", "cuda", "--runs", "3")
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this machine has CUDA: the missing-provider path cannot be reached")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeser: ") and DEVICE_ERROR in lines[0]
    assert "Traceback" not in done.stderr and "--fallback" in lines[0]


def test_fallback_is_said_on_every_report_line(tiny_bundles):
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this machine has CUDA: nothing falls back")
    done = cli("--model", str(tiny_bundles("categorical")), "--device", "cuda", "--fallback",
               "--runs", "3", "--batches", "1", "--window", "1")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    rows = [line for line in lines if line.startswith("│")]
    text = [line for line in lines if not line.startswith(("┏", "┃", "┡", "│", "└"))]
    assert rows and all("fallback" in row for row in rows)
    assert text and all("fallback" in line for line in text), text
