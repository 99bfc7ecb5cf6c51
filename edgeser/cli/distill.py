"""``edgeser distill``: a smaller student of a teacher checkpoint, trained on unlabelled audio."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

INSTALL_HINT = "the export toolchain is not installed: pip install 'edgeser[export]'"


class _Progress:
    """Progress on stderr: a bar per step (when stderr is a terminal) and kept lines."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self.console = Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
            console=self.console, transient=True, disable=not self.console.is_terminal)
        self._task = None

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def start(self, description: str, total: int | None = None) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(description, total=total, status="")

    def advance(self, units: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, units)

    def status(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, status=text)

    def note(self, message: str) -> None:
        self.console.print(f"edgeser: {message}", markup=False, highlight=False, soft_wrap=True)


def _int_list(text: Optional[str]):
    if text is None:
        return None
    from edgeser.export.students import parse_layers

    return parse_layers(text)


def _conv_widths(text: Optional[str]):
    """``256`` -> 256 (every conv layer); ``256,256,256`` -> (256, 256, 256) (the first ones)."""
    if text is None:
        return None
    from edgeser.export.students import parse_widths

    return parse_widths(text)


def _summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    r = result.record
    held = r["heldout"]
    before = held["before_training"]["outputs"]
    spread = held["teacher_spread"]["outputs"]
    table = Table(title=f"edgeser student: {result.student}")
    table.add_column("held-out output")
    table.add_column("teacher std", justify="right")
    table.add_column("CCC untrained", justify="right")
    table.add_column("CCC trained", justify="right")
    for label, m in held["outputs"].items():
        table.add_row(label, f"{spread[label]['std']:.4f}" if label in spread else "",
                      f"{before[label]['ccc']:.4f}", f"{m['ccc']:.4f}")
    console = Console()
    console.print(table)
    s, a, t = r["student"], r["audio"], r["training"]
    lines = [
        f"student: {s['description']}; {s['parameters'] / 1e6:.2f} M parameters "
        f"(teacher {r['teacher']['parameters'] / 1e6:.2f} M)",
        f"audio: {a['files']} files, {a['seconds']:.0f} s; split {a['split']}: "
        f"{a['training']['files']} training files ({a['training']['windows']} windows), "
        f"{a['heldout']['files']} held-out files ({a['heldout']['windows']} windows)",
        f"training: {t['steps_done']} steps in {t['wall_s']:.0f} s (teacher pass "
        f"{t['teacher_pass_s']:.0f} s), stopped by {t['stopped_by']}; loss {t['loss_first']:.4f} "
        f"-> {t['loss_last']:.4f}" if t["loss_first"] is not None else
        f"training: {t['steps_done']} steps",
    ]
    if "top1_agreement" in held:
        lines.append(f"top-1 agreement {100 * held['top1_agreement']:.1f}%, max probability "
                     f"error {held['max_prob_error']:.3f}")
    if "laughter" in held:
        d = held["laughter"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"laughter at {d['threshold']:g}: window precision {fmt(d['window_precision'])}"
                     f", recall {fmt(d['window_recall'])}; events {d['student_events']} vs teacher "
                     f"{d['teacher_events']} (precision {fmt(d['event_precision'])}, recall "
                     f"{fmt(d['event_recall'])})")
    if "embedding_cosine_mean" in held:
        lines.append(f"embedding cosine to the teacher: mean {held['embedding_cosine_mean']:.4f}, "
                     f"min {held['embedding_cosine_min']:.4f}")
    verdict = ("faithful" if result.faithful else "NOT faithful (" + "; ".join(r["failures"]) + ")")
    lines.append(f"verdict: {verdict} at --min-ccc {r['min_ccc']:g}; next: edgeser export --model "
                 f"{result.student}")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def distill(
    teacher: str = typer.Option(..., "--teacher", "-t", help="Teacher: hub id (org/name) or "
                                "checkpoint directory."),
    audio: Path = typer.Option(..., "--audio", "-a", help="Folder of unlabelled audio (searched "
                               "recursively; sub-folders are taken as speakers)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the student checkpoint."),
    revision: Optional[str] = typer.Option(None, help="Hub revision of the teacher [default: main]."),
    student: Optional[str] = typer.Option(None, "--student", help="Preset: tiny (2 layers, hidden "
                                          "min(256, H/2), FFN 4x hidden, conv min(256, C/2)) "
                                          "[default: none]."),
    student_layers: Optional[int] = typer.Option(None, "--student-layers", help="Transformer layers "
                                                 "of the student [default: a third of the "
                                                 "teacher's; 4 of 12]."),
    init_layers: Optional[str] = typer.Option(None, "--init-layers", help="Teacher layers that "
                                              "initialise the student's, e.g. 0,4,8,11 "
                                              "[default: evenly spaced]."),
    ffn_dim: Optional[int] = typer.Option(None, "--ffn-dim", help="Student FFN width [default: the "
                                          "teacher's]."),
    hidden_size: Optional[int] = typer.Option(None, "--hidden-size", help="Student hidden size "
                                              "[default: the teacher's]."),
    conv_dim: Optional[str] = typer.Option(None, "--conv-dim", help="Student conv front-end "
                                           "channels: one width for every conv layer, or a "
                                           "list for the first layers, e.g. 256,256,256 "
                                           "[default: the teacher's]."),
    pos_conv_kernel: Optional[int] = typer.Option(None, "--pos-conv-kernel", help="Student "
                                                  "positional-conv taps, the teacher's centre "
                                                  "ones [default: the teacher's; 128 in wav2vec2]."),
    frontend_only: bool = typer.Option(False, "--frontend-only", help="Train only a narrower front "
                                       "end (--conv-dim, --pos-conv-kernel) to hand the "
                                       "teacher's transformer what its own front end does; "
                                       "the transformer and head stay the teacher's."),
    freeze_frontend: Optional[bool] = typer.Option(None, "--freeze-frontend/--no-freeze-frontend",
                                                   help="Keep the teacher's conv front end frozen "
                                                   "and cache its features [default: on when the "
                                                   "student keeps the teacher's conv width]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps [default: 2000, or "
                                        "what --time-budget allows; with it, at most this]."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="Wall time for the whole "
                                              "run, e.g. 90m or 2h [default: none]."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW) [default: "
                                       "1e-5, or 1e-4 with --frontend-only]."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, window sampling, batches "
                             "and augmentation."),
    temperature: float = typer.Option(2.0, "--temperature", help="Softmax temperature of the KL "
                                      "loss (classifiers)."),
    match_hidden: float = typer.Option(0.0, "--match-hidden", help="Weight of hidden-state "
                                       "matching against the teacher layers (0: off)."),
    augment: int = typer.Option(0, "--augment", help="Augmented copies per training window "
                                "(gain, babble from the same recording, band limits)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of the audio held out, by speaker "
                                  "(or by file)."),
    speaker_pattern: Optional[str] = typer.Option(None, "--speaker-pattern", help="Regex on each "
                                                  "file's relative path naming its speaker "
                                                  "[default: the first folder level]."),
    min_ccc: float = typer.Option(0.9, "--min-ccc", help="Held-out CCC below which the student is "
                                  "marked unfaithful."),
    max_windows: int = typer.Option(3000, "--max-windows", help="Training windows at most (sampled "
                                    "evenly over the files)."),
    window: Optional[float] = typer.Option(None, help="Window length in seconds [default: per task, "
                                           "as export]."),
    hop: Optional[float] = typer.Option(None, help="Hop in seconds [default: per task, as export]."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="Steps between checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of this "
                                "--out."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Teacher-output cache folder "
                                         "[default: $EDGESER_HOME/distill-cache]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads [default: "
                                          "torch's]."),
) -> None:
    """Distil a smaller student of a teacher on unlabelled audio (held-out fidelity included)."""
    try:
        from edgeser.export.distill import (DistillInterrupted, DistillOptions, distill as run,
                                            parse_duration)
    except ImportError as err:
        print(f"edgeser: {INSTALL_HINT} ({err.name} is missing).", file=sys.stderr)
        raise typer.Exit(1)
    options = DistillOptions(
        teacher=teacher, audio=audio, out=out, revision=revision, student_layers=student_layers,
        init_layers=_int_list(init_layers), preset=student, ffn_dim=ffn_dim,
        hidden_size=hidden_size, conv_dim=_conv_widths(conv_dim), pos_conv_kernel=pos_conv_kernel,
        frontend_only=frontend_only, freeze_frontend=freeze_frontend, steps=steps,
        time_budget_s=None if time_budget is None else parse_duration(time_budget),
        batch_size=batch_size, lr=lr, seed=seed, temperature=temperature,
        match_hidden=match_hidden, augment=augment, holdout=holdout,
        speaker_pattern=speaker_pattern, min_ccc=min_ccc, max_windows=max_windows,
        window_s=window, hop_s=hop, checkpoint_every=checkpoint_every, resume=resume,
        overwrite=force, cache_dir=cache, device=device, threads=threads)
    try:
        with _Progress() as progress:
            result = run(options, progress)
    except DistillInterrupted as stop:
        print(f"edgeser: {stop}", file=sys.stderr)
        raise typer.Exit(130)
    except KeyboardInterrupt:
        print("edgeser: aborted; the last checkpoint and the finished part of the teacher cache "
              "are kept: run the same command again (with --resume once a checkpoint was "
              "written).", file=sys.stderr)
        raise typer.Exit(130)
    _summary(result)
