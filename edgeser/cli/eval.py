"""``edgeser eval``: models scored on the user's labelled audio, clean and perturbed, with a
report of tables and figures (logic in :mod:`edgeser.evaluation`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgeser.cli import _options as opt


def evaluate(
    model: List[str] = typer.Option(..., "--model", "-m", show_default=False,
                                    help="Model bundle directory; repeat to compare models."),
    labels: Path = typer.Option(..., "--labels", show_default=False,
                                help="CSV with a header: file, then the targets: one column per "
                                "regression output (e.g. arousal,dominance,valence), a class "
                                "column, or start,end (seconds, one row per laughter segment; "
                                "empty: none); optional speaker and sex. Paths relative to the "
                                "CSV's folder."),
    report: Path = typer.Option(..., "--report", show_default=False,
                                help="Folder for report.md, report.json and plots/ (written "
                                "whole, then renamed into place)."),
    perturb: List[str] = typer.Option([], "--perturb", show_default=False,
                                      help="Also evaluate under: noise:20,10,0 (white noise, and "
                                      "each --noise-file, at these SNRs in dB), noise:FILE[:SNRS], "
                                      "babble:SNRS (other clips of the set), reverb:0.3,0.8 "
                                      "(RT60 in s), phone[:GAIN_DB] (300-3400 Hz at 8 kHz, "
                                      "mu-law, clipping), gain:+6,-6. Repeatable [default: clean only]."),
    noise_file: List[Path] = typer.Option([], "--noise-file", show_default=False,
                                          help="Noise recording mixed in at the SNRs of "
                                          "noise:SNRS. Repeatable [default: none]."),
    denoise: str = typer.Option("raw", "--denoise", help="raw, denoised (the noise suppressor "
                                "first) or both."),
    reference_model: Optional[str] = typer.Option(
        None, "--reference-model", help="Compare every other model with this bundle [default: "
        "each student with its teacher's bundle, each INT8/FP16 bundle with the FP32 bundle of "
        "its checkpoint, when given with --model]."),
    thresholds: Optional[str] = typer.Option(
        None, "--thresholds", help="Laughter thresholds for the table: START:STOP:STEP or a "
        "comma list [default: 0.05:0.95:0.05]."),
    write_operating_points: Optional[str] = typer.Option(
        None, "--write-operating-points", help="Laughter: choose thresholds by rule on the clean "
        "audio and write them into the bundles with their origin, e.g. "
        "'high-precision=precision>=0.95,balanced=f1' (quoted: the shell reads >) (metrics: "
        "precision, recall, f1, accuracy, event-precision, event-recall, event-f1) "
        "[default: none]."),
    class_column: str = typer.Option("class", "--class-column",
                                     help="The labels column holding the true class."),
    embeddings_plot: bool = typer.Option(False, "--embeddings-plot",
                                         help="Draw each model's window embeddings in 2-D "
                                         "(PCA), coloured by label, speaker and sex."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the figures (needs pip "
                               "install \"edgeser[plots]\")."),
    stability: bool = typer.Option(True, "--stability/--no-stability",
                                   help="Measure output spread under +/-1 dB and 40 dB noise."),
    bias_check: bool = typer.Option(True, "--bias-check/--no-bias-check",
                                    help="Score neutral espeak-ng speech (when installed)."),
    max_files: Optional[int] = typer.Option(None, "--max-files", min=1,
                                            help="Evaluate at most this many files, spread "
                                            "evenly over the CSV [default: all]."),
    seed: int = typer.Option(0, "--seed", help="Seed of every perturbation."),
    window: opt.Window = None,
    hop: opt.Hop = None,
    threads: opt.Threads = None,
) -> None:
    """Evaluate models on labelled audio: clean, perturbed and denoised, against the labels, each
    other and neutral speech; writes a markdown + JSON report with figures.

    A labels row that cannot be used, or a file that cannot be decoded, is listed and left out;
    the rest runs, the report is written, and the exit code is 1.
    """
    from edgeser.cli._progress import RichProgress
    from edgeser.errors import EdgeserError
    from edgeser.evaluation import DENOISE_CHOICES, EvalRequest
    from edgeser.evaluation import evaluate as run_evaluation
    from edgeser.evaluation import write_report
    from edgeser.evaluation.plots import require as require_plots

    if denoise not in DENOISE_CHOICES:
        raise typer.BadParameter(f"{denoise!r} is not one of {', '.join(DENOISE_CHOICES)}.",
                                 param_hint="--denoise")
    if plots or embeddings_plot:
        try:  # said before any audio is read
            require_plots()
        except EdgeserError as err:
            print(f"edgeser: {err}", file=sys.stderr)
            raise typer.Exit(1)
    request = EvalRequest(
        models=tuple(model), labels=str(labels), reference=reference_model,
        perturb=tuple(perturb), noise_files=tuple(str(p) for p in noise_file), denoise=denoise,
        thresholds=thresholds, operating_points=write_operating_points,
        class_column=class_column, stability=stability, bias=bias_check,
        embeddings=embeddings_plot, seed=seed, max_files=max_files, threads=threads,
        extra={"window_s": window, "hop_s": hop})
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        print(f"edgeser: {message}", file=sys.stderr)

    try:
        with RichProgress() as progress:
            evaluation = run_evaluation(request, progress=progress, warn=warn)
        write_report(report, evaluation, plots=plots or embeddings_plot)
    except EdgeserError as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    doc = evaluation.document
    typer.echo(f"report   {report / 'report.md'}")
    for point in doc["operating_points"]:
        if point["written"]:
            typer.echo(f"operating point {point['name']} = {point['threshold']:g} written into "
                       f"{point['model']}")
        else:
            print(f"edgeser: {point['error']}", file=sys.stderr)
    left_out = len(doc["labels"]["bad_rows"]) + len(doc["problems"])
    unmet = sum(not p["written"] for p in doc["operating_points"])
    if left_out or unmet:
        print(f"edgeser: the report covers the rest; {left_out} labels rows or files were left "
              f"out and {unmet} operating points were not written.", file=sys.stderr)
        raise typer.Exit(1)
