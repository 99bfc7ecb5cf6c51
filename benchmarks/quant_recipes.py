"""INT8 recipes on the full-size reference architecture: fidelity, size and latency of each.

    python benchmarks/reference_checkpoint.py /tmp/ref-ckpt
    edgeser export --model /tmp/ref-ckpt --quantize none --out /tmp/ref-fp32 --eval-windows 8
    python benchmarks/quant_recipes.py /tmp/ref-fp32 [--recipes a,b,...] [--write-results]

Evaluation: at least 200 windows of real speech (3 s, 1 s hop) from EDGESER_TEST_DATA/emotion;
calibration from other files of the same folder (disjoint by file), or from the package's
default generated speech. Reference: the FP32 ONNX graph on the same windows, which matches
PyTorch FP32 to < 1e-6 here (the export's own parity gate measured 5.4e-7 on the logits). Latency: one 3 s window, batch 1,
all cores, median of repeated runs after warm-up; a simple timing, not the bench harness.
The weights are random (the published architecture, not the trained model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402

from edgeser.export import eval_audio, parity, sensitivity  # noqa: E402
from edgeser.export.quantize import FIRST_CONV, POSITIONAL_CONV, Recipe, quantize  # noqa: E402

DATA = Path(os.environ.get("EDGESER_TEST_DATA", HERE.parents[1] / "shared" / "data"))
WINDOW_S, HOP_S = 3.0, 1.0
LABELS = ["arousal", "dominance", "valence"]


def recipes() -> dict:
    base = Recipe.static()
    return {
        "static-mixed": Recipe.static(name="static-mixed"),
        "blockwise-int8": Recipe.blockwise(),
        "blockwise-int8-b128": Recipe.blockwise(block_size=128),
        "dynamic-matmul": Recipe.dynamic_matmul(),
        "dynamic-matmul-per-channel": Recipe.dynamic_matmul(per_channel=True),
        "static-minmax": base,
        "static-matmul-only": Recipe.static(ops=("MatMul",), name="static-matmul-minmax-per-channel"),
        "static-percentile": Recipe.static(calibration="percentile"),
        "static-entropy": Recipe.static(calibration="entropy"),
        "static-per-tensor": Recipe.static(per_channel=False),
        "static-convs-float": Recipe.static(float_nodes=(FIRST_CONV, POSITIONAL_CONV, r"/conv_layers\.\d+/conv/Conv$"),
                                            name="static-minmax-all-convs-float"),
        "static-ffn-out-float": base.keeping_float(r"/feed_forward/output_dense/MatMul$"),
    }


def session(path: Path, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def forward_of(sess):
    def forward(batch):
        return sess.run(["logits", "embedding"], {"input_values": batch.astype(np.float32)})
    return forward


def latency_ms(sess, repeats: int = 15) -> float:
    x = np.random.default_rng(0).standard_normal((1, 48000)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"input_values": x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        sess.run(None, {"input_values": x})
        times.append((time.perf_counter_ns() - t) / 1e6)
    return float(np.median(times))


def batch_dependence(sess, windows) -> float:
    """Max abs change of window 0's logits when run beside three other windows."""
    same = [w for w in windows if len(w) == len(windows[0])][:4]
    alone = sess.run(["logits"], {"input_values": same[0][None, :]})[0][0]
    together = sess.run(["logits"], {"input_values": np.stack(same)})[0][0]
    return float(np.max(np.abs(alone - together)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32_bundle", type=Path)
    parser.add_argument("--recipes", default=",".join(recipes()))
    parser.add_argument("--eval-windows", type=int, default=200)
    parser.add_argument("--calibration-windows", type=int, default=32)
    parser.add_argument("--calibration", choices=["real", "default", "both"], default="real")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--section", default="int8-recipes",
                        help="RESULTS.md section to rewrite (separate runs keep separate sections)")
    args = parser.parse_args()

    print(machine_report(), flush=True)
    files = eval_audio.audio_files(DATA / "emotion")
    cut = len(files) // 2
    eval_set = eval_audio.from_files(files[:cut], WINDOW_S, HOP_S, args.eval_windows,
                                     f"{DATA / 'emotion'} (half of the files)")
    calib_sets = {}
    if args.calibration in ("real", "both"):
        calib_sets["real"] = eval_audio.from_files(
            files[cut:], WINDOW_S, HOP_S, 3 * args.calibration_windows, "other half of the files"
        ).full_length()
        calib_sets["real"] = eval_audio.EvalSet(calib_sets["real"].windows[: args.calibration_windows],
                                                calib_sets["real"].description)
    if args.calibration in ("default", "both"):
        calib_sets["default"] = eval_audio.default(WINDOW_S, HOP_S, 2 * args.calibration_windows,
                                                   purpose="calibration").full_length()
        calib_sets["default"] = eval_audio.EvalSet(calib_sets["default"].windows[: args.calibration_windows],
                                                   calib_sets["default"].description)
    print(f"eval windows {len(eval_set)}; calibration: "
          + ", ".join(f"{k} {len(v)} ({v.description})" for k, v in calib_sets.items()), flush=True)

    fp32 = args.fp32_bundle / "model.onnx"
    ref_sess = session(fp32)
    reference = parity.run(forward_of(ref_sess), eval_set.windows)
    rows = [{"recipe": "fp32 (reference)", "calibration": "-", "bytes": fp32.stat().st_size,
             "ccc": {k: 1.0 for k in LABELS}, "max_abs": 0.0,
             "latency_ms": latency_ms(ref_sess), "batch_dependence": batch_dependence(ref_sess, eval_set.windows)}]
    print(rows[-1], flush=True)
    table = recipes()
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.recipes.split(","):
            calibrations = list(calib_sets.items()) if table[name].method == "static-qdq" else [("-", None)]
            if name == "static-mixed":  # the search is long; it runs on the first calibration set
                calibrations = calibrations[:1]
            for calib_name, calib in calibrations:
                recipe = table[name]
                out = Path(scratch) / f"{name}-{calib_name}.onnx"
                t0 = time.perf_counter()
                extra = {}
                if name == "static-mixed":
                    found = sensitivity.search(fp32, out, recipe, calib.windows, LABELS, "regression",
                                               lambda p: forward_of(session(p)))
                    extra = {"float_groups": list(found.float_groups), "sensitivity": found.sensitivity,
                             "calibration_score": [found.baseline_score, found.final_score]}
                    recipe = found.recipe
                else:
                    quantize(fp32, out, recipe, calib.windows if calib else ())
                build_s = time.perf_counter() - t0
                sess = session(out)
                candidate = parity.run(forward_of(sess), eval_set.windows)
                metrics = parity.compare(reference, candidate, LABELS, "regression")
                rows.append({"recipe": recipe.name, "calibration": calib_name, "bytes": out.stat().st_size,
                             "ccc": {k: metrics["outputs"][k]["ccc"] for k in LABELS},
                             "max_abs": metrics["logits_max_abs_error"], "build_s": build_s,
                             "latency_ms": latency_ms(sess),
                             "batch_dependence": batch_dependence(sess, eval_set.windows), **extra})
                print(json.dumps(rows[-1]), flush=True)
                del sess
                out.unlink()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    lines = ["| recipe | calibration | size MB | CCC arousal | CCC dominance | CCC valence | max abs err | 3 s latency ms | batch dependence |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["ccc"]
        lines.append(f"| {r['recipe']} | {r['calibration']} | {r['bytes'] / 1e6:.0f} | {c['arousal']:.4f} | "
                     f"{c['dominance']:.4f} | {c['valence']:.4f} | {r['max_abs']:.4f} | {r['latency_ms']:.0f} | "
                     f"{r['batch_dependence']:.1e} |")
    table_md = "\n".join(lines)
    print(table_md)
    if args.write_results:
        body = (f"## INT8 recipes on the full-size reference architecture ({args.section})\n\nScript: "
                f"[`benchmarks/quant_recipes.py`](quant_recipes.py); command: "
                f"`python benchmarks/quant_recipes.py FP32_BUNDLE {' '.join(sys.argv[2:])}`.\n\n"
                f"{__doc__.split(chr(10) + chr(10), 2)[2]}\n"
                f"Evaluation: {len(eval_set)} windows; calibration: "
                + ", ".join(f"{k}: {len(v)} windows of {v.description}" for k, v in calib_sets.items())
                + ". CCC is per output against FP32; batch dependence = max abs change of a "
                "window's outputs when batched with three others (0 for static scales).\n\n"
                f"{table_md}\n\nMachine:\n\n```\n{machine_report()}\n```\n")
        replace_section(HERE / "RESULTS.md", args.section, body)


if __name__ == "__main__":
    main()
