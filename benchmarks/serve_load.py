"""Sustained load on ``edgeser serve``: N concurrent streams pushed at real-time rate.

For each stream count N a fresh server (``python -m edgeser serve``, unix socket) serves N client
streams of generated speech-like audio, each pushed in real time (one chunk every
``--chunk-ms``, paced on a monotonic clock, never faster), from one client process with a thread
per stream that also reads its results. The result latency of a window is measured end to end:
the time its record arrives minus the time the client sent the chunk holding the window's last
sample. A level is *sustained* when the p99 latency stays within ``--budget-s`` and the latency
does not grow over the run (the median of the last third is within twice the first third's plus
one hop), i.e. the server keeps up rather than queueing. Reported per level: windows, latency
p50/p99/max, the server's batch sizes (from its ``health`` record), its resident memory at the
end and its peak, and whether the level was sustained; then the highest sustained N and N per
core the server may use.

The client runs on the same machine and takes CPU from the server: the figure is conservative.

    python benchmarks/serve_load.py BUNDLE [--streams 1,2,4,8,16] [--duration 30]
        [--rate 16000] [--chunk-ms 20] [--threads N] [--batch-wait-ms 5] [--budget-s 1.0]

A smoke run with a tiny bundle: ``--streams 1,4 --duration 10``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # signals.py: the one speech-like generator

from _machine import machine_report  # noqa: E402

import numpy as np  # noqa: E402
from signals import speech_like  # noqa: E402

from edgeser.serve.client import Client, to_pcm  # noqa: E402


def _status_kib(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1))


def start_server(bundle: str, sock: Path, threads: int | None, batch_wait_ms: float,
                 max_streams: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "edgeser", "serve", "--model", bundle, "--socket", str(sock),
            "--batch-wait-ms", str(batch_wait_ms), "--max-streams", str(max_streams),
            "--max-streams-per-client", str(max_streams)]
    if threads:
        args += ["--threads", str(threads)]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "edgeser: ready" in line:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc
    raise SystemExit(f"the server did not start (exit {proc.wait()})")


def run_stream(client: Client, k: int, audio: np.ndarray, rate: int, chunk: int,
               out: dict) -> None:
    """Push ``audio`` in real time; record (window end sample, latency) pairs."""
    stream = client.open(f"load{k}", rate_hz=rate, sample_format="s16")
    sent_frames: list[int] = []  # input frames sent so far, after each chunk
    sent_at: list[float] = []  # when that chunk was sent
    latencies: list[tuple[int, float]] = []

    def read() -> None:
        for record in stream.results(timeout=600):
            if record["type"] != "window":
                continue
            now = time.monotonic()
            need = -(-record["end_sample"] * rate // 16000)  # input frames holding its end
            i = min(bisect.bisect_left(sent_frames, need), len(sent_at) - 1)
            latencies.append((record["end_sample"], now - sent_at[i]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.monotonic()
    for i, offset in enumerate(range(0, len(audio), chunk)):
        delay = start + i * chunk / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        piece = audio[offset:offset + chunk]
        sent_at.append(time.monotonic())  # before the frames count: the reader reads both
        sent_frames.append(offset + len(piece))
        stream.push(to_pcm(piece, 1, "s16"))
    stream.end()
    reader.join(600)
    out[k] = latencies


def level(bundle: str, n: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "serve.sock"
        proc = start_server(bundle, sock, args.threads, args.batch_wait_ms, max(n, 1))
        try:
            chunk = max(1, round(args.rate * args.chunk_ms / 1000))
            clips = [speech_like(args.duration, args.rate, seed=k) for k in range(n)]
            clients = [Client.connect(sock, timeout=600) for _ in range(max(1, n // 8))]
            results: dict[int, list] = {}
            threads = [threading.Thread(target=run_stream,
                                        args=(clients[k % len(clients)], k, clips[k],
                                              args.rate, chunk, results))
                       for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            health = clients[0].health()
            for c in clients:
                c.close()
            rss, peak = _status_kib(proc.pid, "VmRSS"), _status_kib(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(60)
    lat = np.array([s for r in results.values() for _, s in r])
    ordered = [np.array([s for _, s in sorted(r)]) for r in results.values() if r]
    thirds = [(np.median(a[:max(1, len(a) // 3)]), np.median(a[-max(1, len(a) // 3):]))
              for a in ordered]
    hop_s = clients[0].hello["model"]["hop_s"]
    growing = any(last > 2 * first + hop_s for first, last in thirds)
    p50, p99 = (np.percentile(lat, [50, 99]) if lat.size else (float("nan"),) * 2)
    inference = health["model"]["inference"]
    return {"streams": n, "windows": int(lat.size), "p50_s": float(p50), "p99_s": float(p99),
            "max_s": float(lat.max()) if lat.size else float("nan"),
            "mean_batch": inference["mean_batch"], "max_batch": inference["max_batch"],
            "rss_mb": rss / 1024, "peak_mb": peak / 1024,
            "sustained": bool(lat.size and p99 <= args.budget_s and not growing)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--streams", default="1,2,4,8,16",
                        help="stream counts to try, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per stream")
    parser.add_argument("--rate", type=int, default=16000, help="input rate in Hz")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="push interval")
    parser.add_argument("--threads", type=int, default=None, help="server inference threads")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--budget-s", type=float, default=1.0,
                        help="p99 latency a sustained level must stay within")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    print(machine_report())
    cores = args.threads or len(os.sched_getaffinity(0))
    print(f"bundle:         {args.bundle}")
    print(f"load:           {args.duration:g} s per stream at {args.rate} Hz mono s16, a chunk "
          f"every {args.chunk_ms:g} ms, batch wait {args.batch_wait_ms:g} ms, server threads "
          f"{args.threads or 'all'} ({cores} cores), budget p99 <= {args.budget_s:g} s")
    print()
    print(f"{'streams':>7} {'windows':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'batch':>6} {'rss MB':>7} {'peak MB':>8}  sustained")
    rows = []
    for n in [int(v) for v in args.streams.split(",")]:
        row = level(args.bundle, n, args)
        rows.append(row)
        print(f"{n:>7} {row['windows']:>8} {row['p50_s'] * 1e3:>8.1f} {row['p99_s'] * 1e3:>8.1f} "
              f"{row['max_s'] * 1e3:>8.1f} {row['mean_batch'] or 0:>6.2f} {row['rss_mb']:>7.0f} "
              f"{row['peak_mb']:>8.0f}  {'yes' if row['sustained'] else 'no'}", flush=True)
    best = max((r["streams"] for r in rows if r["sustained"]), default=0)
    print()
    print(f"sustained: {best} streams ({best / cores:.1f} per core of {cores}); the client ran "
          "on the same machine")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cores": cores, "sustained": best},
                                        indent=2))


if __name__ == "__main__":
    main()
