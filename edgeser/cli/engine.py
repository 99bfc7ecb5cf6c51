"""``edgeser engine build BUNDLE``: build this device's TensorRT engine into a bundle."""

from __future__ import annotations

import sys
from typing import Optional

import typer

app = typer.Typer(
    name="engine",
    help="TensorRT engines in a bundle, built on the device that runs them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

PRECISIONS = ("fp16", "int8")


@app.command("build")
def build(
    bundle: str = typer.Argument(..., metavar="BUNDLE", show_default=False,
                                 help="Model bundle directory (or a checkpoint directory or hub "
                                 "id already exported to its default place)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp16 (from an FP32 or "
                                            "FP16 bundle) or int8 (from a static symmetric INT8 "
                                            "bundle) [default: int8 for a static INT8 bundle, "
                                            "else fp16]."),
) -> None:
    """Build the TensorRT engine for this device's GPU and add it to the bundle.

    Needs onnxruntime-gpu with TensorRT and an NVIDIA GPU; no torch. The engine is checked
    against the bundle's reference windows before it is added; the bundle is replaced as a
    whole, so readers see the old or the new one. An engine this GPU already had at this
    precision is replaced. Takes minutes.
    """
    if precision is not None and precision.lower() not in PRECISIONS:
        raise typer.BadParameter(f"{precision!r} is not one of {', '.join(PRECISIONS)}.",
                                 param_hint="--precision")
    from edgeser import bundle as bundles
    from edgeser import engines
    from edgeser.cli._model import existing
    from edgeser.errors import EdgeserError

    try:
        bundle_dir = existing(bundle, "edgeser engine build")
        precision = (precision or engines.engine_precision(bundles.load(bundle_dir))).lower()
        result = engines.build_engine(
            bundle_dir, precision,
            announce=lambda p, gpu: print(f"edgeser: building the {p} TensorRT engine for {gpu} "
                                          "(this takes minutes)", file=sys.stderr, flush=True))
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    record = result.record
    typer.echo(f"bundle   {result.bundle}")
    typer.echo(f"engine   {record.file}")
    typer.echo(f"context  {record.context_model}")
    typer.echo(f"built    {record.describe()}, ONNX Runtime {record.onnxruntime}, compute "
               f"capability {record.compute_capability}")
    typer.echo(f"profile  {record.profile.describe()}")
    typer.echo(f"parity   {record.parity.windows} reference windows: "
               f"{record.parity.describe()}")
