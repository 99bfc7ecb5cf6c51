"""``edgeser denoise IN OUT [--rate 16000]``: suppress background noise in a speech recording."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from edgeser.contract import SAMPLE_RATE_HZ


def _check_rate(value: Optional[int]) -> Optional[int]:
    if value is not None and value != SAMPLE_RATE_HZ:
        raise typer.BadParameter(f"only {SAMPLE_RATE_HZ} (the models' rate) is supported")
    return value


def denoise(
    source: Path = typer.Argument(..., metavar="IN", show_default=False,
                                  help="Audio file to clean (WAV, FLAC, Ogg, MP3, ...)."),
    destination: Path = typer.Argument(..., metavar="OUT", show_default=False,
                                       help="Mono WAV file to write (replaced atomically)."),
    rate: Optional[int] = typer.Option(
        None, "--rate", callback=_check_rate, show_default=False,
        help=f"Resample to {SAMPLE_RATE_HZ} Hz before denoising [default: the input's rate].",
    ),
) -> None:
    """Suppress stationary background noise in a speech recording and write it as a mono WAV.

    Channels are averaged to mono; the output has the input's length and, unless --rate is
    given, its rate (8 to 192 kHz). A file that cannot be read or written is named on stderr in
    one sentence and the exit code is 1; nothing is left half written.
    """
    from edgeser.errors import EdgeserError
    from edgeser.frontend.denoise import denoise_file

    try:
        done = denoise_file(source, destination, rate_hz=rate)
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1) from None
    except OSError as err:
        reason = " ".join(str(err.strerror or err).split())
        print(f"edgeser: {destination}: cannot be written ({reason}).", file=sys.stderr)
        raise typer.Exit(1) from None
    typer.echo(f"{done.destination}\t{done.rate_hz} Hz\t{done.duration_s:.3f} s\t{done.subtype}")
