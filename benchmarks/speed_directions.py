"""Where the default INT8 bundle spends its time, and what session-level options do to cold start,
memory and speed.

1. Profile: ONNX Runtime's per-node profiler over several 3 s windows (2 threads), summed by op type
   and by model part (conv feature extractor, positional conv, transformer layers, the rest), with
   the effective rate of the INT8 matrix products (their MACs over their time).
2. Session variants, each in a fresh process: ONNX Runtime defaults as edgeser runs them; weight
   prepacking disabled (memory); the graph saved optimised in ONNX Runtime's own format and loaded
   from it, with and without using the file's bytes for initializers (cold start); the graph saved
   optimised as ONNX and loaded with optimisations off. Per variant: imports, session creation,
   first 3 s window (seconds), steady median of 5 windows (ms), RSS after imports / session / first
   window and peak (MB).

    python benchmarks/speed_directions.py INT8_BUNDLE [--threads 2] [--write-results]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402

WINDOW_SAMPLES = 48000
PROFILE_RUNS = 6
# Transformer matrix products of the 12-layer model per 3 s window (149 frames), GMAC: QKV + out
# projections and feed-forward (benchmarks/peers.py counts them from config.json).
TRANSFORMER_MATMUL_GMAC = 7.499 + 14.999


def _options(threads: int, level: str = "ORT_ENABLE_ALL", entries: dict | None = None):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.enable_mem_pattern = False  # as edgeser.inference runs sessions
    o.log_severity_level = 3
    for key, value in (entries or {}).items():
        o.add_session_config_entry(key, value)
    return o


def child(path: str, config: dict, threads: int) -> None:
    """One fresh process: time the import, session creation and the first window."""
    start = time.perf_counter()
    import numpy as np
    import onnxruntime as ort

    from edgeser.memory import peak_rss_mb, rss_mb

    imports_s, rss_imports = time.perf_counter() - start, rss_mb()
    options = _options(threads, config.get("level", "ORT_ENABLE_ALL"), config.get("entries"))
    start = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session_s, rss_session = time.perf_counter() - start, rss_mb()
    x = np.random.default_rng(0).standard_normal((1, WINDOW_SAMPLES)).astype(np.float32)
    start = time.perf_counter()
    session.run(None, {"input_values": x})
    first_s, rss_first = time.perf_counter() - start, rss_mb()
    steady = []
    for _ in range(5):
        start = time.perf_counter_ns()
        session.run(None, {"input_values": x})
        steady.append((time.perf_counter_ns() - start) / 1e6)
    print(json.dumps({"imports_s": imports_s, "session_s": session_s, "first_s": first_s,
                      "steady_ms": float(np.median(steady)), "rss_imports": rss_imports,
                      "rss_session": rss_session, "rss_first": rss_first,
                      "peak": peak_rss_mb()}))


def save_optimised(src: str, dst: str, level: str, fmt: str) -> None:
    import onnxruntime as ort

    options = _options(1, level, {"session.save_model_format": fmt} if fmt == "ORT" else None)
    options.optimized_model_filepath = dst
    ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])


def profile(path: str, threads: int) -> tuple[str, float]:
    import numpy as np
    import onnxruntime as ort

    options = _options(threads)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1, WINDOW_SAMPLES)).astype(np.float32)
        session.run(None, {"input_values": x})  # warm-up, profiled too: dropped below
        for _ in range(PROFILE_RUNS):
            session.run(None, {"input_values": x})
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    first_run_end = runs[0]["ts"] + runs[0]["dur"]
    by_op: collections.Counter = collections.Counter()
    by_part: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first_run_end:
            continue
        name = e["name"]
        part = ("conv feature extractor" if "feature_extractor" in name else
                "positional conv" if "pos_conv" in name else
                "transformer layers" if "/layers." in name else "other")
        by_op[e["args"]["op_name"]] += e["dur"]
        by_part[part] += e["dur"]
    total = sum(by_op.values())
    lines = ["| op type | share | ms per 3 s window |", "|---|---:|---:|"]
    lines += [f"| {op} | {100 * us / total:.1f}% | {us / PROFILE_RUNS / 1000:.1f} |"
              for op, us in by_op.most_common(10)]
    lines += ["", "| part | share | ms per 3 s window |", "|---|---:|---:|"]
    lines += [f"| {part} | {100 * us / total:.1f}% | {us / PROFILE_RUNS / 1000:.1f} |"
              for part, us in by_part.most_common()]
    int8_ms = by_op.get("MatMulNBits", 0) / PROFILE_RUNS / 1000
    rate = TRANSFORMER_MATMUL_GMAC / (int8_ms / 1000) if int8_ms else float("nan")
    return "\n".join(lines), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, config = json.loads(args.child)
        child(path, config, args.threads)
        return
    print(machine_report(), flush=True)
    graph = str(Path(args.bundle) / "model.onnx")
    table, rate = profile(graph, args.threads)
    print(table)
    print(f"MatMulNBits effective rate: {rate:.0f} GMAC/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ort_all, onnx_all = str(Path(tmp) / "all.ort"), str(Path(tmp) / "all.onnx")
        save_optimised(graph, ort_all, "ORT_ENABLE_ALL", "ORT")
        save_optimised(graph, onnx_all, "ORT_ENABLE_ALL", "ONNX")
        ort_format = {"session.load_model_format": "ORT"}
        variants = {
            "edgeser session (ONNX, optimised at load)": (graph, {}),
            "weight prepacking disabled": (graph, {"entries": {"session.disable_prepacking": "1"}}),
            "ORT format, optimised offline": (ort_all, {"entries": ort_format}),
            "ORT format, initializers from the file's bytes": (ort_all, {"entries": {
                **ort_format, "session.use_ort_model_bytes_directly": "1",
                "session.use_ort_model_bytes_for_initializers": "1"}}),
            "ONNX optimised offline, optimisations off at load": (onnx_all,
                                                                    {"level": "ORT_DISABLE_ALL"}),
        }
        for name, (path, config) in variants.items():
            out = subprocess.run([sys.executable, __file__, args.bundle, "--threads",
                                  str(args.threads), "--child", json.dumps([path, config])],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(f"| {name} | {r['session_s']:.2f} | {r['first_s']:.2f} | "
                        f"{r['session_s'] + r['first_s']:.2f} | {r['steady_ms']:.0f} | "
                        f"{r['rss_session'] - r['rss_imports']:.0f} | {r['peak']:.0f} |")
            print(rows[-1], flush=True)
    from edgeser import bundle as bundles

    manifest = bundles.load(args.bundle).manifest
    weights_mb = manifest.files["model.onnx"].bytes / 2**20
    variants_table = ("| session variant | session s | first 3 s window s | cold start s | "
                      "steady ms | RSS session - imports MB | peak MB |\n"
                      "|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows))
    print(variants_table)
    if args.write_results:
        body = (f"Command: `python benchmarks/speed_directions.py INT8_BUNDLE --threads "
                f"{args.threads}` on the full-size reference architecture's default INT8 bundle "
                f"({manifest.quantization.describe()}, graph {weights_mb:.0f} MiB; "
                "random weights). Profile: ONNX Runtime's node profiler, "
                f"{PROFILE_RUNS} windows of 3 s after one warm-up (profiling adds some overhead).\n\n"
                f"{table}\n\nMatMulNBits (the transformer's {TRANSFORMER_MATMUL_GMAC:.1f} GMAC of "
                f"INT8 matrix products) runs at {rate:.0f} GMAC/s; the peers section measures "
                "ONNX Runtime's per-tensor MatMulInteger at about 358 GMAC/s on 2 threads.\n\n"
                "Session variants, each in a fresh process (cold start = session creation + "
                f"first window; weights = {weights_mb:.0f} MiB):\n\n{variants_table}\n\n"
                f"Machine:\n\n```\n{machine_report()}\n```\n")
        replace_section(HERE / "RESULTS.md", "speed-directions", body)


if __name__ == "__main__":
    main()
