"""``edgeser export``: a fine-tuned checkpoint (hub id or directory) -> a verified bundle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

INSTALL_HINT = "the export toolchain is not installed: pip install 'edgeser[export]'"


def _operating_points(values: List[str]) -> tuple:
    points = []
    for value in values:
        name, sep, threshold = value.partition("=")
        try:
            number = float(threshold)
        except ValueError:
            number = float("nan")
        if not sep or not name or number != number:
            raise typer.BadParameter(f"{value!r} is not NAME=THRESHOLD, e.g. high-precision=0.95",
                                     param_hint="--operating-point")
        points.append((name, number))
    return tuple(points)


def export(
    model: str = typer.Option(..., "--model", "-m", help="Hub id (org/name) or checkpoint directory."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit) "
                                           "[default: main]; ignored for a directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Bundle directory [default: $EDGESER_HOME/bundles/<model>@<revision>]."),
    task: Optional[str] = typer.Option(None, help="emotion-dimensional, emotion-categorical, "
                                       "emotion-prototypes or laughter [default: from the checkpoint]."),
    layers: Optional[int] = typer.Option(None, min=1, help="Keep only the first N transformer "
                                        "layers [default: all]."),
    quantize: str = typer.Option("int8", help="int8, fp16 or none (FP32)."),
    recipe: Optional[str] = typer.Option(None, help="INT8 recipe preset [default: chosen by "
                                         "--target; static-minmax for "
                                         "--engine tensorrt; static-symmetric makes INT8 bundles for TensorRT engines "
                                         "built later on the device]."),
    target: str = typer.Option("auto", help="CPU the INT8 recipe is chosen for: auto (time "
                               "every candidate on this machine), x86-vnni, x86-avx2, "
                               "arm64-dotprod or arm64 (ranked from committed measurements); "
                               "the fastest candidate that holds the fidelity gate is kept."),
    calibration: Optional[Path] = typer.Option(None, help="Folder of real audio to calibrate "
                                               "INT8 activation ranges [default: generated speech]."),
    calibration_windows: int = typer.Option(64, min=1, help="Calibration windows."),
    allow_degraded: bool = typer.Option(False, "--allow-degraded",
                                        help="Write the bundle even if it fails the fidelity gate."),
    operating_point: List[str] = typer.Option([], "--operating-point",
                                              help="Laughter threshold NAME=VALUE "
                                              "(repeatable) [default: default=0.5]."),
    prototypes: Optional[Path] = typer.Option(None, help="CSV (path,label) of clips for "
                                      "class prototypes [default: none; required for embedding models]."),
    eval_audio: Optional[Path] = typer.Option(None, help="Folder of real speech for the "
                                      "parity check [default: generated speech]."),
    eval_windows: int = typer.Option(200, min=1, help="Windows used for the parity check."),
    window: Optional[float] = typer.Option(None, help="Window length in seconds [default: per task]."),
    hop: Optional[float] = typer.Option(None, help="Hop in seconds [default: per task]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle."),
    vad: bool = typer.Option(False, "--vad/--no-vad", help="Detection gates windows by voice "
                             "activity by default with this bundle (needs pip install "
                             "\"edgeser[vad]\" where it runs)."),
    min_speech: Optional[float] = typer.Option(None, "--min-speech", min=0.0, max=1.0,
                                               help="The bundle's smallest scored speech "
                                               "fraction [default: 0.25; laughter 0, which "
                                               "gates nothing]."),
    denoise: bool = typer.Option(False, "--denoise/--no-denoise", help="Detection runs the "
                                 "noise suppressor by default with this bundle."),
    engine: Optional[str] = typer.Option(None, help="tensorrt: also build this device's "
                                         "TensorRT engine into the bundle (fp16 from an FP32/FP16 "
                                         "bundle, int8 from a static symmetric one; needs "
                                         "onnxruntime-gpu with TensorRT) [default: none, ONNX only]."),
) -> None:
    """Export a fine-tuned wav2vec2 / HuBERT checkpoint to a verified ONNX bundle."""
    points = _operating_points(operating_point)
    if engine is not None and engine != "tensorrt":
        raise typer.BadParameter(f"{engine!r} is not an engine; the engine is tensorrt.",
                                 param_hint="--engine")
    try:
        from edgeser.export import ExportOptions, export_model
    except ImportError as err:
        print(f"edgeser: {INSTALL_HINT} ({err.name} is missing).", file=sys.stderr)
        raise typer.Exit(1)
    from edgeser.cli._progress import RichProgress
    from edgeser.cli._summary import export_summary

    options = ExportOptions(
        model=model, revision=revision, out=out, task=task, layers=layers, quantize=quantize,
        recipe=recipe, target=target, calibration=calibration, calibration_windows=calibration_windows,
        allow_degraded=allow_degraded,
        operating_points=points, prototypes=prototypes, eval_audio=eval_audio,
        eval_windows=eval_windows, window_s=window, hop_s=hop, overwrite=force, engine=engine,
        vad=vad, min_speech=min_speech, denoise=denoise,
    )
    with RichProgress() as progress:
        result = export_model(options, progress)
    export_summary(result)
