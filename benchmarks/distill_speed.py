"""Speed of distilled students against their teacher with the INT8 recipes export chooses.

    python benchmarks/distill_speed.py --teacher WORK/teacher --student student-4=WORK/student-s4 \
        --student tiny=WORK/student-tiny --work /tmp/distspeed --write-results

WORK is the work folder of benchmarks/distill.py (the fitted-head teacher and its students).
Every model is exported with the default INT8 choice (``--target auto``: candidates timed here,
fastest that holds the gate kept) and with each ``--recipe`` given (default: blockwise-int8, the
earlier fixed default), on real speech from ../shared/data/emotion. Then, in one run: 3 s
window latency (batch 1, one thread, interleaved rounds, medians), where each graph spends its
time (ONNX Runtime's node profiler: conv feature extractor, positional conv, transformer layers,
the rest), and ``edgeser detect`` real-time factor on one thread.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402
from distill import DATA, detect_rtf, ort_runner, speech_windows, time_interleaved  # noqa: E402

import numpy as np  # noqa: E402

PARTS = (("conv feature extractor", "feature_extractor"), ("positional conv", "pos_conv"),
         ("transformer layers", "encoder/layers"))


def parts_ms(model: Path, window: np.ndarray, runs: int = 4) -> dict:
    """Milliseconds per window spent in each part of the graph (one thread, node profiler)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(model.parent / "profile")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, {"input_values": window[None, :]})
    trace = Path(session.end_profiling())
    spent: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        part = next((label for label, key in PARTS if key in event["name"]), "other")
        spent[part] += event["dur"] / 1000.0 / runs
    trace.unlink()
    return dict(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--recipe", action="append", default=None,
                        help="also export with this --recipe (repeatable) [default: blockwise-int8]")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--detect-seconds", type=float, default=30.0)
    parser.add_argument("--eval-windows", type=int, default=60)
    parser.add_argument("--reuse", action="store_true", help="keep bundles already in --work")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="distill-speed")
    args = parser.parse_args()
    recipes = args.recipe if args.recipe is not None else ["blockwise-int8"]

    from edgeser import audio, bundle
    from edgeser import frontend as fe
    from edgeser.export import ExportOptions, export_model
    from edgeser.export.eval_audio import audio_files

    emotion = DATA / "emotion"
    report = machine_report(("numpy", "onnxruntime", "torch", "transformers", "edgeser"))
    models = {"teacher": args.teacher}
    models.update(dict(spec.split("=", 1) for spec in args.student))
    bundles: dict = {}
    for name, model in models.items():
        for recipe in [None, *recipes]:
            key = (name, recipe or "auto")
            out = args.work / f"{name}-{recipe or 'auto'}"
            if not (args.reuse and (out / "manifest.json").is_file()):
                print(f"exporting {name} ({recipe or 'target auto'})", file=sys.stderr, flush=True)
                export_model(ExportOptions(model=str(model), out=out, overwrite=True,
                                           recipe=recipe, calibration=emotion,
                                           eval_audio=emotion, eval_windows=args.eval_windows,
                                           allow_degraded=True))
            bundles[key] = bundle.load(out)
    windows = [w.astype(np.float32) for w in speech_windows(audio_files(emotion), 8)]
    runners = {key: ort_runner(b.path, 1) for key, b in bundles.items()}
    times = time_interleaved(runners, windows, args.repeats, args.warmup)
    del runners
    parts = {key: parts_ms(b.graph_path("full"), windows[0]) for key, b in bundles.items()}
    speech = []
    for path in audio_files(emotion)[::5]:
        samples, info = audio.read_mono(path)
        speech.append(fe.resample(samples, info.rate_hz))
        if sum(map(len, speech)) >= args.detect_seconds * 16000:
            break
    speech = np.concatenate(speech)
    rtf = {key: detect_rtf(b.path, speech) for key, b in bundles.items()}

    lines = ["```", report, "```", "",
             "| model | INT8 recipe | how chosen | model.onnx MiB | 3 s window ms (1 thread) | "
             "teacher / model, same recipe | conv front end ms | positional conv ms | "
             "transformer ms | other ms | detect x real time (1 thread) | gate |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (name, how), b in bundles.items():
        q = b.manifest.quantization
        teacher_ms = times[("teacher", how)]
        p = parts[(name, how)]
        gate = b.manifest.parity.get("gate", {})
        lines.append(
            f"| {name} | {q.preset} | {'--target auto' if how == 'auto' else '--recipe'} "
            f"| {b.manifest.files['model.onnx'].bytes / 2**20:.1f} | {times[(name, how)]:.1f} "
            f"| {teacher_ms / times[(name, how)]:.2f}x | {p.get('conv feature extractor', 0):.1f} "
            f"| {p.get('positional conv', 0):.1f} | {p.get('transformer layers', 0):.1f} "
            f"| {p.get('other', 0):.1f} | {rtf[(name, how)]:.1f}x "
            f"| {'passed' if gate.get('passed') else 'FAILED: ' + '; '.join(gate.get('failures', []))} |")
    auto_teacher = times[("teacher", "auto")]
    lines += ["", "Against the teacher's bundle of each recipe (same run): " + "; ".join(
        f"{name} ({how}) {times[('teacher', how)] / times[(name, how)]:.2f}x, vs the auto "
        f"teacher {auto_teacher / times[(name, how)]:.2f}x"
        for (name, how) in bundles if name != "teacher") + ".",
        "", f"Latency: batch 1, one thread, {len(windows)} real-speech 3 s windows cycled over "
        f"{args.repeats} interleaved rounds after {args.warmup} warm-up calls, medians. Parts: "
        "ONNX Runtime's node profiler (one thread, 4 windows; the profiler adds a little). "
        f"detect: {len(speech) / 16000:.0f} s of held-out-style speech, one thread. The gate "
        "column is the export's fidelity gate of each bundle against its own FP32 model."]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        command = "python benchmarks/distill_speed.py " + " ".join(sys.argv[1:])
        replace_section(str(args.results_file), args.section,
                        f"## Distilled students: speed with the INT8 recipe choice (`{command}`)\n\n{text}")


if __name__ == "__main__":
    main()
