"""``edgeser bench``: latency, throughput, cold start and memory of one bundle on this device.

How the figures are taken, so they can be trusted:

- The clock (``time.perf_counter_ns``, monotonic) surrounds the inference call only: inputs are
  prepared before it, results are not touched inside it.
- Warm-up runs are discarded. Then runs repeat until a time budget (``duration_s`` per window
  length) or a run count is reached.
- Latency is reported as p50 / p90 / max; p99 only with at least 1000 runs, since fewer runs
  cannot estimate it.
- Cold start runs in a fresh Python process (``edgeser._coldstart``): imports, session creation and
  the first inference are timed separately, with resident memory after imports and after session
  creation and the process's peak.
- The frontend's share is measured on a generated 44.1 kHz stereo WAV: decoding, mixdown,
  resampling and per-window normalisation per second of audio, against inference per second of
  audio at the bundle's hop.
- Every report names the device profile and the ONNX Runtime providers that actually ran, and
  says when a fallback replaced the device asked for.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeser import __version__, audio, bundle as bundles, frontend, targets
from edgeser.devices import Device
from edgeser.errors import EdgeserError
from edgeser.inference import Session, SessionSettings
from edgeser.memory import peak_rss_mb
from edgeser.contract import SAMPLE_RATE_HZ

__all__ = ["BATCHES", "BenchReport", "ColdStart", "LatencyStats", "WindowBench", "latency_stats",
           "run_bench"]

# Batch sizes tried for throughput; the best windows-per-second wins.
BATCHES = (1, 2, 4, 8)
# p99 needs this many runs to mean anything (10 samples above it).
P99_MIN_RUNS = 1000
WARMUP_RUNS = 3
# Audio for the frontend measurement: a common recording format, long enough to time reliably.
FRONTEND_RATE_HZ = 44100
FRONTEND_AUDIO_S = 30.0


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one configuration, in milliseconds."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float | None
    max_ms: float
    mean_ms: float


def latency_stats(durations_ns: list[int]) -> LatencyStats:
    """Percentiles of measured durations (nearest-rank on the sorted samples)."""
    if not durations_ns:
        raise ValueError("no measurements")
    ms = np.sort(np.asarray(durations_ns, dtype=np.float64) / 1e6)
    n = len(ms)

    def rank(q: float) -> float:
        return float(ms[min(n - 1, max(0, math.ceil(q * n) - 1))])

    return LatencyStats(n, rank(0.50), rank(0.90), rank(0.99) if n >= P99_MIN_RUNS else None,
                        float(ms[-1]), float(ms.mean()))


@dataclass(frozen=True)
class WindowBench:
    """Figures for one window length."""

    window_s: float
    latency: LatencyStats  # batch 1
    real_time_factor: float  # p50 latency / window length (below 1: faster than real time)
    windows_per_s: float  # batch 1
    best_batch: int
    best_windows_per_s: float
    windows_per_s_by_batch: dict[int, float] = field(hash=False)
    frontend_ms_per_audio_s: float = 0.0
    frontend_share: float = 0.0  # of frontend + inference per second of audio, at the bundle's hop


@dataclass(frozen=True)
class ColdStart:
    """A fresh process: seconds per step, resident memory in MB."""

    imports_s: float
    session_s: float
    first_inference_s: float
    rss_after_imports_mb: float
    rss_after_session_mb: float
    peak_rss_mb: float

    @property
    def total_s(self) -> float:
        return self.imports_s + self.session_s + self.first_inference_s


@dataclass(frozen=True)
class BenchReport:
    bundle: str
    model_id: str
    precision: str
    model_bytes: int
    device: str  # the profile label, with the fallback marker when there is one
    requested: str  # the device asked for ("auto" when none was)
    providers: tuple[str, ...]  # what ONNX Runtime used
    fallback: str | None
    threads: int
    windows: tuple[WindowBench, ...]
    cold_start: ColdStart | None
    peak_rss_mb: float
    machine: dict = field(hash=False)
    # Set when the bundle's INT8 recipe was chosen for another CPU class (edgeser.targets).
    tuning: str | None = None

    def to_json(self) -> str:
        return json.dumps({"schema_version": 1, **asdict(self)}, indent=2)


def machine_info(device: Device) -> dict:
    import onnxruntime as ort

    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "edgeser": __version__,
        "frontend": frontend.BACKEND,
    }
    if device.jetson is not None:
        info["jetson"] = device.jetson.describe()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _measure(run: Callable[[np.ndarray], object], x: np.ndarray, budget_s: float | None,
             runs: int | None) -> list[int]:
    for _ in range(WARMUP_RUNS):
        run(x)
    durations: list[int] = []
    deadline = time.perf_counter_ns() + int((budget_s or 0) * 1e9)
    while True:
        start = time.perf_counter_ns()
        run(x)
        durations.append(time.perf_counter_ns() - start)
        if runs is not None:
            if len(durations) >= runs:
                return durations
        elif time.perf_counter_ns() >= deadline and len(durations) >= 3:
            return durations


def _frontend_ms_per_audio_s(window: int, hop: int) -> float:
    """Decode + mixdown + resample + per-window normalisation, per second of 44.1 kHz stereo."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    frames = int(FRONTEND_AUDIO_S * FRONTEND_RATE_HZ)
    with tempfile.TemporaryDirectory(prefix="edgeser-bench-") as tmp:
        path = Path(tmp) / "audio.wav"
        sf.write(path, 0.1 * rng.standard_normal((frames, 2)), FRONTEND_RATE_HZ, subtype="PCM_16")
        best = math.inf
        for _ in range(3):  # the best of three: the frontend is cheap and noise dominates
            start = time.perf_counter_ns()
            resampler = frontend.Resampler(FRONTEND_RATE_HZ)
            pieces = [resampler.process(audio.mix_to_mono(b)) for b in audio.iter_blocks(path)]
            x16 = np.concatenate(pieces + [resampler.flush()])
            for w in frontend.windows(len(x16), window / SAMPLE_RATE_HZ, hop / SAMPLE_RATE_HZ):
                frontend.normalize(x16[w.start:w.stop])
            best = min(best, time.perf_counter_ns() - start)
    return best / 1e6 / FRONTEND_AUDIO_S


