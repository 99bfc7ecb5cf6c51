"""Choosing the INT8 recipe by measurement: quantize every candidate, order them fastest first
(timed on this machine for ``--target auto``, from the committed ranking for a named target),
run the fidelity gate in that order and keep the first that passes. Every try is recorded."""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser.errors import ExportError
from edgeser import targets
from edgeser.export import quantize

TIMED_ROUNDS = 7


@dataclass(frozen=True)
class Try:
    recipe: str
    latency_ms: float | None  # this machine, batch 1, all cores; None when not timed
    gate: str  # passed | failed | not run
    metrics: dict | None = None
    failures: tuple = ()

    def record(self) -> dict:
        entry: dict = {"recipe": self.recipe, "gate": self.gate}
        if self.latency_ms is not None:
            entry["latency_ms"] = round(self.latency_ms, 2)
        if self.metrics is not None:
            outputs = self.metrics.get("outputs", {})
            entry["ccc"] = {label: round(m["ccc"], 6) for label, m in outputs.items()}
            if "top1_agreement" in self.metrics:
                entry["top1_agreement"] = self.metrics["top1_agreement"]
        if self.failures:
            entry["failures"] = list(self.failures)
        return entry


@dataclass(frozen=True)
class Selection:
    target: str
    machine: str  # this machine's target class
    order_from: str
    fp32_latency_ms: float
    window_samples: int
    tries: tuple
    chosen: str
    chosen_metrics: dict | None
    kept: tuple  # node names the chosen recipe kept float

    @property
    def recipe(self) -> quantize.Recipe:
        return quantize.RECIPES[self.chosen]()

    def record(self) -> dict:
        return {"target": self.target, "machine": self.machine, "order_from": self.order_from,
                "timed_window_samples": self.window_samples,
                "fp32_latency_ms": round(self.fp32_latency_ms, 2),
                "tries": [t.record() for t in self.tries], "chosen": self.chosen}


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_graphs(paths: dict, window: np.ndarray, rounds: int = TIMED_ROUNDS) -> dict:
    """Median milliseconds of one window per graph (batch 1, ONNX Runtime's default threads).
    Rounds are interleaved (every graph once per round, the first one rotating), so a burst of
    other load on the machine falls on all candidates alike instead of on one."""
    from edgeser.contract import INPUT_NAME

    feed = {INPUT_NAME: np.ascontiguousarray(window[None, :], np.float32)}
    sessions = {name: _session(path) for name, path in paths.items()}
    for session in sessions.values():
        session.run(None, feed)  # warm-up: first-call allocations
    names = list(sessions)
    times: dict = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start = time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(t) for name, t in times.items()}


def search(fp32_graph: Path, out: Path, target: str, calibration_windows, evaluate,
           timing_window: np.ndarray, scratch: Path, progress, allow_degraded: bool = False,
           candidates: tuple = targets.CANDIDATES) -> Selection:
    """Write the chosen candidate at ``out``. ``evaluate(path, name)`` returns (metrics, failures)
    of the fidelity gate for the graph at ``path``. Raises ExportError when none passes and
    ``allow_degraded`` is off (with it, the candidate of best worst-case fidelity is kept)."""
    machine = targets.this_machine()
    cache = scratch / "calibration-ranges.json"
    made: dict = {}
    for name in candidates:
        progress.start(f"quantizing ({name})")
        path = scratch / f"candidate-{name}.onnx"
        kept = quantize.quantize(fp32_graph, path, quantize.RECIPES[name](), calibration_windows,
                                 calibration_cache=cache)
        made[name] = (path, tuple(kept))
    progress.start("timing the candidates on this machine")
    latency = time_graphs({name: path for name, (path, _) in made.items()}, timing_window)
    fp32_ms = time_graphs({"fp32": fp32_graph}, timing_window)["fp32"]
    if target == targets.AUTO:
        order = sorted(made, key=latency.__getitem__)
        order_from = "timed on this machine"
    else:
        ranked = targets.ranking(target)
        order = [name for name in ranked.order if name in made]
        order_from = ranked.evidence
    tries: list = []
    chosen = None
    best = None  # (worst CCC or agreement, name, metrics) for --allow-degraded
    for name in order:
        if chosen is not None:
            tries.append(Try(name, latency[name], "not run"))
            continue
        metrics, failures = evaluate(made[name][0], name)
        tries.append(Try(name, latency[name], "failed" if failures else "passed", metrics,
                         tuple(failures)))
        if not failures:
            chosen, chosen_metrics = name, metrics
        score = _worst(metrics)
        if best is None or score > best[0]:
            best = (score, name, metrics)
    if chosen is None:
        if not allow_degraded:
            detail = "; ".join(f"{t.recipe}: {', '.join(t.failures)}" for t in tries)
            raise ExportError(f"no INT8 recipe holds the fidelity gate ({detail}); nothing was "
                              f"written (--allow-degraded keeps the most faithful one).")
        _, chosen, chosen_metrics = best
    shutil.copyfile(made[chosen][0], out)
    return Selection(target, machine, order_from, fp32_ms, int(len(timing_window)), tuple(tries),
                     chosen, chosen_metrics, made[chosen][1])


def _worst(metrics: dict) -> float:
    scores = [m["ccc"] for m in metrics.get("outputs", {}).values()]
    if "top1_agreement" in metrics:
        scores.append(metrics["top1_agreement"])
    return min(scores) if scores else 0.0

