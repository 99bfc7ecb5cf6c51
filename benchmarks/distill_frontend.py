"""A trained student's front end narrowed by ``edgeser distill --frontend-only``: fidelity and
training time, against the student and against the original teacher, on the same held-out audio.

    python benchmarks/distill_frontend.py --teacher WORK/teacher --student WORK/student-s4 \
        --work WORK [--conv-dim 256,256,256] [--pos-conv-kernel 32] [--time-budget 30m | --steps N] \
        [--write-results] [--results-file benchmarks/RESULTS.md] [--section distill-frontend]

WORK is the work folder of benchmarks/distill.py (the fitted-head full-size teacher and the
4-layer student it trained with ``edgeser distill``). The student keeps the teacher's conv front
end (frozen while its layers train); its front end costs as much as the teacher's (conv 7.4 GMAC
per 3 s window and a 128-tap positional conv). Here a narrower conv (``--conv-dim``: by default
256 channels out of conv layers 0-2, 7.3 -> 2.6 GMAC, the narrowed layers refitted by least
squares) and a shorter positional conv (``--pos-conv-kernel`` centre taps) are trained
to hand the student's unchanged transformer what its own front end hands it, on the shared
emotion audio with the same held-out speakers. Then, on the held-out windows: CCC of the
narrowed student against the student and against the original teacher, beside the student's own
CCC against the teacher. Speed: ``benchmarks/distill_speed.py --student NAME=DIR`` in one run
with the teacher and the other students.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402
from distill import DATA, SPEAKERS, Quiet, outputs_on  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--conv-dim", default="256,256,256",
                        help="one width, or the first conv layers' widths")
    parser.add_argument("--pos-conv-kernel", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--time-budget", default="30m")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--reuse", action="store_true",
                        help="judge a narrowed student already in --work instead of training it")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="distill-frontend")
    args = parser.parse_args()

    from edgeser.export import distill_eval, students
    from edgeser.export.distill import DistillOptions, distill, heldout, parse_duration

    emotion = DATA / "emotion"
    if not emotion.is_dir():
        raise SystemExit(f"real speech not found at {emotion} (set EDGESER_TEST_DATA)")
    report = machine_report(("numpy", "onnxruntime", "torch", "transformers", "edgeser"))
    config = json.loads((args.student / "config.json").read_text())
    record = config.get(students.RECORD_KEY)
    if record is None:
        raise SystemExit(f"{args.student} is not a distilled student (no {students.RECORD_KEY})")
    conv_dim = students.parse_widths(args.conv_dim)
    out = args.work / (f"{args.student.name}-conv{args.conv_dim.replace(',', '-')}"
                       f"-pos{args.pos_conv_kernel}")
    options = DistillOptions(
        teacher=str(args.student), audio=emotion, out=out, frontend_only=True,
        conv_dim=conv_dim, pos_conv_kernel=args.pos_conv_kernel, steps=args.steps,
        time_budget_s=None if args.time_budget is None else parse_duration(args.time_budget),
        lr=args.lr, holdout=0.2, speaker_pattern=SPEAKERS, cache_dir=args.work / "cache",
        overwrite=True, threads=args.threads)
    if args.reuse and (out / "config.json").is_file():  # judged again, not trained again
        narrowed = json.loads((out / "config.json").read_text())[students.RECORD_KEY]
        held = heldout(options, Quiet())
    else:
        result = distill(options, Quiet())
        narrowed, held = result.record, result.heldout
    labels = list(narrowed["heldout"]["outputs"])

    def ccc(reference, logits):
        return distill_eval.fidelity("regression", labels, reference[0], reference[1], logits[0],
                                     logits[1], held.refs)

    teacher_out = outputs_on(args.teacher, held.windows)[:2]
    student_out = (held.teacher_logits, held.teacher_embedding)  # the student is its teacher
    narrow_out = outputs_on(out, held.windows)[:2]
    name = args.student.name
    layers = record["student"]["layers"]
    pruned_out = outputs_on(args.teacher, held.windows, layers=layers)[:2]
    rows = ((f"pruning alone (teacher's first {layers} layers, untrained) vs teacher",
             ccc(teacher_out, pruned_out)),
            (f"{name} vs teacher", ccc(teacher_out, student_out)),
            (f"narrowed, before training, vs {name}", narrowed["heldout"]["before_training"]),
            (f"narrowed, trained, vs {name}", ccc(student_out, narrow_out)),
            ("narrowed, trained, vs teacher", ccc(teacher_out, narrow_out)))
    t = narrowed["training"]
    lines = ["```", report, f"work folder: {args.work}", "```", "",
             f"Teacher {args.teacher}; student {args.student}: {record['student']['description']}, "
             f"trained {record['training']['steps_done']} steps in "
             f"{record['training']['wall_s'] / 60:.1f} min (+ teacher pass "
             f"{record['training']['teacher_pass_s'] / 60:.1f} min), lr "
             f"{record['settings']['lr']:g}, stopped by {record['training']['stopped_by']}. "
             "Narrowed: "
             f"{narrowed['student']['description']}; front end trained alone "
             f"({narrowed['settings']['loss']}), {t['steps_done']} steps in "
             f"{t['wall_s'] / 60:.1f} min (+ teacher pass {t['teacher_pass_s'] / 60:.1f} min), "
             f"lr {narrowed['settings']['lr']:g}, stopped by {t['stopped_by']}. "
             f"Held-out: {narrowed['audio']['heldout']['files']} files of "
             f"{narrowed['audio']['heldout']['speakers']} speakers, {len(held.windows)} "
             "windows, the same split as the student's.", "",
             "| held-out CCC | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for label, metrics in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics['outputs'][k]['ccc']:.4f}"
                                                  for k in labels) + " |")
    lines += ["", "Fidelity figures are those of the synthetic teacher (random backbone, fitted "
              "head); the speed of both students' INT8 bundles is in `distill-speed`. The "
              "`distill` section's 4-layer student is an earlier run whose learning-rate "
              "schedule was planned for 100 000 steps and cut by its time budget at step 90, "
              "still in the warm-up; the student here replaces it (same teacher, audio and "
              "held-out speakers)."]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        command = "python benchmarks/distill_frontend.py " + " ".join(sys.argv[1:])
        replace_section(str(args.results_file), args.section,
                        f"## A student's front end narrowed (`{command}`)\n\n{text}")


if __name__ == "__main__":
    main()
