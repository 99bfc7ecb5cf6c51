"""edgeser's bundles against the usual ways of running the same wav2vec2 model on a CPU.

    python benchmarks/peers.py --checkpoint CKPT --bundle edgeser-fp32=FP32_BUNDLE \
        --bundle edgeser-int8=INT8_BUNDLE [--windows 1,3] [--threads all,1] [--repeats 15]
        [--warmup 3] [--fidelity-windows 60] [--gap-ms 20] [--skip-memory]
        [--write-results] [--results-file benchmarks/RESULTS.md] [--section peers]

Peers, each at its best settings (printed beside its figures): transformers' PyTorch module
(eager FP32, SDPA attention, inference mode), PyTorch dynamic INT8 (``quantize_dynamic`` of every
Linear), ONNX Runtime on the plain FP32 export (full graph optimisation), Optimum's dynamic INT8
with its default avx512_vnni config and with MatMul only. Then each ``--bundle`` through
``edgeser.inference.Session`` with edgeser's own settings.

Latency: batch 1, normalised windows of real speech prepared before timing; per thread setting
and window length every variant is warmed up, then measured in interleaved rounds (each round
runs every variant once, the starting variant rotating from round to round, with a short pause
between calls so that no runtime's spinning thread pool overlaps the next call);
``time.perf_counter_ns`` around the inference call only; median, min and max. Fidelity: each
variant's logits on 3 s windows of real speech (1 s hop, several files, batch 1) against PyTorch
FP32: CCC per output and max abs error. Size: the file(s) each variant loads. Memory: one fresh
process per variant (RSS after imports, after loading, after one 3 s window, peak). Physical
bound: the model's MACs counted from config.json, and this machine's FP32 / INT8 GEMM rate
measured with ONNX Runtime on a [150x1024]x[1024x4096] MatMul / MatMulInteger.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, package_version, replace_section  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(os.environ.get("EDGESER_TEST_DATA", HERE.parents[1] / "shared" / "data"))
RATE = 16000
FIDELITY_WINDOW_S, FIDELITY_HOP_S = 3.0, 1.0
FIDELITY_WINDOWS_PER_FILE = 3
TIMING_WINDOWS = 8  # distinct real-speech windows per length, cycled over the rounds
MEMORY_WINDOW_S = 3.0
GEMM_M, GEMM_K, GEMM_N = 150, 1024, 4096  # ~ one 3 s window's frames x hidden x FFN
PEERS = ("pytorch-fp32", "pytorch-dynamic-int8", "ort-fp32", "optimum-int8-avx512_vnni",
         "optimum-int8-matmul")
REFERENCE = "pytorch-fp32"


def first_line(err: BaseException) -> str:
    text = " ".join(str(err).strip().split("\n")[0].split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# Audio


def _speech_16k(path: Path) -> np.ndarray | None:
    from edgeser import audio
    from edgeser import frontend as fe

    samples, info = audio.read_mono(path, nonfinite="zero")
    if info.frames == 0:
        return None
    return fe.resample(samples, info.rate_hz)


def speech_files() -> list:
    from edgeser.export import eval_audio

    return eval_audio.audio_files(DATA / "emotion")  # a fixed pseudo-random order of the files


def timing_windows(samples: int, count: int = TIMING_WINDOWS) -> list:
    """``count`` normalised windows of exactly ``samples`` samples, one per file (files long enough)."""
    from edgeser import frontend as fe

    out = []
    for path in speech_files():
        speech = _speech_16k(path)
        if speech is None or len(speech) < samples:
            continue
        start = (len(speech) - samples) // 2
        out.append(np.ascontiguousarray(fe.normalize(speech[start:start + samples])[None, :],
                                        dtype=np.float32))
        if len(out) == count:
            break
    if not out:
        raise SystemExit(f"no file in {DATA / 'emotion'} is {samples / RATE:g} s long")
    return out


def fidelity_windows(count: int) -> tuple[list, int]:
    """Up to ``count`` full 3 s windows (1 s hop), at most a few per file; and how many files."""
    from edgeser import frontend as fe

    full = int(FIDELITY_WINDOW_S * RATE)
    out, files = [], 0
    for path in speech_files():
        speech = _speech_16k(path)
        if speech is None:
            continue
        taken = 0
        for w in fe.windows(len(speech), FIDELITY_WINDOW_S, FIDELITY_HOP_S):
            if w.stop - w.start != full or taken == FIDELITY_WINDOWS_PER_FILE:
                continue
            out.append(np.ascontiguousarray(fe.normalize(speech[w.start:w.stop])[None, :],
                                            dtype=np.float32))
            taken += 1
        files += taken > 0
        if len(out) >= count:
            break
    return out[:count], files


# --------------------------------------------------------------------------------------------
# Variants


@dataclass
class Variant:
    name: str
    kind: str  # pytorch-fp32 | pytorch-dynamic-int8 | ort | bundle
    peer: bool
    settings: str = ""
    model_path: str = ""  # ONNX file, bundle dir or checkpoint dir (what a memory child loads)
    size_bytes: int | None = None
    failed: str | None = None
    precision: str = "fp32"
    forward: Callable | None = field(default=None, repr=False)  # [1, n] -> (logits, embedding)


def build_torch(checkpoint_dir: Path):
    """The model as the export builds it: transformers classes, the checkpoint's weights."""
    from edgeser.export import checkpoint, families, weights

    ckpt = checkpoint.read(checkpoint_dir, str(checkpoint_dir))
    _, built = families.build(ckpt.config, str(checkpoint_dir), state_dict=ckpt.state_dict)
    weights.load(built, ckpt.state_dict, str(checkpoint_dir))
    config = ckpt.config
    del ckpt
    module = built.module.eval()
    # families pins eager attention for the ONNX tracer; transformers' own default on CPU is
    # SDPA (chosen at run time from the config), the faster of the two for PyTorch.
    for sub in module.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = "sdpa"
    return module, list(built.labels), config


