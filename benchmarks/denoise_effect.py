"""How a bundle's outputs move with ``--denoise``, on clean and on noisy real speech.

    python benchmarks/denoise_effect.py BUNDLE [--files 20] [--snr 20,10,0] [--write-results]

For each file of ../shared/data/emotion (spread evenly): the clean recording and the same
recording with white noise and with babble (other files of the set) at each SNR, scored with and
without the noise suppressor. Reported per output: CCC of denoised against raw on clean speech
(it should barely move), and, under noise, CCC of raw-noisy and of denoised-noisy against the
clean raw outputs (does denoising bring the outputs back towards what the clean speech gave).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402
from distill import DATA  # noqa: E402

import numpy as np  # noqa: E402


def scores(detector, x: np.ndarray) -> list:
    result = detector.detect(x, 16000)
    return [w.scores for w in result.windows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--snr", default="20,10,0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--section", default="denoise-effect")
    args = parser.parse_args()

    from edgeser import Detector, audio
    from edgeser import frontend as fe
    from edgeser.evaluation import perturb
    from edgeser.export.eval_audio import audio_files
    from edgeser.export.parity import ccc

    files = audio_files(DATA / "emotion")
    chosen = files[:: max(1, len(files) // args.files)][: args.files]
    clips = []
    for path in chosen:
        samples, info = audio.read_mono(path)
        clips.append(fe.resample(samples, info.rate_hz).astype(np.float32))
    raw = Detector.load(args.bundle).with_settings(denoise=False)
    den = raw.with_settings(denoise=True)
    labels = list(raw.bundle.manifest.labels)
    rng = np.random.default_rng(args.seed)
    snrs = [float(s) for s in args.snr.split(",")]
    rows: dict = {}

    def collect(key, pairs):
        rows.setdefault(key, []).extend(pairs)

    for i, x in enumerate(clips):
        clean_raw = scores(raw, x)
        clean_den = scores(den, x)
        collect(("clean", "denoised vs raw"), zip(clean_raw, clean_den))
        others = [c for j, c in enumerate(clips) if j != i]
        for snr in snrs:
            for kind in ("white", "babble"):
                noise = (perturb.white_noise(len(x), rng) if kind == "white"
                         else perturb.babble(len(x), others, rng))
                noisy = perturb.add_noise(x, noise, snr, rng)
                collect((f"{kind} {snr:g} dB", "raw vs clean"), zip(clean_raw, scores(raw, noisy)))
                collect((f"{kind} {snr:g} dB", "denoised vs clean"),
                        zip(clean_raw, scores(den, noisy)))
        print(f"file {i + 1}/{len(clips)}", file=sys.stderr, flush=True)

    lines = ["```", machine_report(("numpy", "onnxruntime", "edgeser")), "```", "",
             f"Bundle: `{args.bundle}`; {len(clips)} files of ../shared/data/emotion, seed "
             f"{args.seed}. CCC per output over every scored window (windows a gate did not "
             "score on either side are left out).", "",
             "| condition | compared | windows | " + " | ".join(f"CCC {k}" for k in labels) + " |",
             "|---|---|---:|" + "---:|" * len(labels)]
    for (condition, compared), pairs in rows.items():
        pairs = [(a, b) for a, b in pairs if a and b]
        ref = np.array([[a[k] for k in labels] for a, _ in pairs])
        got = np.array([[b[k] for k in labels] for _, b in pairs])
        lines.append(f"| {condition} | {compared} | {len(pairs)} | " + " | ".join(
            f"{ccc(ref[:, k], got[:, k]):.3f}" for k in range(len(labels))) + " |")
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        command = "python benchmarks/denoise_effect.py " + " ".join(sys.argv[1:])
        replace_section(str(args.results_file), args.section,
                        f"## What `--denoise` does to a bundle's outputs (`{command}`)\n\n{text}")


if __name__ == "__main__":
    main()
