"""Options that `detect` and `serve` share: how audio is windowed, how laughter events are
decided and where inference runs. One definition each, so both commands spell, validate and
document them alike."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Window = Annotated[Optional[float], typer.Option(
    "--window", help="Window in seconds [default: the bundle's].")]
Hop = Annotated[Optional[float], typer.Option(
    "--hop", help="Hop in seconds [default: the bundle's].")]
Threshold = Annotated[Optional[float], typer.Option(
    "--threshold", help="Laughter probability threshold [default: the operating point's].")]
OperatingPoint = Annotated[Optional[str], typer.Option(
    "--operating-point", help="Laughter operating point named in the bundle [default: default].")]
MinDuration = Annotated[float, typer.Option(
    "--min-duration", help="Shortest laughter event in seconds.")]
MergeGap = Annotated[float, typer.Option(
    "--merge-gap", help="Laughter events closer than this many seconds are merged.")]
Release = Annotated[Optional[float], typer.Option(
    "--release", help="Laughter hysteresis: an event that started goes on through windows at or "
    "above this probability [default: the threshold, no hysteresis].")]
Silence = Annotated[Optional[float], typer.Option(
    "--silence-dbfs", help="Windows quieter than this are reported as silent [default: the "
    "bundle's].")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, help="Inference threads [default: all cores].")]
Device = Annotated[Optional[str], typer.Option(
    "--device", help="cpu, cuda, tensorrt or jetson [default: the best this machine has].")]
Fallback = Annotated[bool, typer.Option(
    "--fallback", help="When the device's provider is missing, run on what is there (and say "
    "so).")]
Vad = Annotated[Optional[bool], typer.Option(
    "--vad/--no-vad", help="Gate windows by voice activity (Silero VAD): windows with less "
    "speech than --min-speech are reported as non-speech, not scored; needs pip install "
    "\"edgeser[vad]\" [default: the bundle's].", show_default=False)]
MinSpeech = Annotated[Optional[float], typer.Option(
    "--min-speech", min=0.0, max=1.0, help="Smallest speech fraction of a window that is "
    "scored; implies --vad [default: the bundle's, else 0.25 (laughter 0: gates nothing)].")]
Denoise = Annotated[Optional[bool], typer.Option(
    "--denoise/--no-denoise", help="Run the noise suppressor on the 16 kHz audio before "
    "windowing [default: the bundle's].", show_default=False)]
