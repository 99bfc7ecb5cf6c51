"""Resampling to 16 kHz: edgeser's native resampler against soxr HQ and scipy, speed and quality.

    python benchmarks/bench_frontend.py [--seconds 60] [--repeats 15] [--write-results]

Peers (all mono float32 in, float32 out, all single-threaded; see PEERS below for exact calls):

* ``edgeser``           - ``edgeser.frontend.resample(x, rate)`` (one shot; includes building the
                          filter tables, as every call of that function does)
* ``edgeser stream``    - ``Resampler(rate)``, ``process()`` on 20 ms chunks, ``flush()``: the live
                          case (output is bit-identical to one shot; checked before timing)
* ``soxr HQ``           - ``soxr.resample(x, rate, 16000, quality="HQ")``
* ``scipy poly``        - ``scipy.signal.resample_poly(x, up, down)``, up/down reduced by their
                          gcd, its default filter: firwin(20*max(up,down)+1, 1/max(up,down),
                          window=("kaiser", 5.0)), designed inside every call
* ``scipy poly long``   - ``resample_poly(x, up, down, window=h)`` with an explicit FIR designed
                          to edgeser's own spec (band edges and rejection read from
                          ``edgeser.frontend.reference.design``: cutoff midway in the
                          7309-8000 Hz transition, length and beta from ``kaiserord(130 dB,
                          691 Hz)``, the length forced odd), ``firwin(n, cutoff,
                          window=("kaiser", beta), fs=up*rate)`` cast to
                          float32 as resample_poly does with its own filter; designed once per
                          rate, outside the timing (design time printed separately)

Timing: uniform white noise, peak 0.5 (-6 dBFS), seed fixed; warm-up calls, then rounds that
run every peer at every rate once each, interleaved (A B C .. A B C ..) with the starting peer
rotated each round; time.perf_counter_ns around the call only, gc disabled during it. Reports the
median per peer and rate (as ms per 60 s of input and x realtime = audio seconds / wall seconds)
and the speed relative to soxr HQ as the median of the per-round ratios soxr_time / peer_time
(paired within a round, so drift from other load on the machine cancels).

Quality, measured identically for every peer: the output of 2 s full-scale sines, first and last
0.25 s dropped, Hann window, FFT scaled so a full-scale sine on a bin centre reads 0 dB.
alias rejection = the highest bin (dB) anywhere in the output, worst over input tones at 8.5, 9,
10, 12, 15, 18, 20, 22 kHz and the largest multiple of 100 Hz at least 50 Hz below input Nyquist
(every alias lands on a bin centre); passband deviation = max |level - 0 dB| at the tone's own bin
for even-Hz tones (bin centres, no scalloping) log-spaced from 20 Hz to 7 kHz.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shlex
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _machine  # noqa: E402  (must pin threads before numpy/scipy are imported)

_machine.force_single_thread()

import numpy as np  # noqa: E402
import scipy  # noqa: E402,F401
import scipy.signal as ss  # noqa: E402
import soxr  # noqa: E402

from edgeser import frontend  # noqa: E402

OUT_RATE = 16_000
RATES = (44_100, 48_000)
CHUNK_S = 0.020
SEED = 20240611
RESULTS_MD = os.path.join(HERE, "RESULTS.md")

# edgeser's own design (band edges and rejection), used for the long scipy filter so the two
# implementations of one specification are compared.
_DESIGN = frontend.reference.design(48_000)
PASSBAND_HZ, STOPBAND_HZ = _DESIGN.passband_hz, _DESIGN.stopband_hz
STOPBAND_DB = frontend.reference.STOPBAND_DB

ALIAS_TONES_HZ = (8500, 9000, 10_000, 12_000, 15_000, 18_000, 20_000, 22_000)
TONE_S, EDGE_S = 2.0, 0.25


def passband_tones() -> list[int]:
    tones = {2 * round(f / 2) for f in np.geomspace(20.0, 7000.0, 48)}
    return sorted(tones)


def alias_tones(rate: int) -> list[int]:
    top = int((rate / 2 - 50) // 100 * 100)
    return sorted({f for f in ALIAS_TONES_HZ if f < rate / 2 - 40} | {top})


def up_down(rate: int) -> tuple[int, int]:
    g = math.gcd(rate, OUT_RATE)
    return OUT_RATE // g, rate // g


def long_fir(rate: int) -> tuple[np.ndarray, float, float]:
    """scipy FIR at up*rate with edgeser's spec; returns (taps float32, beta, design seconds)."""
    up, _ = up_down(rate)
    fs = rate * up
    t0 = time.perf_counter()
    numtaps, beta = ss.kaiserord(STOPBAND_DB, (STOPBAND_HZ - PASSBAND_HZ) / (0.5 * fs))
    numtaps |= 1  # odd: symmetric, integer delay, as resample_poly's own design
    h = ss.firwin(numtaps, 0.5 * (PASSBAND_HZ + STOPBAND_HZ), window=("kaiser", beta), fs=fs)
    h = h.astype(np.float32)
    return h, beta, time.perf_counter() - t0


