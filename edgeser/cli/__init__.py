"""The ``edgeser`` command line. Thin: one module per command, heavy imports inside commands.

Exit codes: 0 success; 1 a file, model or gate failure (one sentence on stderr, no traceback);
2 usage errors (Click's convention).
"""

from __future__ import annotations

import sys
import typer

from edgeser import __version__
from edgeser.cli import bench, denoise, detect, distill, engine, eval, export, probe, serve, verify
from edgeser.errors import EdgeserError

app = typer.Typer(
    name="edgeser",
    help="Speech emotion recognition and laughter detection on edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: rich markup would swallow every "[default: ...]" as an unknown tag.
    rich_markup_mode=None,
)
app.command("bench")(bench.bench)
app.command("denoise")(denoise.denoise)
app.command("detect")(detect.detect)
app.command("distill")(distill.distill)
app.command("eval")(eval.evaluate)
app.add_typer(engine.app, name="engine")
app.command("export")(export.export)
app.command("probe")(probe.probe)
app.command("serve")(serve.serve)
app.command("verify")(verify.verify)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeser {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Speech emotion recognition and laughter detection on edge devices."""


def main() -> None:
    """Console entry point: any EdgeserError that escapes a command becomes one line, exit 1."""
    try:
        app()
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        sys.exit(1)