def quantize_torch(module):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def torch_forward(module) -> Callable:
    import torch

    def forward(x: np.ndarray):
        with torch.inference_mode():
            logits, embedding = module(torch.from_numpy(x))
        return logits.numpy(), embedding.numpy()

    return forward


def torch_settings(quantized: bool) -> str:
    import torch

    text = (f"torch {torch.__version__}, transformers {package_version('transformers')} "
            "Wav2Vec2Model + audeering head, eval(), torch.inference_mode(), SDPA attention, "
            "torch.set_num_threads(T), weight norm as transformers builds it")
    if quantized:
        text += (", torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8), "
                 f"quantized engine {torch.backends.quantized.engine}")
    return text


def ort_options(threads: int):
    """A peer's best ONNX Runtime settings: full graph optimisation, T intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


def ort_session(path: str, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(path, ort_options(threads), providers=["CPUExecutionProvider"])


def ort_forward(sess) -> Callable:
    def forward(x: np.ndarray):
        logits, embedding = sess.run(["logits", "embedding"], {"input_values": x})
        return logits, embedding

    return forward


ORT_SETTINGS = ("onnxruntime {v} CPUExecutionProvider, ORT_ENABLE_ALL, intra_op threads T, "
                "inter_op 1, sequential, ONNX Runtime's default arena and memory pattern")


def optimum_quantize(fp32_onnx: Path, work: Path, name: str, operators: list | None,
                     config_json: Path | None = None) -> tuple:
    """(quantized model path, None) or (None, one-line reason)."""
    try:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        src = work / f"{name}-in"
        src.mkdir()
        try:
            os.link(fp32_onnx, src / "model.onnx")
        except OSError:
            shutil.copyfile(fp32_onnx, src / "model.onnx")
        if config_json is not None and config_json.is_file():  # as in an Optimum model folder
            shutil.copyfile(config_json, src / "config.json")
        kwargs = {"operators_to_quantize": operators} if operators else {}
        qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers' notices about processor files
            quantizer = ORTQuantizer.from_pretrained(src, file_name="model.onnx")
            out = quantizer.quantize(save_dir=work / name, quantization_config=qconfig)
        (src / "model.onnx").unlink()
        del quantizer
        gc.collect()
        files = sorted(Path(out).glob("*.onnx"))
        if not files:
            return None, "ORTQuantizer wrote no .onnx file"
        return files[0], None
    except Exception as err:  # any failure is a result, never the end of the benchmark
        gc.collect()
        return None, f"at quantization: {first_line(err)}"


def quantized_ops(path: Path) -> str:
    """Which integer ops a quantized graph holds, e.g. 'MatMulInteger x99, ConvInteger x8 (...)'."""
    import collections

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = collections.Counter(n.op_type for n in model.graph.node)
    text = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())
                     if "Integer" in op or "Quant" in op or "NBits" in op)
    grouped = [n.name for n in model.graph.node if n.op_type == "ConvInteger"
               and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    if grouped:
        text += f"; grouped ConvInteger (the positional conv): {', '.join(grouped)}"
    return text or "no integer ops"


def onnx_size(path: Path) -> int:
    """The graph file plus external-data files beside it that carry its name."""
    path = Path(path)
    return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".*"))


def bundle_info(spec: str) -> tuple:
    """(name, bundle, precision) for NAME=PATH."""
    from edgeser import bundle as bundles

    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"--bundle wants NAME=PATH, got {spec!r}")
    b = bundles.load(path)
    return name, b, b.manifest.quantization.precision


def bundle_settings(b, threads_text: str = "T") -> str:
    from edgeser.inference import SessionSettings

    described = SessionSettings(threads=1).describe().replace("threads=1", f"threads={threads_text}")
    return (f"edgeser.inference.Session({described}); intra_op threads T, inter_op 1, "
            f"ORT_ENABLE_ALL, sequential; quantization {b.manifest.quantization.describe()}")


# --------------------------------------------------------------------------------------------
# Timing


def summarise(times_ms: list) -> dict:
    a = np.asarray(times_ms)
    return {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()), "n": len(a)}


def time_interleaved(runners: dict, inputs: list, repeats: int, warmup: int, gap_s: float,
                     failures: dict) -> dict:
    """name -> list of ms. A variant that raises is dropped and its reason put in ``failures``."""
    live = dict(runners)
    for name, fn in list(live.items()):
        try:
            for i in range(warmup):
                fn(inputs[i % len(inputs)])
        except Exception as err:
            failures[name] = f"at first run: {first_line(err)}"
            del live[name]
    times: dict = {name: [] for name in live}
    names = list(live)
    for r in range(repeats):
        x = inputs[r % len(inputs)]
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            if name not in live:
                continue
            time.sleep(gap_s)
            try:
                t0 = time.perf_counter_ns()
                live[name](x)
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
            except Exception as err:
                failures[name] = f"during timing: {first_line(err)}"
                del live[name]
                times.pop(name, None)
    return {name: t for name, t in times.items() if name in live}


# --------------------------------------------------------------------------------------------
# Physical bound


def count_macs(config: dict, samples: int) -> dict:
    """Multiply-accumulates of one window of ``samples`` samples, by part (batch 1)."""
    t, c_in, conv = samples, 1, 0
    for dim, kernel, stride in zip(config["conv_dim"], config["conv_kernel"], config["conv_stride"]):
        t = (t - kernel) // stride + 1
        conv += t * dim * c_in * kernel
        c_in = dim
    frames = t
    d, ffn = config["hidden_size"], config["intermediate_size"]
    layers = config["num_hidden_layers"]
    k_pos, groups = config["num_conv_pos_embeddings"], config["num_conv_pos_embedding_groups"]
    pos_frames = frames + 2 * (k_pos // 2) - k_pos + 1  # padding k/2 each side (the extra frame is cut)
    labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 3)
    parts = {
        "feature extractor convs": conv,
        "feature projection": frames * c_in * d,
        "positional conv": pos_frames * d * (d // groups) * k_pos,
        "attention projections (QKV + out, 4 T d^2)": layers * 4 * frames * d * d,
        "attention scores + context (2 T^2 d)": layers * 2 * frames * frames * d,
        "feed-forward (2 T d ffn)": layers * 2 * frames * d * ffn,
        "head (dense + out_proj)": d * d + d * labels,
    }
    return {"frames": frames, "layers": layers, "parts": parts, "total": sum(parts.values())}


def gemm_runners(threads: int) -> dict:
    """FP32 MatMul and INT8 MatMulInteger sessions (spinning off: they alternate back to back)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def session(model):
        options = ort_options(threads)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])

    b32 = numpy_helper.from_array(rng.standard_normal((GEMM_K, GEMM_N)).astype(np.float32), "B")
    fp32 = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"])], "gemm_fp32",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [GEMM_M, GEMM_K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [GEMM_M, GEMM_N])], [b32]),
        opset_imports=[helper.make_opsetid("", 17)])
    b8 = numpy_helper.from_array(rng.integers(-127, 128, (GEMM_K, GEMM_N)).astype(np.int8), "B")
    int8 = helper.make_model(helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "gemm_int8",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [GEMM_M, GEMM_K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [GEMM_M, GEMM_N])], [b8]),
        opset_imports=[helper.make_opsetid("", 17)])
    s32, s8 = session(fp32), session(int8)
    a32 = rng.standard_normal((GEMM_M, GEMM_K)).astype(np.float32)
    a8 = rng.integers(0, 256, (GEMM_M, GEMM_K)).astype(np.uint8)
    return {"fp32 MatMul": lambda _x: s32.run(None, {"A": a32}),
            "int8 MatMulInteger (u8 x s8)": lambda _x: s8.run(None, {"A": a8})}


