"""Distilled students against their teacher: held-out fidelity, training time, size and speed.

    python benchmarks/distill.py [--work DIR] [--steps 400] [--time-budget 2h] [--tiny-steps 400]
        [--branch-gain 1.0] [--repeats 15] [--warmup 3] [--detect-seconds 60]
        [--write-results] [--results-file benchmarks/RESULTS.md] [--section distill]
    python benchmarks/distill.py --smoke        # a shrunk architecture, minutes; checks the script

Teacher: the full-size reference architecture (../shared/reference/audeering-msp-dim/config.json,
wav2vec2-large-robust, 12 layers) with transformers' random initialisation and a head fitted to
the three leading principal directions of the pooled embedding on real speech
(../shared/data/emotion), so its outputs move across speech the way a trained model's do (a
random head's barely move and CCC would measure noise). ``--branch-gain G`` scales every layer's
residual branches by G before the fit: at G = 1 a randomly initialised layer changes the
representation little, so dropping layers costs little and the figures say little about what
distillation recovers; the printed "pruning alone" row shows which case a run is in.

Students, trained with ``edgeser distill`` on that audio with a held-out split by speaker
(RAVDESS actors, EmoDB speakers, the Korean speaker): a 4-layer student (teacher layers evenly
spaced, FFN and widths kept, conv front end frozen) and the ``tiny`` preset. Compared with the
teacher pruned to its first 4 layers (``edgeser export --layers 4``, no training).

Figures: held-out CCC per output (student vs teacher) and the teacher's spread; training wall
time; INT8 bundles (``edgeser export``, default recipe) of teacher, student and tiny timed in the
same run, interleaved, batch 1 on 3 s windows of real speech with one ONNX Runtime thread (median
of ``--repeats``), and ``edgeser detect`` (``Detector``, one thread) on ``--detect-seconds`` of
held-out speech as real-time factor; whether the tiny student runs >= 10x real time on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(os.environ.get("EDGESER_TEST_DATA", HERE.parents[1] / "shared" / "data"))
REFERENCE = HERE.parents[1] / "shared" / "reference" / "audeering-msp-dim"
SPEAKERS = r"^(emodb__\d\d)|^(kor__sub\d{4})|^(ravdess)__.*-(\d\d)\.wav$"
FIT_WINDOWS = 64
SMOKE_SIZES = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
               "intermediate_size": 64, "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16,
               "num_conv_pos_embedding_groups": 2}


def speech_windows(files: list, count: int) -> list:
    """Normalised 3 s windows (1 s hop) of real speech, at most ``count``."""
    from edgeser import audio
    from edgeser import frontend as fe

    windows = []
    for path in files:
        samples, info = audio.read_mono(path)
        x = fe.resample(samples, info.rate_hz)
        windows += [fe.normalize(x[w.start:w.start + w.length])
                    for w in fe.windows(len(x), 3.0, 1.0) if w.length == 48000]
        if len(windows) >= count:
            break
    return windows[:count]


def write_teacher(out: Path, files: list, *, smoke: bool, gain: float, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = json.loads((REFERENCE / "config.json").read_text())
    if smoke:
        config.update(SMOKE_SIZES)
    torch.manual_seed(seed)
    backbone = Wav2Vec2Model(Wav2Vec2Config(**{k: v for k, v in config.items()
                                               if k != "architectures"})).eval()
    with torch.no_grad():
        for layer in backbone.encoder.layers:
            layer.feed_forward.output_dense.weight.mul_(gain)
            layer.attention.out_proj.weight.mul_(gain)
        pooled = torch.stack([backbone(torch.from_numpy(w)[None]).last_hidden_state.mean(1)[0]
                              for w in speech_windows(files, FIT_WINDOWS)]).numpy()
    pooled = pooled.astype(np.float64)
    hidden = config["hidden_size"]
    mean = pooled.mean(0)
    _, singular, basis = np.linalg.svd(pooled - mean, full_matrices=False)
    spread = singular[:3] / np.sqrt(len(pooled))
    dense = np.zeros((hidden, hidden))
    dense[:3] = 0.8 * basis[:3] / spread[:, None]  # unit-variance inputs to tanh
    out_proj = np.zeros((3, hidden))
    out_proj[[0, 1, 2], [0, 1, 2]] = 0.2
    state = {f"wav2vec2.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    state.update({
        "classifier.dense.weight": torch.tensor(dense, dtype=torch.float32),
        "classifier.dense.bias": torch.tensor(-(dense @ mean), dtype=torch.float32),
        "classifier.out_proj.weight": torch.tensor(out_proj, dtype=torch.float32),
        "classifier.out_proj.bias": torch.full((3,), 0.5)})
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(REFERENCE / "preprocessor_config.json", out / "preprocessor_config.json")
    return out


def outputs_on(model: Path, windows, layers: int | None = None) -> tuple:
    """Logits, embeddings and labels of a checkpoint on prepared windows (PyTorch, as distill
    does), optionally pruned to its first ``layers`` layers (``edgeser export --layers``)."""
    import torch

    from edgeser.export import checkpoint, families, parity, weights

    ckpt = checkpoint.read(model, str(model))
    _, built = families.build(ckpt.config, str(model), state_dict=ckpt.state_dict, layers=layers)
    weights.load(built, ckpt.state_dict, str(model), layers_kept=layers)
    built.module.eval()

    def forward(batch):
        with torch.inference_mode():
            logits, embedding = built.module(torch.from_numpy(batch))
        return logits.numpy(), embedding.numpy()

    out = parity.run(forward, windows)
    return out.logits, out.embedding, list(built.labels)


def pruned_fidelity(teacher: Path, layers: int, heldout) -> dict:
    """The teacher pruned to its first ``layers`` layers, untrained, against the teacher."""
    from edgeser.export import distill_eval

    logits, embedding, labels = outputs_on(teacher, heldout.windows, layers=layers)
    return distill_eval.fidelity("regression", labels, heldout.teacher_logits,
                                 heldout.teacher_embedding, logits, embedding, heldout.refs)


def ort_runner(bundle_dir: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input_values": x[None, :]})


def time_interleaved(runners: dict, inputs: list, repeats: int, warmup: int) -> dict:
    for fn in runners.values():
        for i in range(warmup):
            fn(inputs[i % len(inputs)])
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(repeats):
        x = inputs[r % len(inputs)]
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            t0 = time.perf_counter_ns()
            runners[name](x)
            times[name].append((time.perf_counter_ns() - t0) / 1e6)
    return {name: float(np.median(t)) for name, t in times.items()}


def detect_rtf(bundle_dir: Path, samples: np.ndarray) -> float:
    from edgeser import Detector

    detector = Detector.load(bundle_dir, threads=1)
    detector.detect(samples[:48000], 16000)  # warm-up
    t0 = time.perf_counter()
    detector.detect(samples, 16000)
    return (len(samples) / 16000) / (time.perf_counter() - t0)


class Quiet:
    def start(self, description, total=None):
        print(f"  .. {description}", file=sys.stderr, flush=True)

    def advance(self, units=1):
        pass

    def note(self, message):
        print(f"  {message}", file=sys.stderr, flush=True)

    def status(self, text):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--tiny-steps", type=int, default=400)
    parser.add_argument("--time-budget", default=None, help="per student, e.g. 2h")
    parser.add_argument("--branch-gain", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--detect-seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--smoke", action="store_true", help="shrunk architecture, few steps")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="distill")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.tiny_steps, args.repeats, args.warmup = 5, 5, 3, 1
        args.detect_seconds = 10.0

    from edgeser import audio
    from edgeser import frontend as fe
    from edgeser.export import ExportOptions, export_model
    from edgeser.export.distill import DistillOptions, distill, parse_duration
    from edgeser.export.eval_audio import audio_files

    emotion = DATA / "emotion"
    if not emotion.is_dir():
        raise SystemExit(f"real speech not found at {emotion} (set EDGESER_TEST_DATA)")
    report = [machine_report(("numpy", "onnxruntime", "torch", "transformers", "edgeser"))]
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeser-distill-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    files = audio_files(emotion)
    audio_dir = emotion
    if args.smoke:  # a few files per corpus, linked (not copied) into a work folder
        audio_dir = work / "audio"
        shutil.rmtree(audio_dir, ignore_errors=True)
        audio_dir.mkdir()
        for prefix in ("emodb__03", "emodb__08", "ravdess__03-01-01", "ravdess__03-01-05", "kor__"):
            for path in sorted(emotion.glob(f"{prefix}*.wav"))[:3]:
                os.symlink(path, audio_dir / path.name)
    budget = None if args.time_budget is None else parse_duration(args.time_budget)

    t0 = time.monotonic()
    teacher = write_teacher(work / "teacher", files, smoke=args.smoke, gain=args.branch_gain)
    print(f"teacher written in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    common = {"audio": audio_dir, "holdout": 0.2, "speaker_pattern": SPEAKERS,
              "cache_dir": work / "cache", "overwrite": True, "threads": args.threads,
              "time_budget_s": budget}
    student = distill(DistillOptions(teacher=str(teacher), out=work / "student-s4",
                                     student_layers=4 if not args.smoke else 2, steps=args.steps,
                                     **common), Quiet())
    tiny = distill(DistillOptions(teacher=str(teacher), out=work / "student-tiny", preset="tiny",
                                  steps=args.tiny_steps, **common), Quiet())
    pruned = pruned_fidelity(teacher, 4 if not args.smoke else 2, student.heldout)

    bundles = {}
    for name, model in (("teacher", teacher), ("student-4", student.student),
                        ("tiny", tiny.student)):
        result = export_model(ExportOptions(model=str(model), out=work / f"bundle-{name}",
                                            overwrite=True, eval_audio=audio_dir,
                                            eval_windows=8 if args.smoke else 60,
                                            allow_degraded=True))
        bundles[name] = result
    windows = [w.astype(np.float32) for w in speech_windows(audio_files(audio_dir), 8)]
    times = time_interleaved({n: ort_runner(b.bundle, 1) for n, b in bundles.items()}, windows,
                             args.repeats, args.warmup)
    speech = []
    for rel in student.heldout.files:
        samples, info = audio.read_mono(audio_dir / rel)
        speech.append(fe.resample(samples, info.rate_hz))
        if sum(map(len, speech)) >= args.detect_seconds * 16000:
            break
    speech = np.concatenate(speech)
    rtf = {n: detect_rtf(b.bundle, speech) for n, b in bundles.items()}

    labels = list(student.record["heldout"]["outputs"])
    spread = student.record["heldout"]["teacher_spread"]["outputs"]
    lines = ["```", *report, f"work folder: {work}", "```", "",
             f"Teacher: reference architecture{' (SHRUNK: --smoke)' if args.smoke else ''}, "
             f"random backbone (branch gain {args.branch_gain:g}), head fitted to 3 principal "
             f"directions on real speech. Held-out: {student.record['audio']['heldout']['files']} "
             f"files of {student.record['audio']['heldout']['speakers']} speakers "
             f"({student.record['audio']['split']}), {student.heldout.refs.shape[0]} windows.", "",
             "| held-out CCC vs teacher | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels),
             "| teacher std | " + " | ".join(f"{spread[k]['std']:.3f}" for k in labels) + " |"]
    rows = (("pruning alone (first layers, untrained)", pruned),
            ("student-4 before training", student.record["heldout"]["before_training"]),
            ("student-4 trained", student.record["heldout"]),
            ("tiny before training", tiny.record["heldout"]["before_training"]),
            ("tiny trained", tiny.record["heldout"]))
    for name, metrics in rows:
        lines.append(f"| {name} | " + " | ".join(f"{metrics['outputs'][k]['ccc']:.4f}"
                                                  for k in labels) + " |")
    lines += ["", "| model | parameters | INT8 model.onnx | 3 s batch 1, 1 thread | x real time "
              "(3 s window) | detect x real time (1 thread) | training |",
              "|---|---|---|---|---|---|---|"]
    params = {"teacher": student.record["teacher"]["parameters"],
              "student-4": student.record["student"]["parameters"],
              "tiny": tiny.record["student"]["parameters"]}
    trained = {"teacher": "", "student-4": student.record["training"],
               "tiny": tiny.record["training"]}
    for name, result in bundles.items():
        t = trained[name]
        training = (f"{t['steps_done']} steps, {t['wall_s']:.0f} s (+ teacher pass "
                    f"{t['teacher_pass_s']:.0f} s)") if t else "-"
        size_mib = result.file_bytes["model.onnx"] / 2**20
        lines.append(f"| {name} | {params[name] / 1e6:.2f} M | {size_mib:.1f} MiB "
                     f"| {times[name]:.1f} ms | {3000 / times[name]:.1f}x | {rtf[name]:.1f}x "
                     f"| {training} |")
    fast = rtf["tiny"] >= 10.0
    lines += ["", f"tiny student >= 10x real time on one core (detect): {'yes' if fast else 'no'} "
              f"({rtf['tiny']:.1f}x); verdicts at --min-ccc 0.9: student-4 "
              f"{'faithful' if student.faithful else 'NOT faithful'}, tiny "
              f"{'faithful' if tiny.faithful else 'NOT faithful'}.",
              ("--smoke: a shrunk architecture; these figures only show that the script runs."
               if args.smoke else
               "Latency, size and speed are those of the real architecture; fidelity figures are "
               "those of this synthetic teacher (random backbone, fitted head), not of the "
               "trained audeering model.")]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        command = "python benchmarks/distill.py " + " ".join(sys.argv[1:])
        replace_section(str(args.results_file), args.section,
                        f"## Distilled students (`{command}`)\n\n{text}")


if __name__ == "__main__":
    main()
