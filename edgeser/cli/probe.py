"""``edgeser probe FILE...``: what edgeser reads from audio files (rate, channels, duration)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import typer


def probe(
    files: List[Path] = typer.Argument(..., help="Audio files to inspect.", show_default=False),
) -> None:
    """Show rate, channels, duration and encoding of audio files, validated as detect will.

    Files that cannot be read are named on stderr, one sentence each, and the exit code is 1.
    """
    from edgeser import audio
    from edgeser.errors import AudioError

    failures = 0
    for path in files:
        try:
            info = audio.probe(path)
        except AudioError as err:
            failures += 1
            print(f"edgeser: {err}", file=sys.stderr)
            continue
        typer.echo(
            f"{path}\t{info.rate_hz} Hz\t{info.channels} ch\t{info.duration_s:.3f} s\t"
            f"{info.format}/{info.subtype}"
        )
    if failures:
        print(f"edgeser: {failures} of {len(files)} files could not be read.", file=sys.stderr)
        raise typer.Exit(1)