def edgeser_stream(chunks: list[np.ndarray], rate: int) -> list[np.ndarray]:
    r = frontend.Resampler(rate)
    out = [r.process(c) for c in chunks]
    out.append(r.flush())
    return out


def make_peers(rate: int, x: np.ndarray) -> tuple[dict, dict]:
    """name -> zero-argument callable on the benchmark signal; plus a name -> f(signal) map used
    for quality (same configuration)."""
    up, down = up_down(rate)
    h, _, _ = long_fir(rate)
    step = int(round(CHUNK_S * rate))
    chunks = [np.ascontiguousarray(x[i:i + step]) for i in range(0, x.size, step)]
    on_signal = {
        "edgeser": lambda s: frontend.resample(s, rate),
        "soxr HQ": lambda s: soxr.resample(s, rate, OUT_RATE, quality="HQ"),
        "scipy poly": lambda s: ss.resample_poly(s, up, down),
        "scipy poly long": lambda s: ss.resample_poly(s, up, down, window=h),
    }
    timed = {
        "edgeser": lambda: frontend.resample(x, rate),
        "edgeser stream": lambda: edgeser_stream(chunks, rate),
        "soxr HQ": lambda: soxr.resample(x, rate, OUT_RATE, quality="HQ"),
        "scipy poly": lambda: ss.resample_poly(x, up, down),
        "scipy poly long": lambda: ss.resample_poly(x, up, down, window=h),
    }
    return timed, on_signal


PEER_ORDER = ("edgeser", "edgeser stream", "soxr HQ", "scipy poly", "scipy poly long")


def _fmt_db(v: float) -> str:
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.1e}"


def time_call(fn) -> int:
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
    finally:
        if gc_was:
            gc.enable()
    return t1 - t0


# --------------------------------------------------------------------------------------------
# quality

def spectrum_db(y: np.ndarray) -> np.ndarray:
    """Hann-windowed magnitude spectrum of the steady part of a 16 kHz output, 0 dB = full-scale
    sine on a bin centre."""
    edge = int(EDGE_S * OUT_RATE)
    seg = np.asarray(y, dtype=np.float64)[edge:-edge]
    w = np.hanning(seg.size + 2)[1:-1]  # periodic-style Hann with no zero end points
    mag = np.abs(np.fft.rfft(seg * w)) * 2.0 / w.sum()
    return 20.0 * np.log10(np.maximum(mag, 1e-30))


def sine(rate: int, f_hz: float) -> np.ndarray:
    n = int(round(TONE_S * rate))
    return np.sin(2.0 * np.pi * f_hz * np.arange(n) / rate).astype(np.float32)


def measure_quality(rate: int, fn) -> dict:
    seg_n = int(TONE_S * OUT_RATE) - 2 * int(EDGE_S * OUT_RATE)
    bin_hz = OUT_RATE / seg_n
    worst_alias, worst_alias_tone = -math.inf, None
    for f in alias_tones(rate):
        y = fn(sine(rate, f))
        assert y.size == int(math.ceil(sine(rate, f).size * OUT_RATE / rate)), (y.size, f)
        peak = float(spectrum_db(y).max())
        if peak > worst_alias:
            worst_alias, worst_alias_tone = peak, f
    worst_dev, worst_dev_tone = 0.0, None
    for f in passband_tones():
        k = f / bin_hz
        assert abs(k - round(k)) < 1e-9, (f, k)
        level = float(spectrum_db(fn(sine(rate, f)))[int(round(k))])
        if abs(level) >= worst_dev:
            worst_dev, worst_dev_tone = abs(level), f
    return {"alias_db": worst_alias, "alias_tone": worst_alias_tone,
            "pass_dev_db": worst_dev, "pass_tone": worst_dev_tone}


# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="signal length (default 60)")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--write-results", action="store_true",
                    help="rewrite the frontend section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.seconds <= 0:
        ap.error("--repeats must be >= 1 and --seconds > 0")
    command = "python benchmarks/bench_frontend.py" + (
        " " + shlex.join(sys.argv[1:] if argv is None else argv)
        if (sys.argv[1:] if argv is None else argv) else "")

    t_start = time.perf_counter()
    report = _machine.machine_report()
    print(report, flush=True)
    print(f"command: {command}\n", flush=True)
    if frontend.BACKEND != "native":
        print("WARNING: edgeser frontend is the NumPy reference, not the native build", flush=True)

    rng = np.random.default_rng(SEED)
    signals = {rate: rng.uniform(-0.5, 0.5, int(round(args.seconds * rate))).astype(np.float32)
               for rate in RATES}

    # --- setup, one-off costs and sanity checks (not timed in the rounds)
    timed, on_signal, notes = {}, {}, {}
    for rate in RATES:
        x = signals[rate]
        timed[rate], on_signal[rate] = make_peers(rate, x)
        h, beta, design_s = long_fir(rate)
        info = frontend.Resampler(rate).info
        build_ns = min(time_call(lambda: frontend.Resampler(rate)) for _ in range(5))
        one = frontend.resample(x, rate)
        streamed = np.concatenate(edgeser_stream(
            [x[i:i + int(round(CHUNK_S * rate))] for i in range(0, x.size,
                                                              int(round(CHUNK_S * rate)))], rate))
        assert np.array_equal(one, streamed), "streaming output differs from one shot"
        n_out = int(math.ceil(x.size * OUT_RATE / rate))
        for name, fn in timed[rate].items():
            y = fn()
            y = np.concatenate(y) if isinstance(y, list) else y
            assert y.dtype == np.float32 and y.size == n_out, (name, rate, y.dtype, y.size, n_out)
        up, down = up_down(rate)
        stages = " then ".join(
            f"{s.rate_in_hz / 1000:g}->{s.rate_out_hz / 1000:g} kHz {s.taps_per_phase} taps x "
            f"{s.phases} phase{'s' if s.phases > 1 else ''}" for s in info.stages)
        notes[rate] = (
            f"{rate} Hz: up/down {up}/{down}; edgeser {len(info.stages)} stage"
            f"{'s' if len(info.stages) > 1 else ''} ({stages}; {info.taps_per_phase} input "
            f"samples per output), tables {info.table_bytes / 1024:.0f} KiB, built in "
            f"{build_ns / 1e6:.2f} ms (included in every one-shot call); scipy default filter "
            f"{20 * max(up, down) + 1} taps; scipy long filter {h.size} taps "
            f"({h.size / up:.0f} per phase), beta {beta:.2f}, designed in {design_s * 1e3:.0f} ms "
            f"(not timed)"
        )
        print(notes[rate], flush=True)

    # --- timing
    jobs = [(rate, name) for rate in RATES for name in PEER_ORDER]
    samples: dict[tuple[int, str], list[int]] = {job: [] for job in jobs}
    ratio: dict[tuple[int, str], list[float]] = {job: [] for job in jobs}
    total_rounds = args.warmup + args.repeats
    print(f"\ntiming: {args.warmup} warm-up + {args.repeats} rounds of {len(jobs)} calls",
          flush=True)
    for rnd in range(total_rounds):
        shift = rnd % len(PEER_ORDER)
        order = PEER_ORDER[shift:] + PEER_ORDER[:shift]
        this_round: dict[tuple[int, str], int] = {}
        for rate in RATES:
            for name in order:
                this_round[(rate, name)] = time_call(timed[rate][name])
        if rnd < args.warmup:
            continue
        for (rate, name), ns in this_round.items():
            samples[(rate, name)].append(ns)
            ratio[(rate, name)].append(this_round[(rate, "soxr HQ")] / ns)
        print(f"  round {rnd - args.warmup + 1}/{args.repeats}: " + "  ".join(
            f"{r // 1000}k {n} {this_round[(r, n)] / 1e6:.0f}" for r, n in jobs), flush=True)

    # --- quality
    print("\nquality ...", flush=True)
    quality = {}
    for rate in RATES:
        for name, fn in on_signal[rate].items():
            quality[(rate, name)] = measure_quality(rate, fn)
        quality[(rate, "edgeser stream")] = quality[(rate, "edgeser")]

    # --- table
    scale = 60.0 / args.seconds
    rows = []
    header = ("| peer | rate | ms per 60 s (median) | IQR ms | x realtime | speed vs soxr HQ "
              "| alias rejection dB | passband deviation dB |")
    sep = "|---|---|---:|---:|---:|---:|---:|---:|"
    for rate in RATES:
        for name in PEER_ORDER:
            ts = np.array(samples[(rate, name)]) / 1e9
            med = float(np.median(ts))
            q1, q3 = np.percentile(ts, [25, 75])
            rel = statistics.median(ratio[(rate, name)])
            q = quality[(rate, name)]
            rows.append(
                f"| {name} | {rate / 1000:g} kHz | {med * scale * 1e3:.1f} | "
                f"{(q3 - q1) * scale * 1e3:.1f} | {args.seconds / med:.0f} | {rel:.3f}x | "
                f"{q['alias_db']:.1f} (at {q['alias_tone'] / 1000:g} kHz) | "
                f"{_fmt_db(q['pass_dev_db'])} (at {q['pass_tone']} Hz) |"
            )
    table = "\n".join([header, sep, *rows])
    elapsed = time.perf_counter() - t_start
    print("\n" + table)
    print(f"\ntotal run time {elapsed:.0f} s; load average now {_machine.load_average()}")

    if args.write_results:
        body = f"""## Frontend: resampling to 16 kHz

Script: [`benchmarks/bench_frontend.py`](bench_frontend.py). Command, from the repository root:

```
{command}
```

{args.seconds:g} s of seeded uniform white noise (peak 0.5, -6 dBFS), mono float32, per input
rate; every peer single-threaded (the script sets {', '.join(_machine.THREAD_ENV_VARS[:3])}
and the other thread variables to 1 before importing numpy/scipy); {args.warmup} warm-up
rounds, then {args.repeats} rounds each calling every peer once at both rates, interleaved with
the starting peer rotated per round; `time.perf_counter_ns` around the call only. "ms per 60 s"
is the median; x realtime = audio seconds / median wall seconds; "speed vs soxr HQ" is the
median over rounds of soxr HQ's time / the peer's time in the same round (below 1 = slower than
soxr HQ).

Peers: **edgeser** = `edgeser.frontend.resample(x, rate)` (native backend; the filter tables
are built inside every call); **edgeser stream** = one `Resampler(rate)` fed 20 ms chunks
(pre-split, outputs kept in a list, then `flush()`), bit-identical to one shot (checked), so its
quality columns are the one-shot figures; **soxr HQ** = `soxr.resample(x, rate, 16000,
quality="HQ")`; **scipy poly** = `scipy.signal.resample_poly(x, up, down)` with its default
filter (Kaiser beta 5.0, 20*max(up,down)+1 taps, cutoff at 8 kHz, designed inside every call);
**scipy poly long** = `resample_poly(x, up, down, window=h)` with `h` an explicit FIR designed to
edgeser's spec: `n, beta = kaiserord({STOPBAND_DB:g}, {STOPBAND_HZ - PASSBAND_HZ:.0f} Hz / (up*rate/2))` (n forced odd),
`h = firwin(n, {0.5 * (PASSBAND_HZ + STOPBAND_HZ):.0f}, window=("kaiser", beta), fs=up*rate)` cast to float32, designed once per
rate outside the timing.

Quality, same procedure for every peer: 2 s full-scale sines, first and last 0.25 s of the
16 kHz output dropped, Hann-windowed FFT scaled so a full-scale sine on a bin centre reads 0 dB.
Alias rejection = the highest bin anywhere in the output, worst over input tones at
{', '.join(f'{f / 1000:g}' for f in ALIAS_TONES_HZ)} kHz and the top multiple of 100 Hz below
input Nyquist (22 kHz at 44.1 kHz, 23.9 kHz at 48 kHz); more negative is better. Passband
deviation = max |level| at the tone's own bin over {len(passband_tones())} even-Hz tones
log-spaced from 20 Hz to 7 kHz (bin centres: no scalloping). Below about -130 dB the highest
bin is a float32 rounding spur as often as the alias itself (it is not always at the alias
frequency), so differences between peers at that depth are not a ranking.

{table}

Setup notes printed by the run:

{chr(10).join('- ' + notes[rate] for rate in RATES)}

Total run time {elapsed:.0f} s (timing and quality).

Machine:

```
{report}
```
"""
        _machine.replace_section(RESULTS_MD, "frontend", body)
        print(f"wrote {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
