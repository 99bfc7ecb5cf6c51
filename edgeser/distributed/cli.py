"""``edgeser detect --engine ray``: the command line's side of an archive run (usage checks,
progress and failures on stderr); the run itself is :func:`edgeser.distributed.write`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from edgeser.cli._inputs import STDIN, Input
from edgeser.detector import Detector
from edgeser.distributed import inputs as inputs_
from edgeser.distributed.writer import FORMATS
from edgeser.errors import EdgeserError

ENGINES = ("local", "ray")
# Seconds between progress lines: archive runs last hours and are often logged to a file.
PROGRESS_INTERVAL_S = 10.0


def check_usage(engine: str, fmt: str, inputs: list[str], *, stream: bool,
                output: Path | None, threads: int | None, ray_options: dict) -> str:
    """Usage errors (exit 2) of the engine options, before anything is loaded; returns the
    format to write (with --engine ray, jsonl in place of the local default, table)."""
    if engine not in ENGINES:
        raise typer.BadParameter(f"{engine!r} is not one of {', '.join(ENGINES)}.",
                                 param_hint="--engine")
    given = [name for name, value in ray_options.items() if value not in (None, False)]
    if engine == "local":
        if given:
            raise typer.BadParameter(f"{', '.join(given)} apply to --engine ray.")
        return fmt
    if stream or STDIN in inputs:
        raise typer.BadParameter("--engine ray scores files, folders and list files; it reads "
                                 "neither stdin nor a live --stream.")
    from edgeser.cli.detect import DEFAULT_FORMAT

    if fmt == DEFAULT_FORMAT:  # the local default, a table, is for a few files in a terminal
        fmt = FORMATS[0]
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--engine ray writes {' or '.join(FORMATS)}, not {fmt!r}.",
                                 param_hint="--format")
    if output is None:
        raise typer.BadParameter("--engine ray writes partitions into a folder; give -o FOLDER.",
                                 param_hint="--output")
    if threads is not None:
        raise typer.BadParameter("--engine ray runs --threads-per-actor threads in each actor; "
                                 "--threads is for the local engine.")
    from edgeser.distributed.run import require_ray

    # Before the model is resolved (an export must not come first), without importing Ray yet:
    # how it starts a local cluster is set before its import.
    _or_exit(require_ray)
    return fmt


def expand(engine: str, arguments: list[str]) -> list[Input]:
    """detect's inputs; with --engine ray, list files (.txt, .list, .lst) too."""
    if engine == "ray":
        return inputs_.expand(arguments)
    from edgeser.cli._inputs import expand as expand_local

    return expand_local(arguments)


def _or_exit(step):
    """``step()``, or its one-sentence error on stderr and exit 1."""
    try:
        return step()
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1) from None


class _Progress:
    """Failures as they come, a line of progress every PROGRESS_INTERVAL_S, on stderr."""

    def __init__(self) -> None:
        self.total, self.files, self.failed, self.audio_s = 0, 0, 0, 0.0
        self.started = self.last = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total

    def __call__(self, row: dict) -> None:
        self.files += 1
        self.audio_s += row["duration_s"] or 0.0
        if row["error"] is not None:
            self.failed += 1
            print(f"edgeser: {row['error']}", file=sys.stderr)
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            print(f"edgeser: {self.files} of {self.total} files, {self.audio_s / 3600:.2f} h of "
                  f"audio, {self.failed} failed ({now - self.started:.0f} s)", file=sys.stderr,
                  flush=True)


def run(detector: Detector, found: list[Input], fmt: str, output: Path, *, address: str | None,
        actors: int | None, threads_per_actor: int, resume: bool, verbose: bool) -> list[str]:
    """Score ``found`` into ``output``; exit 1 when any input of the folder failed (they are
    listed in its failures table, not on stderr: an archive can have thousands)."""
    from edgeser.distributed.run import connect, write

    _or_exit(lambda: connect(address, quiet=not verbose))
    progress = _Progress()
    summary = _or_exit(lambda: write(
        found, output, model=detector, fmt=fmt, options=detector.options, actors=actors,
        threads_per_actor=threads_per_actor, resume=resume, on_start=progress.start,
        on_file=progress))
    skipped = (f"; {summary.skipped} files were already in {output} (--resume)"
               if summary.skipped else "")
    print(f"edgeser: scored {summary.files} files ({summary.audio_s / 3600:.2f} h of audio) in "
          f"{summary.elapsed_s:.0f} s{skipped}; results in {output}.", file=sys.stderr)
    if summary.failures:
        table = output / f"failures.{fmt}"
        print(f"edgeser: {len(summary.failures)} of {len(found)} inputs failed; {table} lists "
              f"them.", file=sys.stderr)
        raise typer.Exit(1)
    return []
