"""``edgeser detect``: emotion or laughter in files, folders and live streams."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgeser.cli import _options as opt

DEFAULT_FORMAT = "table"


def detect(
    inputs: List[str] = typer.Argument(..., metavar="INPUT...", show_default=False,
                                       help="Audio files, folders (searched recursively) or - "
                                       "for stdin."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundle directory, "
                                        "checkpoint directory or hub id [default: "
                                        "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim]."),
    fmt: str = typer.Option(DEFAULT_FORMAT, "--format", "-f", help="table, json, jsonl, csv, "
                            "audacity or textgrid; jsonl (its default) or parquet with --engine "
                            "ray."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results here "
                                          "(atomically); a folder for audacity or textgrid with "
                                          "several inputs [default: stdout]."),
    stream: bool = typer.Option(False, "--stream", help="Live: read the input as it arrives "
                                "and report each window as soon as it is complete."),
    rate: Optional[int] = typer.Option(None, "--rate", help="Raw PCM rate in Hz (--stream) "
                                 "[default: from the WAV header]."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Raw PCM channels "
                                      "(--stream) [default: from the WAV header]."),
    sample_format: Optional[str] = typer.Option(None, "--sample-format", help="Raw PCM "
                                                "samples: u8, s16, s24, s32, f32 or f64 "
                                                "(--stream) [default: from the WAV header]."),
    window: opt.Window = None,
    hop: opt.Hop = None,
    threshold: opt.Threshold = None,
    operating_point: opt.OperatingPoint = None,
    min_duration: opt.MinDuration = 0.0,
    release: opt.Release = None,
    merge_gap: opt.MergeGap = 0.5,
    silence: opt.Silence = None,
    vad: opt.Vad = None,
    min_speech: opt.MinSpeech = None,
    denoise: opt.Denoise = None,
    threads: opt.Threads = None,
    device: opt.Device = None,
    fallback: opt.Fallback = False,
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Windows per inference call "
                                   "(files)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (archive "
                               "scale: actors on a Ray cluster write partitions into -o FOLDER; "
                               "needs pip install \"edgeser[ray]\")."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join, or auto "
                                          "for the one running here (--engine ray) [default: "
                                          "start one on this machine]."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="Ray actors, each "
                                         "loading the bundle once (--engine ray) [default: the "
                                         "cluster's CPUs / threads per actor]."),
    threads_per_actor: Optional[int] = typer.Option(None, "--threads-per-actor", min=1,
                                                    help="Inference threads of each actor "
                                                    "(--engine ray) [default: 1]."),
    resume: bool = typer.Option(False, "--resume", help="Go on with the results in -o FOLDER, "
                                "skipping the files it holds (--engine ray)."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Also write every "
                                              "scored window's pooled embedding with its source "
                                              "file and start/end seconds: .npz, or .parquet "
                                              "(needs pyarrow) [default: none]."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the input's waveform, "
                                        "per-window scores and laughter events into this .png "
                                        "(needs pip install \"edgeser[plots]\") [default: none]."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Export the model on first use without "
                             "asking."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the model, windows and "
                                 "runtime settings on stderr."),
) -> None:
    """Detect emotion or laughter in audio files, folders and live streams.

    Results go to stdout (or -o), progress and errors to stderr. A folder run finishes the good
    files, then lists the failures and exits 1.
    """
    from edgeser.cli import _inputs, _model, _run
    from edgeser.cli._detect_extras import DetectExtras
    from edgeser.detector import DetectionOptions, Detector
    from edgeser.errors import EdgeserError
    from edgeser.formats import FORMATS, LABEL_FORMATS

    fmt = fmt.lower()
    from edgeser.distributed import cli as archive

    fmt = archive.check_usage(engine, fmt, inputs, stream=stream, output=output, threads=threads,
                              ray_options={"--address": address, "--actors": actors,
                                           "--threads-per-actor": threads_per_actor,
                                           "--resume": resume})
    if engine == "local" and fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}.",
                                 param_hint="--format")
    raw = {"--rate": rate, "--channels": channels, "--sample-format": sample_format}
    if not stream and any(v is not None for v in raw.values()):
        given = ", ".join(k for k, v in raw.items() if v is not None)
        raise typer.BadParameter(f"{given} describe a raw PCM stream; add --stream.")
    found = archive.expand(engine, inputs)
    if stream and (len(inputs) != 1 or (found and found[0].path is not None
                                        and found[0].problem is None
                                        and found[0].path.is_dir())):
        raise typer.BadParameter("--stream reads one input: - (stdin), a file or a FIFO.")
    if fmt in LABEL_FORMATS and len(found) > 1 and output is None:
        raise typer.BadParameter(f"{fmt} writes one label file per input; give -o FOLDER for "
                                 f"{len(found)} inputs.", param_hint="--output")

    # Inputs are checked before the model is resolved: a typo must not first cost a download
    # and a multi-minute export.
    if all(item.problem is not None for item in found):
        for item in found:
            print(f"edgeser: {item.problem}", file=sys.stderr)
        if len(found) > 1:
            print(f"edgeser: none of the {len(found)} inputs can be read.", file=sys.stderr)
        raise typer.Exit(1)

    extras = DetectExtras.check(embeddings, plot, found, stream=stream, engine=engine)
    options = DetectionOptions(
        threads=threads, window_s=window, hop_s=hop, batch_size=batch_size, silence_dbfs=silence,
        threshold=threshold, operating_point=operating_point, min_duration_s=min_duration,
        merge_gap_s=merge_gap, release=release, device=device, fallback=fallback,
        vad=vad, min_speech=min_speech, denoise=denoise, embeddings=extras.wants_embeddings,
    )
    may_prompt = sys.stdin.isatty() and _inputs.STDIN not in inputs
    try:
        bundle_dir = _model.resolve(model, yes=yes, may_prompt=may_prompt)
        detector = Detector.load(bundle_dir, options=options)
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    if detector.bundle.gate.degraded:
        print(f"edgeser: warning: model bundle {detector.bundle.path} failed the fidelity gate at "
              f"export and was written with --allow-degraded "
              f"({'; '.join(detector.bundle.gate.failures)}); its results may differ from the "
              "original model's.", file=sys.stderr)
    if detector.device.fallback:
        print(f"edgeser: warning: {detector.device.fallback}", file=sys.stderr)
    if verbose:
        _run.describe(detector)

    if stream:
        item = found[0]
        raw_format = (rate, channels, sample_format)
        failures = _run.stream(detector, item, raw_format, fmt, output)
    elif engine == "ray":
        failures = archive.run(detector, found, fmt, output, address=address, actors=actors,
                               threads_per_actor=threads_per_actor or 1, resume=resume,
                               verbose=verbose)
    else:
        failures = _run.files(detector, found, fmt, output, on_result=extras.add)
        failures += extras.finish()
    if failures:
        if len(found) > 1:
            print(f"edgeser: {len(failures)} of {len(found)} inputs failed: "
                  f"{', '.join(failures)}.", file=sys.stderr)
        raise typer.Exit(1)

