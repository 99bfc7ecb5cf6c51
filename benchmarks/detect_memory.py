"""Resident memory of a detection session as window lengths change, per ONNX Runtime memory setting.

Each setting runs in a fresh process: load the bundle, create the session (edgeser.inference),
then run windows of mixed lengths (full 3 s windows, the short tails files end with, a --window
override) several rounds, sampling RSS after every round. A setting keeps memory flat when RSS
stops growing after the first round; the figure of merit is the growth from round 1 to the last
and the peak over the weight bytes.

    python benchmarks/detect_memory.py BUNDLE [--rounds 4] [--threads 2] [--batch 1]
        [--write-results] [--section detect-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_report, replace_section  # noqa: E402

# Window lengths in seconds, in the order a mixed workload meets them.
LENGTHS_S = (3.0, 0.5, 2.3, 1.0, 3.0, 1.7, 0.9, 2.9)
SETTINGS = {
    "arena, no memory pattern (edgeser)": {"arena": True, "memory_pattern": False},
    "ONNX Runtime defaults (arena, memory pattern)": {"arena": True, "memory_pattern": True},
    "no arena, no memory pattern": {"arena": False, "memory_pattern": False},
}


def child(bundle_dir: str, setting: str, rounds: int, threads: int, batch: int) -> None:
    import numpy as np

    from edgeser import bundle as bundles
    from edgeser.inference import Session, SessionSettings
    from edgeser.memory import peak_rss_mb, rss_mb

    model = bundles.load(bundle_dir)
    after_imports = rss_mb()
    session = Session(model, SessionSettings(threads=threads, **SETTINGS[setting]))
    after_session = rss_mb()
    rng = np.random.default_rng(0)
    per_round = []
    for _ in range(rounds):
        for seconds in LENGTHS_S:
            x = rng.standard_normal((batch, int(seconds * 16000))).astype(np.float32)
            session.run(x)
        per_round.append(rss_mb())
    print(json.dumps({"after_imports": after_imports, "after_session": after_session,
                      "rounds": per_round, "peak": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=1, help="windows per inference call")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--section", default="detect-memory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.bundle, args.child, args.rounds, args.threads, args.batch)
        return
    print(machine_report(), flush=True)
    from edgeser import bundle as bundles

    manifest = bundles.load(args.bundle).manifest
    weights_mb = sum(f.bytes for f in manifest.files.values()) / 2**20
    rows = []
    for setting in SETTINGS:
        out = subprocess.run([sys.executable, __file__, args.bundle, "--child", setting,
                              "--rounds", str(args.rounds), "--threads", str(args.threads),
                              "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rounds = r["rounds"]
        rows.append(f"| {setting} | {r['after_session'] - r['after_imports']:.0f} | "
                    f"{rounds[0]:.0f} | {rounds[-1]:.0f} | {rounds[-1] - rounds[0]:+.0f} | "
                    f"{r['peak']:.0f} |")
        print(rows[-1], flush=True)
    head = ("| setting | session RSS - imports RSS (MB) | RSS after round 1 (MB) | "
            f"RSS after round {args.rounds} (MB) | growth (MB) | peak RSS (MB) |\n"
            "|---|---|---|---|---|---|")
    table = head + "\n" + "\n".join(rows)
    print(table)
    if args.write_results:
        body = (f"Command: `python benchmarks/detect_memory.py BUNDLE --rounds {args.rounds} "
                f"--threads {args.threads} --batch {args.batch}` on `{manifest.model_id}` "
                f"({manifest.quantization.describe()}, bundle files "
                f"{weights_mb:.0f} MB). Windows per round (s): {', '.join(map(str, LENGTHS_S))}, "
                f"batch {args.batch}, one fresh process per setting. Memory does not depend on "
                "the weights' values: the full-size reference architecture with random weights "
                "stands for the real model.\n\n"
                f"{table}\n\nMachine:\n\n```\n{machine_report()}\n```\n")
        replace_section(HERE / "RESULTS.md", args.section, body)


if __name__ == "__main__":
    main()