def bench_window(session: Session, window_s: float, hop_s: float, *, duration_s: float | None,
                 runs: int | None, batches: tuple[int, ...] = BATCHES) -> WindowBench:
    window = frontend.seconds_to_samples(window_s, "window")
    rng = np.random.default_rng(1)
    x1 = rng.standard_normal((1, window)).astype(np.float32)
    latency = latency_stats(_measure(session.run, x1, duration_s, runs))
    by_batch = {1: 1000.0 / latency.p50_ms}
    for batch in batches:
        if batch == 1:
            continue
        xb = rng.standard_normal((batch, window)).astype(np.float32)
        budget = None if duration_s is None else duration_s / 4
        stats = latency_stats(_measure(session.run, xb, budget, None if runs is None
                                       else max(3, runs // 4)))
        by_batch[batch] = batch * 1000.0 / stats.p50_ms
    best = max(by_batch, key=by_batch.get)
    hop = frontend.seconds_to_samples(hop_s, "hop")
    front = _frontend_ms_per_audio_s(window, hop)
    inference_per_audio_s = latency.p50_ms * SAMPLE_RATE_HZ / hop  # one window per hop of new audio
    return WindowBench(
        window_s=window / SAMPLE_RATE_HZ, latency=latency,
        real_time_factor=latency.p50_ms / (1000 * window / SAMPLE_RATE_HZ),
        windows_per_s=by_batch[1], best_batch=best, best_windows_per_s=by_batch[best],
        windows_per_s_by_batch=by_batch, frontend_ms_per_audio_s=front,
        frontend_share=front / (front + inference_per_audio_s),
    )


def cold_start(bundle_dir: Path, device: Device, threads: int, window_s: float,
               graph: Path | None = None) -> ColdStart:
    """Run ``edgeser._coldstart`` in a fresh interpreter and read its figures."""
    request = json.dumps({"bundle": str(bundle_dir), "graph": graph and str(graph),
                          "providers": list(device.providers),
                          "provider_options": list(device.provider_options), "threads": threads,
                          "window_s": window_s})
    done = subprocess.run([sys.executable, "-m", "edgeser._coldstart", request],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeserError(f"the cold-start process failed ({tail}).")
    return ColdStart(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_bench(bundle_dir: str | os.PathLike, device: Device, *, threads: int,
              windows_s: tuple[float, ...] | None = None, duration_s: float | None = 10.0,
              runs: int | None = None, batches: tuple[int, ...] = BATCHES,
              with_cold_start: bool = True,
              progress: Callable[[str], None] = lambda message: None,
              fallback: bool = False) -> BenchReport:
    """Benchmark a bundle on ``device``: per window length (default: the bundle's), then the
    cold start in a fresh process. tensorrt/jetson run the bundle's engine for this GPU
    (:func:`edgeser.engines.prepare`; ``fallback`` runs the ONNX graph where there is none)."""
    from edgeser import engines

    model = bundles.load(bundle_dir)
    longest = max(frontend.seconds_to_samples(w, "window") for w in windows_s or (model.window_s,))
    choice = engines.prepare(model, device, fallback=fallback, batch=max(batches),
                             samples=longest)
    device = choice.device
    settings = SessionSettings(threads=threads, providers=device.providers,
                               provider_options=device.provider_options)
    progress("creating the session")
    session = Session(model, settings, graph=choice.graph)
    results = []
    for window_s in windows_s or (model.window_s,):
        progress(f"window {window_s:g} s")
        results.append(bench_window(session, window_s, model.hop_s, duration_s=duration_s,
                                    runs=runs, batches=batches))
    cold = None
    if with_cold_start:
        progress("cold start in a fresh process")
        cold = cold_start(model.path, device, threads, (windows_s or (model.window_s,))[0],
                          graph=choice.graph)
    return BenchReport(
        bundle=str(model.path), model_id=model.model_id, precision=choice.precision,
        model_bytes=choice.bytes, device=device.label(), requested=device.requested,
        providers=tuple(session.providers), fallback=device.fallback, threads=threads,
        windows=tuple(results), cold_start=cold, peak_rss_mb=peak_rss_mb(),
        machine=machine_info(device),
        tuning=targets.tuning_note(model.manifest.quantization.selection),
    )
