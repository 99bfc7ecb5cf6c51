"""Long-run stability of live detection: hours of audio through one stream, RSS and open file
descriptors sampled as it goes.

The audio is generated on the fly as raw 48 kHz s16 PCM (voiced stretches, silence and noise
bursts, so windows are scored, gated and laughter events open and close) and read through
``edgeser.pcmstream`` exactly as ``edgeser detect - --stream`` reads stdin, then fed to one
``DetectionStream``. Memory and descriptors must be flat after the warm-up: the stream keeps no
history.

    python benchmarks/soak.py BUNDLE [--hours 2] [--sample-every-s 60] [--warmup-s 300]
        [--write-results] [--section soak]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RATE_HZ = 48000
CHUNK_S = 0.1  # as a live capture delivers it


class GeneratedPcm(io.RawIOBase):
    """A non-seekable byte stream of ``seconds`` of raw s16 mono PCM, generated as it is read:
    30 s blocks cycling through voiced sound, silence and noise bursts."""

    def __init__(self, seconds: float, seed: int = 0):
        self._left = int(seconds * RATE_HZ) * 2
        self._rng = np.random.default_rng(seed)
        self._block = b""
        self._n = 0

    def readable(self) -> bool:
        return True

    def _next_block(self) -> bytes:
        t = np.arange(RATE_HZ * 30) / RATE_HZ
        kind = self._n % 3
        self._n += 1
        if kind == 0:  # a gliding harmonic tone with a syllable-rate envelope
            f0 = 120 + 60 * np.sin(2 * np.pi * 0.2 * t + self._rng.uniform(0, 6))
            phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
            x = sum(np.sin(k * phase) / k for k in (1, 2, 3)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            x = 0.2 * x + 0.01 * self._rng.standard_normal(len(t))
        elif kind == 1:  # silence with a 5 s burst of noise in it
            x = np.zeros(len(t))
            start = int(self._rng.uniform(0, 25) * RATE_HZ)
            x[start:start + 5 * RATE_HZ] = 0.3 * self._rng.standard_normal(5 * RATE_HZ)
        else:
            x = 0.05 * self._rng.standard_normal(len(t))
        return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        if not self._block:
            self._block = self._next_block()
        n = min(len(buffer), len(self._block), self._left)
        buffer[:n] = self._block[:n]
        self._block = self._block[n:]
        self._left -= n
        return n


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def soak(bundle: str, hours: float, sample_every_s: float, warmup_s: float) -> dict:
    from edgeser import Detector
    from edgeser.memory import rss_mb
    from edgeser.pcmstream import open_pcm_stream

    detector = Detector.load(bundle)
    seconds = hours * 3600
    source = io.BufferedReader(GeneratedPcm(seconds))
    pcm = open_pcm_stream(source, "generated", rate_hz=RATE_HZ, channels=1, sample_format="s16")
    stream = detector.stream(RATE_HZ, source="generated")
    samples: list[tuple[float, float, int]] = []  # (audio s, RSS MB, open fds)
    windows = events = 0
    next_sample_s = 0.0
    wall = time.perf_counter()
    for chunk in pcm.chunks(max_frames=int(RATE_HZ * CHUNK_S)):
        step = stream.feed(chunk)
        windows += len(step.windows)
        events += len(step.events)
        audio_s = pcm.frames_read / RATE_HZ
        if audio_s >= next_sample_s:
            samples.append((audio_s, rss_mb(), open_fds()))
            next_sample_s += sample_every_s
    last = stream.close()
    wall = time.perf_counter() - wall
    windows += len(last.windows)
    events += len(last.events)
    after = [s for s in samples if s[0] >= warmup_s]
    rss = [s[1] for s in after]
    fds = [s[2] for s in after]
    return {
        "audio_s": pcm.frames_read / RATE_HZ, "wall_s": wall,
        "speed_x_real_time": (pcm.frames_read / RATE_HZ) / wall, "windows": windows,
        "events": events, "voiced_windows": last.end.summary.voiced_windows,
        "samples": len(samples), "warmup_s": warmup_s,
        "rss_after_warmup_mb": {"min": min(rss), "max": max(rss), "first": rss[0],
                                "last": rss[-1]},
        "fds_after_warmup": {"min": min(fds), "max": max(fds)},
        "rss_trace_mb": [round(s[1], 1) for s in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--sample-every-s", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=300.0)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", default=str(HERE / "RELIABILITY.md"))
    parser.add_argument("--section", default="soak")
    args = parser.parse_args()
    from _machine import machine_report, replace_section

    print(machine_report(), flush=True)
    r = soak(args.bundle, args.hours, args.sample_every_s, args.warmup_s)
    print(json.dumps({k: v for k, v in r.items() if k != "rss_trace_mb"}, indent=2))
    rss, fds = r["rss_after_warmup_mb"], r["fds_after_warmup"]
    from edgeser import bundle as bundles

    manifest = bundles.load(args.bundle).manifest
    body = (
        f"Command: `python benchmarks/soak.py BUNDLE --hours {args.hours:g} --sample-every-s "
        f"{args.sample_every_s:g} --warmup-s {args.warmup_s:g}` with `{manifest.model_id}` "
        f"({manifest.task}, {manifest.quantization.describe()}, window "
        f"{manifest.window_s:g} s, hop {manifest.hop_s:g} s). Generated 48 kHz s16 audio read "
        "through `edgeser.pcmstream` in 0.1 s chunks into one detection stream.\n\n"
        f"- audio streamed: {r['audio_s'] / 3600:.2f} h in {r['wall_s'] / 60:.1f} min "
        f"({r['speed_x_real_time']:.1f}x real time); {r['windows']} windows "
        f"({r['voiced_windows']} voiced), {r['events']} events\n"
        f"- RSS after the first {args.warmup_s:g} s of audio, sampled every "
        f"{args.sample_every_s:g} s of audio ({r['samples']} samples): min {rss['min']:.1f} MB, "
        f"max {rss['max']:.1f} MB (spread {rss['max'] - rss['min']:.1f} MB), first "
        f"{rss['first']:.1f}, last {rss['last']:.1f}\n"
        f"- open file descriptors after warm-up: min {fds['min']}, max {fds['max']}\n\n"
        f"Machine:\n\n```\n{machine_report()}\n```\n")
    if args.write_results:
        replace_section(args.results_file, args.section, body)


if __name__ == "__main__":
    main()