# --------------------------------------------------------------------------------------------
# Memory (one fresh process per variant)


def child_memory(kind: str, model_path: str) -> None:
    from edgeser.memory import peak_rss_mb, rss_mb

    threads = os.cpu_count() or 1
    x = np.random.default_rng(0).standard_normal((1, int(MEMORY_WINDOW_S * RATE))).astype(np.float32)
    x = (x - x.mean()) / x.std()
    if kind.startswith("pytorch"):
        import torch

        import edgeser.export.checkpoint  # noqa: F401  (the import cost belongs to this peer)
        import edgeser.export.families  # noqa: F401
        import transformers  # noqa: F401

        torch.set_num_threads(threads)
        after_imports = rss_mb()
        module, _, _ = build_torch(Path(model_path))
        if kind == "pytorch-dynamic-int8":
            quantized = quantize_torch(module)
            del module
            gc.collect()
            module = quantized
        forward = torch_forward(module)
    elif kind == "ort":
        import onnxruntime  # noqa: F401

        after_imports = rss_mb()
        forward = ort_forward(ort_session(model_path, threads))
    elif kind == "bundle":
        import onnxruntime  # noqa: F401  (Session imports it lazily; count it with the imports)

        from edgeser import bundle as bundles
        from edgeser.inference import Session, SessionSettings

        after_imports = rss_mb()
        forward = Session(bundles.load(model_path), SessionSettings(threads=threads)).run
    else:
        raise SystemExit(f"unknown memory child kind {kind!r}")
    after_load = rss_mb()
    forward(x)
    after_run = rss_mb()
    print(json.dumps({"after_imports": after_imports, "after_load": after_load,
                      "after_run": after_run, "peak": peak_rss_mb()}))


