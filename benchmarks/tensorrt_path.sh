#!/usr/bin/env bash
# The TensorRT path end to end on an NVIDIA GPU, measured: one prepared run.
#
#     benchmarks/tensorrt_path.sh [WORK_DIR]        (markdown section on stdout, progress on stderr)
#
# What it does, in a fresh virtual environment under WORK_DIR (default: a new /tmp folder):
#   1. installs edgeser with its export toolchain, then swaps the CPU onnxruntime for
#      onnxruntime-gpu (CUDA 12 wheels with their CUDA/cuDNN libraries) and TensorRT from PyPI
#      (tensorrt-cu12, libraries in site-packages/tensorrt_libs, put on LD_LIBRARY_PATH);
#   2. writes the full-size reference architecture with random weights
#      (benchmarks/reference_checkpoint.py, as benchmarks/peers.py uses it);
#   3. exports an FP32 bundle, and a static INT8 bundle with symmetric activations through
#      `edgeser export --engine tensorrt` (which writes the bundle, then builds its int8 engine
#      with the same function as `edgeser engine build`);
#   4. builds the fp16 engine of the FP32 bundle with `edgeser engine build` (timed);
#   5. runs `edgeser verify` on both bundles (each engine runs the reference windows);
#   6. runs `edgeser detect` on a real clip from $EDGESER_TEST_DATA with --device tensorrt and
#      with --device cuda, and compares the two;
#   7. times ONNX Runtime CUDA FP32 (the FP32 graph), the fp16 engine and the int8 engine on the
#      same GPU in one process: batch 1 and 8, 1 s and 3 s windows of real speech, warm-up, then
#      interleaved rounds (A B C A B C ...), medians; and their outputs against CUDA FP32 on those
#      windows (max abs error per output).
#
# Needs: Linux x86-64 with an NVIDIA driver for CUDA 12, python3 >= 3.10 with venv, network
# access to PyPI (or a filled pip cache), the reference config at ../shared/reference
# (beside the checkout), and real speech under $EDGESER_TEST_DATA/emotion (default
# ../shared/data). Disk: about 8 GB (torch, CUDA libraries, TensorRT, three bundles). Time: tens
# of minutes (the INT8 export calibrates on the CPU; each engine build takes minutes).
# Overrides: PYTHON (interpreter), ORT_GPU_SPEC and TRT_SPEC (pip requirement specs), REPEATS.
# The weights are random: latency, size and engine parity are those of the real architecture;
# fidelity to the trained model is not measured here.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/edgeser-trt.XXXXXX)}
PYTHON=${PYTHON:-python3}
ORT_GPU_SPEC=${ORT_GPU_SPEC:-"onnxruntime-gpu[cuda,cudnn]>=1.20"}
TRT_SPEC=${TRT_SPEC:-"tensorrt-cu12>=10,<11"}
DATA=${EDGESER_TEST_DATA:-$REPO/../shared/data}
REFERENCE=$REPO/../shared/reference/audeering-msp-dim
export REPEATS=${REPEATS:-30}

