"""``edgeser eval`` on real speech: a distilled 4-layer student against its 12-layer teacher,
clean and under noise, reverberation and a telephone channel.

    python benchmarks/eval_report.py [--teacher /tmp/distwork/bundle-teacher]
        [--student /tmp/distwork/bundle-student-4] [--max-files 30] [--report DIR]
        [--threads 2] [--write-results] [--results-file benchmarks/RESULTS.md] [--section eval]

The bundles are the ones ``benchmarks/distill.py --work /tmp/distwork`` writes: the teacher is the
full-size reference architecture (12 layers, INT8) with a random backbone and a head fitted to
principal directions of real speech, the student its 4-layer distillation (INT8). The audio is
``../shared/data/emotion`` (RAVDESS, EmoDB, Korean read speech), ``--max-files`` files spread
evenly over its labels.csv. It has emotion classes but no dimensional labels, so the figures are
the student against the teacher (the teacher is the reference model: CCC per output on the same
perturbed windows), the mean outputs per labelled class, stability under +/-1 dB and 40 dB
noise, and neutral espeak-ng speech (when espeak-ng is on PATH). None of these is a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402

DATA = Path(os.environ.get("EDGESER_TEST_DATA", HERE.parents[1] / "shared" / "data"))
PERTURB = ("noise:20,10,0", "reverb:0.3,0.8", "phone")


class Stages:
    """Progress on stderr: one line per stage."""

    def start(self, description: str, total: int | None = None) -> None:
        print(f"  {description} ({total})", file=sys.stderr, flush=True)

    def advance(self, units: int = 1) -> None:
        pass


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def tables(doc: dict, student: str, teacher: str) -> list[str]:
    labels = [m for m in doc["models"] if m["name"] == student][0]["labels"]
    conditions = {c["key"]: c["label"] for c in doc["settings"]["conditions"]}
    cells = {(c["model"], c["condition"]): c for c in doc["results"]}
    lines = ["Student against teacher on the same (perturbed) windows: CCC per output, the "
             "largest absolute difference, and the teacher's spread (standard deviation over the "
             "windows; where it collapses, CCC measures little).", "",
             "| condition | windows | " + " | ".join(f"CCC {k}" for k in labels) + " | "
             + " | ".join(f"max err {k}" for k in labels) + " | "
             + " | ".join(f"teacher std {k}" for k in labels) + " |",
             "|---|---|" + "---|" * (3 * len(labels))]
    for key, label in conditions.items():
        fid = cells[(student, key)]["fidelity"]
        lines.append(f"| {label} | {fid['count']} | "
                     + " | ".join(_f(fid["ccc"][k]) for k in labels) + " | "
                     + " | ".join(_f(fid["max_abs_error"][k]) for k in labels) + " | "
                     + " | ".join(_f(fid["reference_std"][k]) for k in labels) + " |")
    means = {m: cells[(m, "clean")]["metrics"].get("class_means", {}) for m in (teacher, student)}
    lines += ["", "Mean output per labelled class, clean audio (teacher / student):", "",
              "| class | files | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for cls, t in means[teacher].items():
        s = means[student][cls]
        lines.append(f"| {cls} | {t['files']} | "
                     + " | ".join(f"{t[k]:.3f} / {s[k]:.3f}" for k in labels) + " |")
    lines += ["", "Stability: standard deviation of each window's outputs across clean, +1 dB, "
              "-1 dB and white noise at 40 dB SNR (mean over windows):", "",
              "| model | windows | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name in (teacher, student):
        s = doc["stability"][name]
        lines.append(f"| {name} | {s['windows']} | "
                     + " | ".join(f"{s['std'][k]:.4f}" for k in labels) + " |")
    neutral = doc["neutral_speech"]
    lines += ["", "Neutral synthetic speech (six plain statements per espeak-ng voice): mean "
              "valence, shift from mid-scale (0.5) and spread over the sentences:", ""]
    if neutral["problem"]:
        lines.append(neutral["problem"])
    else:
        lines += ["| voice | " + " | ".join(f"{m} mean / shift / spread" for m in
                                            (teacher, student)) + " |", "|---|---|---|"]
        voices = neutral["models"][teacher]["voices"]
        for voice in voices:
            row = []
            for name in (teacher, student):
                v = neutral["models"][name]["voices"][voice]
                row.append(f"{v['mean']:.3f} / {v['shift']:+.3f} / {v['spread']:.3f}")
            lines.append(f"| {voice} | " + " | ".join(row) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=Path("/tmp/distwork/bundle-teacher"))
    parser.add_argument("--student", type=Path, default=Path("/tmp/distwork/bundle-student-4"))
    parser.add_argument("--max-files", type=int, default=30)
    parser.add_argument("--report", type=Path, default=None,
                        help="where the full report goes [default: a temporary folder]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="eval")
    args = parser.parse_args()

    from edgeser.evaluation import EvalRequest, evaluate, write_report

    labels = DATA / "emotion" / "labels.csv"
    if not labels.is_file():
        raise SystemExit(f"real speech not found at {labels.parent} (set EDGESER_TEST_DATA)")
    for bundle in (args.teacher, args.student):
        if not (bundle / "manifest.json").is_file():
            raise SystemExit(f"no bundle at {bundle}: run benchmarks/distill.py --work "
                             f"{bundle.parent} first")
    report_dir = args.report or Path(tempfile.mkdtemp(prefix="edgeser-eval-")) / "report"
    t0 = time.monotonic()
    evaluation = evaluate(EvalRequest(
        models=(str(args.teacher), str(args.student)), labels=str(labels),
        reference=str(args.teacher), perturb=PERTURB, class_column="emotion",
        max_files=args.max_files, threads=args.threads), progress=Stages(),
        warn=lambda m: print(f"  {m}", file=sys.stderr))
    wall_s = time.monotonic() - t0
    write_report(report_dir, evaluation)
    doc = evaluation.document
    teacher, student = (m["name"] for m in doc["models"])
    info = {m["name"]: m for m in doc["models"]}
    lines = ["```", machine_report(("numpy", "onnxruntime", "matplotlib", "edgeser")),
             f"report:         {report_dir} (report.md, report.json, plots/)",
             f"wall time:      {wall_s:.0f} s (not a timing figure: the machine was shared)",
             "```", "",
             f"Models: {teacher} ({info[teacher]['precision']}, "
             f"{info[teacher]['quantization']}) and {student} ({info[student]['precision']}, "
             f"{info[student]['quantization']}, distilled from {info[student]['distilled_from']}"
             f"; compared with {info[student]['reference']}). Audio: "
             f"{doc['labels']['files_used']} of {doc['labels']['files_listed']} files of "
             f"{labels} (spread evenly), seed {doc['settings']['seed']}; conditions "
             f"{', '.join(c['key'] for c in doc['settings']['conditions'])}.", "",
             *tables(doc, student, teacher), "",
             "The teacher is synthetic (random backbone, head fitted to principal directions of "
             "real speech), so its outputs need not order the emotion classes as arousal, "
             "dominance and valence would; what these figures show is how closely the student "
             "follows it, clean and in noisy, reverberant and telephone audio."]
    if doc["problems"]:
        lines += ["", f"{len(doc['problems'])} files could not be evaluated (report.json)."]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        command = "python benchmarks/eval_report.py " + " ".join(sys.argv[1:])
        replace_section(str(args.results_file), args.section,
                        f"## Evaluation: student against teacher on real speech (`{command}`)"
                        f"\n\n{text}")


if __name__ == "__main__":
    main()