def measure_memory(v: Variant, checkpoint: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--checkpoint", str(checkpoint),
           "--child-memory", v.kind, "--child-model", v.model_path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"failed": "memory child timed out"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"memory child exited {out.returncode}: {tail[:200]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Main


RANDOM_HEADS = 200


def random_head_ccc(reference: np.ndarray, candidate: np.ndarray, heads: int = RANDOM_HEADS,
                    seed: int = 0) -> tuple:
    """(median, 5th percentile) CCC of ``heads`` random unit projections of the pooled
    embedding: the pessimistic proxy (a random head follows directions that barely vary on
    speech) beside the checkpoint's own head."""
    from edgeser.export.parity import ccc

    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((reference.shape[1], heads))
    directions /= np.linalg.norm(directions, axis=0)
    r, c = reference @ directions, candidate @ directions
    values = np.array([ccc(r[:, k], c[:, k]) for k in range(heads)])
    return float(np.median(values)), float(np.percentile(values, 5))


def parse_threads(text: str) -> list:
    out = []
    for part in text.split(","):
        part = part.strip()
        t = (os.cpu_count() or 1) if part == "all" else int(part)
        label = f"all ({t})" if part == "all" else str(t)
        if t < 1:
            raise SystemExit(f"--threads: {part!r} is not a thread count")
        if t not in [x[0] for x in out]:
            out.append((t, label))
    return out


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="transformers checkpoint directory (audeering layout)")
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=PATH",
                        help="an edgeser bundle to measure (repeatable); the first FP32 one's "
                             "graph is the plain ONNX export the ORT and Optimum peers use")
    parser.add_argument("--fp32-onnx", type=Path, default=None,
                        help="the plain FP32 ONNX export (default: the first FP32 bundle's graph)")
    parser.add_argument("--windows", default="1,3", help="window lengths in seconds")
    parser.add_argument("--threads", default="all,1", help="thread settings: 'all' or a count")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gap-ms", type=float, default=20.0,
                        help="pause before each timed call (lets spinning thread pools go idle)")
    parser.add_argument("--fidelity-windows", type=int, default=60)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--fitted-head", action="store_true",
                        help="the checkpoint's head outputs the top principal directions of its "
                             "pooled embedding on real speech (benchmarks/reference_checkpoint.py "
                             "--fitted-head); said so in the written section")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="peers")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(args.child_memory, args.child_model)
        return

    started = time.perf_counter()
    report = machine_report(("numpy", "onnxruntime", "onnx", "torch", "transformers", "optimum",
                             "optimum-onnx", "edgeser"))
    print(report, flush=True)
    window_lengths = [float(w) for w in args.windows.split(",")]
    thread_settings = parse_threads(args.threads)
    gap_s = args.gap_ms / 1e3

    bundles = [bundle_info(spec) for spec in args.bundle]
    if not bundles:
        raise SystemExit("give at least one --bundle NAME=PATH")
    fp32_onnx = args.fp32_onnx or next(
        (b.graph_path("full") for _, b, p in bundles if p == "fp32"), None)
    if fp32_onnx is None:
        raise SystemExit("no FP32 bundle among --bundle; name the plain FP32 export with --fp32-onnx")
    default_name = next((n for n, _, p in bundles if p == "int8"), bundles[0][0])

    import onnxruntime as ort
    import torch

    ort_text = ORT_SETTINGS.format(v=ort.__version__)
    checkpoint_bytes = sum(p.stat().st_size for p in args.checkpoint.glob("*.safetensors")) or sum(
        p.stat().st_size for p in args.checkpoint.glob("pytorch_model*.bin"))

    # ---- build every variant once (ONNX Runtime sessions come later, per thread setting)
    variants: dict = {}
    t0 = time.perf_counter()
    torch.set_num_threads(thread_settings[0][0])
    fp32_module, labels, config = build_torch(args.checkpoint)
    variants["pytorch-fp32"] = Variant(
        "pytorch-fp32", "pytorch-fp32", True, torch_settings(False), str(args.checkpoint),
        checkpoint_bytes, forward=torch_forward(fp32_module))
    print(f"built pytorch-fp32 in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    q_module = None
    v = Variant("pytorch-dynamic-int8", "pytorch-dynamic-int8", True, torch_settings(True),
                str(args.checkpoint), precision="int8")
    try:
        q_module = quantize_torch(fp32_module)
        with tempfile.NamedTemporaryFile(suffix=".pt") as fh:
            torch.save(q_module.state_dict(), fh.name)
            v.size_bytes = os.path.getsize(fh.name)
        v.forward = torch_forward(q_module)
    except Exception as err:
        v.failed = f"at quantization: {first_line(err)}"
    variants[v.name] = v
    gc.collect()
    print(f"built pytorch-dynamic-int8 in {time.perf_counter() - t0:.1f} s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="edgeser-peers-"))
    try:
        variants["ort-fp32"] = Variant("ort-fp32", "ort", True, ort_text + f"; graph {fp32_onnx}",
                                       str(fp32_onnx), onnx_size(fp32_onnx))
        for name, operators, config_text in (
                ("optimum-int8-avx512_vnni", None,
                 "AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)"),
                ("optimum-int8-matmul", ["MatMul"],
                 "AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False, "
                 "operators_to_quantize=['MatMul'])")):
            t0 = time.perf_counter()
            path, failed = optimum_quantize(Path(fp32_onnx), work, name, operators,
                                            args.checkpoint / "config.json")
            ops = ""
            if path:
                try:
                    ops = f"; quantized graph: {quantized_ops(path)}"
                except Exception as err:
                    ops = f"; (could not list its ops: {first_line(err)})"
            v = Variant(name, "ort", True,
                        f"optimum {package_version('optimum')} ORTQuantizer, {config_text}; "
                        + ort_text + ops, str(path or ""), onnx_size(path) if path else None,
                        failed, precision="int8")
            variants[name] = v
            print(f"quantized {name} in {time.perf_counter() - t0:.1f} s"
                  + (f": FAILED {failed}" if failed else f" ({v.size_bytes / 1e6:.0f} MB)"), flush=True)
        for name, b, precision in bundles:
            variants[name] = Variant(name, "bundle", False, bundle_settings(b), str(b.path),
                                     onnx_size(b.graph_path("full")), precision=precision)

        # ---- analytic MACs
        macs = {w: count_macs(config, int(round(w * RATE))) for w in sorted(set(window_lengths) | {3.0})}
        m3 = macs[3.0]
        print("\nMACs of one 3 s window (batch 1, "
              f"{m3['frames']} frames, {m3['layers']} layers):")
        for part, n in m3["parts"].items():
            print(f"  {part:<45} {n / 1e9:7.3f} GMAC")
        print(f"  {'total':<45} {m3['total'] / 1e9:7.3f} GMAC = {m3['total'] / 3e9:.2f} GMAC per "
              "second of audio", flush=True)

        # ---- inputs
        inputs = {w: timing_windows(int(round(w * RATE))) for w in window_lengths}
        fid_inputs, fid_files = fidelity_windows(args.fidelity_windows)
        print(f"\ntiming inputs: {', '.join(f'{len(x)} windows of {w:g} s' for w, x in inputs.items())}"
              f"; fidelity: {len(fid_inputs)} windows of 3 s from {fid_files} files", flush=True)

        latency: dict = {}  # (threads, window, name) -> summary
        gemm: dict = {}  # (threads, name) -> summary
        fidelity_out: dict = {}
        embedding_out: dict = {}
        fidelity_threads = None
        for threads, t_label in thread_settings:
            torch.set_num_threads(threads)
            runners, failures = {}, {}
            sessions = []
            for name, v in variants.items():
                if v.failed:
                    continue
                if v.kind.startswith("pytorch"):
                    runners[name] = v.forward
                    continue
                try:
                    if v.kind == "ort":
                        sess = ort_session(v.model_path, threads)
                        runners[name] = ort_forward(sess)
                    else:
                        from edgeser import bundle as bundles_mod
                        from edgeser.inference import Session, SessionSettings

                        sess = Session(bundles_mod.load(v.model_path), SessionSettings(threads=threads))
                        runners[name] = sess.run
                    sessions.append(sess)
                except Exception as err:
                    v.failed = f"at session creation: {first_line(err)}"
                    print(f"{name}: FAILED {v.failed}", flush=True)
            print(f"\nthreads {t_label}: torch {torch.get_num_threads()} threads, "
                  f"ORT intra_op {threads}", flush=True)

            g = time_interleaved(gemm_runners(threads), [None], max(args.repeats, 20), args.warmup,
                                 0.0, failures)
            for name, t in g.items():
                gemm[(threads, name)] = summarise(t)
                s = gemm[(threads, name)]
                s["gmacs"] = GEMM_M * GEMM_K * GEMM_N / (s["median"] / 1e3) / 1e9
                s["best_gmacs"] = GEMM_M * GEMM_K * GEMM_N / (s["min"] / 1e3) / 1e9
                print(f"  GEMM {name}: median {s['median']:.2f} ms = {s['gmacs']:.1f} GMAC/s "
                      f"(fastest run {s['best_gmacs']:.1f} GMAC/s)", flush=True)
            gc.collect()

            for w in window_lengths:
                t0 = time.perf_counter()
                times = time_interleaved(runners, inputs[w], args.repeats, args.warmup, gap_s, failures)
                for name, t in times.items():
                    latency[(threads, w, name)] = summarise(t)
                for name in failures:
                    runners.pop(name, None)
                print(f"  window {w:g} s ({time.perf_counter() - t0:.0f} s): " + ", ".join(
                    f"{name} {latency[(threads, w, name)]['median']:.1f} ms" for name in times), flush=True)
            for name, reason in failures.items():
                if not variants[name].failed:
                    variants[name].failed = reason
                    print(f"  {name}: FAILED {reason}", flush=True)
                runners.pop(name, None)

            if fidelity_threads is None and fid_inputs:
                fidelity_threads = t_label
                t0 = time.perf_counter()
                for name, fn in runners.items():
                    try:
                        outs = [fn(x) for x in fid_inputs]
                        fidelity_out[name] = np.stack([o[0][0] for o in outs]).astype(np.float64)
                        embedding_out[name] = np.stack([o[1][0] for o in outs]).astype(np.float64)
                    except Exception as err:
                        variants[name].failed = f"on fidelity windows: {first_line(err)}"
                print(f"  fidelity outputs of {len(runners)} variants on {len(fid_inputs)} windows "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            runners.clear()
            del sessions
            gc.collect()

        del fp32_module, q_module
        for v in variants.values():
            v.forward = None
        gc.collect()

        # ---- fidelity metrics
        from edgeser.export.parity import ccc

        fidelity: dict = {}
        ref = fidelity_out.get(REFERENCE)
        for name, out in fidelity_out.items():
            if ref is None:
                break
            fidelity[name] = {"ccc": [ccc(ref[:, k], out[:, k]) for k in range(ref.shape[1])],
                              "max_abs": float(np.max(np.abs(ref - out)))}
            if name in embedding_out and REFERENCE in embedding_out:
                fidelity[name]["random_heads"] = random_head_ccc(embedding_out[REFERENCE],
                                                                 embedding_out[name])

        # ---- memory, one fresh process each
        memory: dict = {}
        if not args.skip_memory:
            print("\nmemory (fresh process per variant):", flush=True)
            for name, v in variants.items():
                if v.failed or not v.model_path:
                    continue
                t0 = time.perf_counter()
                memory[name] = measure_memory(v, args.checkpoint)
                print(f"  {name} ({time.perf_counter() - t0:.0f} s): {memory[name]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # ---- tables
    peers_ok = [n for n in PEERS if n in variants]
    lat_lines = ["| variant | threads | window s | median ms | min–max ms | ratio to fastest peer |",
                 "|---|---|---:|---:|---:|---:|"]
    summary_lines = []
    for threads, t_label in thread_settings:
        for w in window_lengths:
            peer_medians = {n: latency[(threads, w, n)]["median"] for n in peers_ok
                            if (threads, w, n) in latency}
            fastest = min(peer_medians, key=peer_medians.get) if peer_medians else None
            for name, v in variants.items():
                s = latency.get((threads, w, name))
                if s is None:
                    lat_lines.append(f"| {name} | {t_label} | {w:g} | failed: {v.failed or 'not measured'} | | |")
                    continue
                ratio = s["median"] / peer_medians[fastest] if fastest else float("nan")
                mark = " (fastest peer)" if name == fastest else ""
                lat_lines.append(f"| {name}{mark} | {t_label} | {w:g} | {s['median']:.1f} | "
                                 f"{s['min']:.1f}–{s['max']:.1f} | {fmt(ratio, '.2f')} |")
            d = latency.get((threads, w, default_name))
            if d and fastest:
                summary_lines.append(
                    f"- threads {t_label}, {w:g} s window: edgeser default ({default_name}) "
                    f"{d['median']:.1f} ms vs fastest peer ({fastest}) {peer_medians[fastest]:.1f} ms: "
                    f"ratio {d['median'] / peer_medians[fastest]:.2f}")
    latency_md = "\n".join(lat_lines)

    names = labels or ["out0", "out1", "out2"]
    fid_lines = [f"| variant | CCC {' / '.join(names)} | random heads: median / 5th pct CCC | "
                 "max abs | model MB | RSS after imports MB | "
                 "RSS after load MB | RSS after one 3 s window MB | peak MB |",
                 "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in variants.items():
        f = fidelity.get(name)
        m = memory.get(name, {})
        size = fmt(v.size_bytes / 1e6, ".0f") if v.size_bytes else "n/a"
        if v.failed and not f:
            fid_lines.append(f"| {name} | failed: {v.failed} | | | {size} | | | | |")
            continue
        cccs = " / ".join(f"{c:.4f}" for c in f["ccc"]) if f else "n/a"
        heads = f.get("random_heads") if f else None
        heads_text = f"{heads[0]:.4f} / {heads[1]:.4f}" if heads else "n/a"
        mem = (["n/a"] * 4 if not m else [m["failed"], "", "", ""] if "failed" in m else
               [f"{m[k]:.0f}" for k in ("after_imports", "after_load", "after_run", "peak")])
        fid_lines.append(f"| {name} | {cccs} | {heads_text} | {fmt(f['max_abs'], '.2e') if f else 'n/a'} | {size} | "
                         + " | ".join(mem) + " |")
    fidelity_md = "\n".join(fid_lines)

    mac_lines = ["| part | GMAC per 3 s window | GMAC per second of audio |", "|---|---:|---:|"]
    for part, n in m3["parts"].items():
        mac_lines.append(f"| {part} | {n / 1e9:.3f} | {n / 3e9:.3f} |")
    mac_lines.append(f"| **total** | **{m3['total'] / 1e9:.2f}** | **{m3['total'] / 3e9:.2f}** |")
    macs_md = "\n".join(mac_lines)

    fp32_names = [n for n, v in variants.items() if v.precision == "fp32"]
    int8_names = [n for n, v in variants.items() if v.precision == "int8"]
    bound_lines = ["| threads | window s | GMAC per window | FP32 GEMM GMAC/s (fastest run) | "
                   "INT8 GEMM GMAC/s (fastest run) | "
                   "FP32 bound ms | INT8 bound ms | fastest FP32 measured ms | fastest INT8 measured ms "
                   "| edgeser default ms | default / INT8 bound |",
                   "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for threads, t_label in thread_settings:
        g32 = gemm.get((threads, "fp32 MatMul"), {})
        g8 = gemm.get((threads, "int8 MatMulInteger (u8 x s8)"), {})
        r32, r8 = g32.get("gmacs"), g8.get("gmacs")
        for w in window_lengths:
            total = macs[w]["total"]
            b32 = total / (r32 * 1e9) * 1e3 if r32 else None
            b8 = total / (r8 * 1e9) * 1e3 if r8 else None

            def best(group):
                got = {n: latency[(threads, w, n)]["median"] for n in group if (threads, w, n) in latency}
                if not got:
                    return "n/a"
                n = min(got, key=got.get)
                return f"{got[n]:.1f} ({n})"

            d = latency.get((threads, w, default_name), {}).get("median")
            bound_lines.append(
                f"| {t_label} | {w:g} | {total / 1e9:.2f} | {fmt(r32)} ({fmt(g32.get('best_gmacs'))}) | "
                f"{fmt(r8)} ({fmt(g8.get('best_gmacs'))}) | {fmt(b32)} | "
                f"{fmt(b8)} | {best(fp32_names)} | {best(int8_names)} | {fmt(d)} | "
                f"{fmt(d / b8 if d and b8 else None, '.2f')} |")
    bound_md = "\n".join(bound_lines)

    vnni = variants.get("optimum-int8-avx512_vnni")
    vnni_text = ""
    if vnni is not None:
        vnni_text = (f"Optimum's default avx512_vnni config failed {vnni.failed}." if vnni.failed else
                     "Optimum's default avx512_vnni config did not fail on this graph (the plain "
                     "export, weight norm folded into a plain weight): it quantized (its integer "
                     "ops are listed in its settings above), ran, and is measured like the others.")
    settings_md = "\n".join(f"- `{name}`: {v.settings}" + (f" — **failed {v.failed}**" if v.failed else "")
                            for name, v in variants.items())
    print("\nSettings:\n" + settings_md)
    if vnni_text:
        print("\n" + vnni_text)
    print("\nLatency (batch 1):\n\n" + latency_md)
    if summary_lines:
        print("\n" + "\n".join(summary_lines))
    print(f"\nFidelity against {REFERENCE} on {len(fid_inputs)} windows (threads {fidelity_threads}), "
          "size and memory:\n\n" + fidelity_md)
    print("\nMACs:\n\n" + macs_md)
    print("\nPhysical bound (all MACs at this machine's GEMM rate):\n\n" + bound_md)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s", flush=True)

    if args.write_results:
        command = "python benchmarks/peers.py " + " ".join(sys.argv[1:])
        date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
        memory_text = ("Memory: one fresh process per variant with all threads, RSS (MB, 2^20 bytes) "
                       "after the imports the variant needs, after loading the model / creating the "
                       "session, after one 3 s window, and the peak (VmHWM); the PyTorch dynamic INT8 "
                       "process builds the FP32 model and quantizes it, so its peak includes both."
                       if not args.skip_memory else "Memory: not measured in this run (`--skip-memory`).")
        body = (
            f"## Peers: edgeser against PyTorch, ONNX Runtime and Optimum ({args.section})\n\n"
            f"Script: [`benchmarks/peers.py`](peers.py); command: `{command}`; run {date} (UTC).\n\n"
            "The weights are random: the checkpoint has the full-size reference architecture "
            "(the published audeering config), which is what latency, memory and size depend on"
            + ("; its head is fitted to the top three principal directions of the pooled "
               "embedding on real speech, so its outputs move with the input as a trained "
               "head's do (the random-head column is the pessimistic proxy beside it). "
               if args.fitted_head else ". ") +
            f"Fidelity is measured on real speech ({len(fid_inputs)} normalised 3 s windows, 1 s hop, "
            f"from {fid_files} files of `../shared/data/emotion`, batch 1) against PyTorch FP32 of "
            "the same random-weight model: it says how faithfully each variant reproduces this "
            "network, not the trained one.\n\n"
            f"Latency: batch 1, {len(next(iter(inputs.values())))} real-speech windows per length cycled "
            f"over the rounds; warm-up calls per variant: {args.warmup}, then {args.repeats} interleaved "
            "rounds (every variant once per round, starting variant rotating, "
            f"{args.gap_ms:g} ms pause before each call), `time.perf_counter_ns` around the inference "
            "call only. Ratio = the variant's median over the fastest peer's median (peers: the "
            f"PyTorch, ONNX Runtime and Optimum variants). edgeser's default bundle here: `{default_name}`.\n\n"
            f"Settings:\n\n{settings_md}\n\n{vnni_text}\n\n### Latency\n\n{latency_md}\n\n"
            + ("\n".join(summary_lines) + "\n\n" if summary_lines else "")
            + f"### Fidelity, size, memory\n\nFidelity threads: {fidelity_threads}. Model MB: the "
            "file(s) the variant loads (PyTorch FP32: the safetensors checkpoint; PyTorch dynamic "
            "INT8: `torch.save` of its state dict; ONNX variants: the graph and its external data). "
            f"{memory_text}\n\n{fidelity_md}\n\n"
            "### Physical bound\n\nMACs counted from the checkpoint's config.json (convolutions and "
            "matrix products only; layer norms, GELU, softmax and the weight-norm are not counted):\n\n"
            f"{macs_md}\n\nGEMM throughput of this machine with ONNX Runtime (same timing method, "
            f"median of {max(args.repeats, 20)} interleaved runs, back to back with thread-pool "
            "spinning off, so neither session's idle workers compete with the other's run; the "
            "fastest run in parentheses): FP32 `MatMul` and INT8 "
            f"`MatMulInteger` (uint8 activations x int8 weights, int32 out; activation quantization "
            f"not included) of [{GEMM_M}x{GEMM_K}]·[{GEMM_K}x{GEMM_N}]. Bound = the window's MACs at "
            "that (median) rate, i.e. the latency if every MAC ran as fast as this one GEMM; the "
            "feature extractor's convolutions are GEMMs with thousands of rows, faster per MAC than "
            "this 150-row product, so a measured latency can come in under the FP32 bound.\n\n"
            f"{bound_md}\n\nMachine:\n\n```\n{report}\n```\n")
        replace_section(str(args.results_file), args.section, body)
        print(f"wrote section {args.section!r} of {args.results_file}")


if __name__ == "__main__":
    main()
