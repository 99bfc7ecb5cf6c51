"""``edgeser bench``: latency, throughput, cold start and memory of a bundle on this device."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgeser.cli import _options as opt


def bench(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundle directory, or a "
                                        "checkpoint directory or hub id already exported "
                                        "[default: the default model's bundle]."),
    device: opt.Device = None,
    fallback: bool = typer.Option(False, "--fallback", help="When the device's provider is "
                                  "missing, run on what is there; every line says so."),
    window: List[float] = typer.Option([], "--window", help="Window length in seconds "
                                       "(repeatable) [default: the bundle's]."),
    duration: float = typer.Option(10.0, "--duration", min=0.1, help="Seconds of batch-1 runs "
                                   "per window length (other batches get a quarter)."),
    runs: Optional[int] = typer.Option(None, "--runs", min=3, help="Run count instead of a "
                                       "time budget [default: use --duration]."),
    threads: opt.Threads = None,
    batches: str = typer.Option("1,2,4,8", "--batches", help="Batch sizes tried for throughput."),
    cold: bool = typer.Option(True, "--cold-start/--no-cold-start", help="Time a fresh process "
                              "too."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON "
                                            "(atomically) [default: none]."),
) -> None:
    """Measure latency (p50/p90/max, p99 from 1000 runs), real-time factor, windows per second
    at batch 1 and at the best batch, cold start, memory and the frontend's share.

    The report names the device profile and the ONNX Runtime providers that ran.
    """
    from edgeser import bench as benchmark
    from edgeser import devices
    from edgeser.atomic import atomic_text
    from edgeser.cli._bench_report import print_report
    from edgeser.cli._model import existing
    from edgeser.errors import EdgeserError
    from edgeser.inference import default_threads

    try:
        sizes = tuple(int(b) for b in batches.split(","))
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{batches!r} is not a comma-separated list of positive "
                                 "integers.", param_hint="--batches") from None
    try:
        bundle_dir = existing(model, "edgeser bench --model")
        resolved = devices.resolve_device(device, fallback=fallback)
        report = benchmark.run_bench(
            bundle_dir, resolved, threads=threads or default_threads(),
            windows_s=tuple(window) or None, duration_s=None if runs else duration, runs=runs,
            batches=sizes, with_cold_start=cold,
            progress=lambda message: print(f"edgeser: bench: {message}", file=sys.stderr),
            fallback=fallback,
        )
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    print_report(report)
    if json_out is not None:
        with atomic_text(json_out) as out:
            out.write(report.to_json() + "\n")
