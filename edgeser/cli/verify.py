"""``edgeser verify BUNDLE``: rehash a model bundle and check it reproduces its reference
windows."""

from __future__ import annotations

import dataclasses
import math
import sys

import typer


def verify(
    bundle: str = typer.Argument(..., metavar="BUNDLE", show_default=False,
                                 help="Model bundle directory (or a checkpoint directory or hub "
                                 "id already exported to its default place)."),
) -> None:
    """Rehash every file of a model bundle and run its reference windows through ONNX Runtime.

    Prints files hashed, windows checked and the largest error per output against the bundle's
    tolerance, then each TensorRT engine: one that fits this device runs the reference windows
    too (a failure there fails verify); others say why they are not checked here. Then OK, DEGRADED (reproduces its reference windows, but was written
    with --allow-degraded after failing the fidelity gate; the failing metrics follow) or
    FAILED. Exit code 1 when a file, hash or output does not match.
    """
    from edgeser import bundle as bundles
    from edgeser import engines
    from edgeser.cli._model import existing
    from edgeser.errors import BundleError
    from edgeser.verification import verify as verify_bundle

    try:
        loaded = bundles.load(existing(bundle, "edgeser verify"), rehash=True)  # once
        report = verify_bundle(loaded)
        # TensorRT engines are device-specific: one that does not fit this device is reported,
        # never a failure (the ONNX graph is the portable form, checked above).
        engine_checks = engines.check_engines(loaded)
    except BundleError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    typer.echo(f"bundle   {report.bundle}")
    typer.echo(f"files    {report.files_checked} hashed")
    typer.echo(f"windows  {report.windows_checked} checked")
    for name, error in report.max_abs_error.items():
        shown = "n/a" if math.isnan(error) else f"{error:.3g}"
        typer.echo(f"{name:<9} max abs error {shown} (atol {report.atol:g})")
    for check in engine_checks:
        typer.echo(check.line)
    failed_engines = [check for check in engine_checks if not check.ok]
    if failed_engines:
        report = dataclasses.replace(report, ok=False, problems=report.problems + tuple(
            check.line for check in failed_engines))
    if report.ok and report.gate.degraded:
        # Intact and reproducible, but written with --allow-degraded: never a plain OK.
        typer.echo(f"DEGRADED: failed the fidelity gate at export ({'; '.join(report.gate.failures)})")
        return
    if report.ok:
        typer.echo("OK")
        return
    typer.echo("FAILED")
    for problem in report.problems:
        print(f"edgeser: {problem}", file=sys.stderr)
    print(
        f"edgeser: bundle {report.bundle} does not reproduce its reference windows "
        f"({len(report.problems)} problems).",
        file=sys.stderr,
    )
    raise typer.Exit(1)