log() { printf 'tensorrt_path: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v nvidia-smi >/dev/null || die "no nvidia-smi: this script needs an NVIDIA GPU and driver"
[ -f "$REFERENCE/config.json" ] || die "no reference config at $REFERENCE"
CLIP=$(find "$DATA/emotion" -maxdepth 1 -name '*.wav' 2>/dev/null | sort | head -n 1)
[ -n "$CLIP" ] || die "no real speech under $DATA/emotion (set EDGESER_TEST_DATA)"
mkdir -p "$WORK"
export EDGESER_HOME=$WORK/home EDGESER_TEST_DATA=$DATA HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# ---------------------------------------------------------------- 1. environment
if [ ! -x "$WORK/venv/bin/python" ]; then
    log "creating the virtual environment in $WORK/venv"
    "$PYTHON" -m venv "$WORK/venv"
fi
# shellcheck disable=SC1091
. "$WORK/venv/bin/activate"
python -m pip install -q --upgrade pip >&2
python -m pip install -q "$REPO[export]" >&2
# onnxruntime and onnxruntime-gpu install the same module: keep only the GPU build.
python -m pip uninstall -q -y onnxruntime >&2 || true
python -m pip install -q "$ORT_GPU_SPEC" "$TRT_SPEC" >&2
SITE=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
LIBS=$SITE/tensorrt_libs
for dir in "$SITE"/nvidia/*/lib; do [ -d "$dir" ] && LIBS=$LIBS:$dir; done
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
python - >&2 <<'EOF'
import onnxruntime as ort
providers = ort.get_available_providers()
print("onnxruntime", ort.__version__, providers)
assert "TensorrtExecutionProvider" in providers, "onnxruntime-gpu without TensorRT provider"
EOF
cd "$WORK"

# ---------------------------------------------------------------- 2.-5. bundles and engines
seconds() { python -c 'import time; print(f"{time.monotonic():.3f}")'; }
if [ ! -f ckpt/config.json ]; then
    log "writing the full-size reference architecture with random weights"
    python "$REPO/benchmarks/reference_checkpoint.py" ckpt >&2
fi
if [ ! -f fp32/manifest.json ]; then
    log "exporting the FP32 bundle"
    edgeser export --model ckpt --quantize none --out fp32 --force >&2
fi
# From here on a failing step is recorded (exit code, stderr) and reported, not fatal.
set +e
if [ ! -f int8/manifest.json ]; then
    log "exporting the static symmetric INT8 bundle and building its int8 engine (export --engine)"
    t0=$(seconds)
    edgeser export --model ckpt --quantize int8 --recipe static-minmax --engine tensorrt \
        --allow-degraded --out int8 --force >&2 2> int8.export.err
    echo $? > int8.export.rc
    python -c "print(round($(seconds) - $t0, 1))" > int8.export_engine_s
fi
log "building the fp16 engine of the FP32 bundle (edgeser engine build)"
t0=$(seconds)
edgeser engine build fp32 --precision fp16 > fp16.build.txt 2> fp16.build.err
echo $? > fp16.build.rc
python -c "print(round($(seconds) - $t0, 1))" > fp16.build_s
log "verifying both bundles (their engines run the reference windows)"
edgeser verify fp32 > fp32.verify.txt 2> fp32.verify.err; echo $? > fp32.verify.rc
edgeser verify int8 > int8.verify.txt 2> int8.verify.err; echo $? > int8.verify.rc
log "detect on $CLIP: tensorrt (the fp16 engine) and cuda (the FP32 graph)"
edgeser detect "$CLIP" --model fp32 --device tensorrt --format json > detect.trt.json 2> detect.trt.err
echo $? > detect.trt.rc
edgeser detect "$CLIP" --model fp32 --device cuda --format json > detect.cuda.json 2> detect.cuda.err
echo $? > detect.cuda.rc
set -e

# ---------------------------------------------------------------- 6.-7. report and timings
CLIP=$CLIP REPO=$REPO python - <<'EOF'
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgeser import __version__, audio, bundle as bundles, devices, engines, frontend
from edgeser.contract import OUTPUT_NAMES, SAMPLE_RATE_HZ
from edgeser.gpu import local_gpu_info
from edgeser.inference import Session, SessionSettings

REPEATS = int(os.environ["REPEATS"])
WARMUP = 5
WINDOWS_S = (1.0, 3.0)
BATCHES = (1, 8)
CLIP = Path(os.environ["CLIP"])
DATA = Path(os.environ["EDGESER_TEST_DATA"])


def text(path, default="(missing)"):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def version(name):
    from importlib import metadata
    for dist in (name, f"{name}-cu12", f"{name}-gpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
local = local_gpu_info()
import onnxruntime as ort

print("## TensorRT path (`benchmarks/tensorrt_path.sh`)\n")
print("```")
print(f"date (UTC):   {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S}")
print(f"gpu:          {smi}")
print(f"edgeser sees: {local.describe()}, compute capability {local.compute_capability}")
print(f"cpu:          {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
print(f"python {platform.python_version()}, onnxruntime-gpu {ort.__version__} "
      f"({', '.join(ort.get_available_providers())}), tensorrt {version('tensorrt')}, "
      f"torch {version('torch')} (export only), edgeser {__version__}")
print("model:        full-size reference architecture (wav2vec2-large-robust, 12 layers), "
      "random weights")
print("```\n")

for name, what in (("fp16.build", "edgeser engine build fp32 --precision fp16"),
                   ("int8.export", "edgeser export ... --quantize int8 --engine tensorrt")):
    rc = text(f"{name}.rc", "0")
    if rc != "0":
        tail = text(f"{name}.err", "").splitlines()[-3:]
        print(f"**`{what}` failed (exit {rc})**:\n```\n" + "\n".join(tail) + "\n```\n")

fp32 = bundles.load("fp32")
int8 = bundles.load("int8") if Path("int8/manifest.json").is_file() else None
print("### Engines\n")
print("| bundle | engine | size MB | build s | parity at build (max abs error, tolerance) |")
print("|---|---|---|---|---|")
build_s = {"fp16": text("fp16.build_s"), "int8": text("int8.export_engine_s") + " (whole export)"}
for name, b in (("fp16", fp32), ("int8", int8)):
    for record in (engines.BundleFacts.of(b).records if b is not None else ()):
        size = (b.path / record.file).stat().st_size / 1e6
        print(f"| {b.path.name} ({b.manifest.quantization.describe()}) | {record.describe()} | "
              f"{size:.0f} | {build_s[name]} | {record.parity.describe()} |")
print(f"\nONNX graphs: FP32 {fp32.graph_path().stat().st_size / 1e6:.0f} MB" + (
    f", INT8 {int8.graph_path().stat().st_size / 1e6:.0f} MB" if int8 else "") + ".\n")

print("### `edgeser verify`\n")
for name in ("fp32", "int8"):
    print(f"{name} (exit {text(name + '.verify.rc')}):\n```\n{text(name + '.verify.txt')}")
    err = text(name + ".verify.err", "")
    print((err + "\n") if err else "", end="")
    print("```")

print(f"\n### `edgeser detect` on {CLIP.name}\n")
for name in ("trt", "cuda"):
    err = text(f"detect.{name}.err", "")
    print(f"- --device {'tensorrt' if name == 'trt' else 'cuda'}: exit {text(f'detect.{name}.rc')}"
          + (f"; stderr: `{err.splitlines()[-1]}`" if err else ""))
try:
    trt_doc, cuda_doc = (json.loads(Path(f"detect.{n}.json").read_text()) for n in ("trt", "cuda"))

    def values(doc):  # the result schema: files[0].windows[].scores (null when silent)
        rows = doc["files"][0]["windows"]
        return np.array([[w["scores"][label] for label in fp32.labels]
                         for w in rows if w["scores"] is not None], float)

    a, b = values(trt_doc), values(cuda_doc)
    if a.shape == b.shape and a.size:
        print(f"- {len(a)} windows; largest difference of a value, tensorrt vs cuda: "
              f"{np.nanmax(np.abs(a - b)):.3g}")
    else:
        print(f"- window values not comparable (shapes {a.shape} and {b.shape})")
except Exception as err:  # the report goes on; the detect outputs are kept in WORK_DIR
    print(f"- could not compare the two outputs ({type(err).__name__}: {err})")

# ---- timings
def speech_windows(samples, count):
    out = []
    for path in sorted((DATA / "emotion").glob("*.wav")):
        x, info = audio.read_mono(path, nonfinite="zero")
        x = frontend.resample(x, info.rate_hz)
        for start in range(0, len(x) - samples + 1, samples):
            out.append(frontend.normalize(x[start:start + samples]).astype(np.float32))
            if len(out) == count:
                return out
    while len(out) < count:  # clips shorter than the window: repeat what there is
        out.append(out[len(out) % max(len(out), 1)] if out else
                   np.random.default_rng(0).standard_normal(samples).astype(np.float32))
    return out


def session(bundle, device_name):
    device = devices.resolve_device(device_name)
    choice = engines.prepare(bundle, device, batch=max(BATCHES),
                             samples=int(max(WINDOWS_S) * SAMPLE_RATE_HZ))
    assert choice.device.fallback is None, choice.device.fallback
    s = Session(bundle, SessionSettings(threads=os.cpu_count() or 1,
                                        providers=choice.device.providers,
                                        provider_options=choice.device.provider_options),
                graph=choice.graph)
    return s, choice


variants = {}
for label, bundle, device_name in (("ORT CUDA FP32 (graph)", fp32, "cuda"),
                                   ("TensorRT fp16 engine", fp32, "tensorrt"),
                                   ("TensorRT int8 engine", int8, "tensorrt")):
    if bundle is None:
        continue
    try:
        s, choice = session(bundle, device_name)
    except Exception as err:  # reported; the other variants are still timed
        print(f"\n{label}: cannot run ({err})", end="")
        continue
    variants[label] = s
    print(f"\n{label}: {choice.graph.relative_to(bundle.path.parent)}, providers in use: "
          f"{', '.join(s.providers)}", end="")
print("\n")

print("### Latency (ms, median of interleaved rounds; min-max) and agreement with CUDA FP32\n")
print(f"{REPEATS} rounds after {WARMUP} warm-up runs per variant; each round runs every variant "
      "once, the first one rotating; `time.perf_counter_ns` around `Session.run` (inputs on the "
      "host, outputs copied back). Max abs error: over the round inputs, against ORT CUDA FP32.\n")
names = list(variants)
print("| window | batch | " + " | ".join(names) + "".join(
    f" | {n}: max abs err logits / embedding" for n in names[1:]) + " |")
print("|---|---|" + "---|" * (2 * len(names) - 1))
for window_s in WINDOWS_S:
    samples = int(window_s * SAMPLE_RATE_HZ)
    pool = speech_windows(samples, 16)
    for batch in BATCHES:
        inputs = [np.stack([pool[(i + k) % len(pool)] for k in range(batch)])
                  for i in range(REPEATS)]
        for s in variants.values():
            for _ in range(WARMUP):
                s.run(inputs[0])
        times = {n: [] for n in names}
        errors = {n: {o: 0.0 for o in OUTPUT_NAMES} for n in names[1:]}
        for r, x in enumerate(inputs):
            outs = {}
            for k in range(len(names)):
                n = names[(r + k) % len(names)]
                t = time.perf_counter_ns()
                outs[n] = variants[n].run(x)
                times[n].append((time.perf_counter_ns() - t) / 1e6)
            for n in names[1:]:
                for o, got, ref in zip(OUTPUT_NAMES, outs[n], outs[names[0]]):
                    errors[n][o] = max(errors[n][o], float(np.max(np.abs(got - ref))))
        cells = [f"{statistics.median(times[n]):.2f} ({min(times[n]):.2f}-{max(times[n]):.2f})"
                 for n in names]
        errs = [f"{errors[n]['logits']:.3g} / {errors[n]['embedding']:.3g}" for n in names[1:]]
        print(f"| {window_s:g} s | {batch} | " + " | ".join(cells + errs) + " |")
print("\nRandom weights: the errors say how closely each engine reproduces this network on real "
      "speech, not the trained model's fidelity.")
EOF
log "done; everything is in $WORK"
