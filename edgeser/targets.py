"""CPU classes for INT8 bundles: which class this machine is, and the order the INT8 recipes
are tried in for each.

``edgeser export --target auto`` quantizes every candidate, times it on this machine and tries
them fastest first. A named target is another machine's class; candidates are then ranked
from the committed measurements below, because timing them here would say nothing about
there. ``edgeser bench`` says when a bundle was tuned for a class other than the one it runs on.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from edgeser.errors import ExportError

AUTO = "auto"
# The INT8 recipes worth trying, each a preset of quantize.RECIPES.
CANDIDATES = ("dynamic-int8-conv", "blockwise-int8-conv", "dynamic-matmul", "blockwise-int8")


@dataclass(frozen=True)
class Ranking:
    """A target's candidates, fastest first, and where that order comes from."""

    target: str
    order: tuple
    evidence: str


# Measured orders (3 s window, batch 1, all cores; full-size reference architecture).
# x86-vnni: AMD EPYC with AVX-512 VNNI, 2 cores, onnxruntime 1.32 (RESULTS.md, speed-targets).
# x86-avx2: AMD EPYC without VNNI, 2 threads: dynamic MatMul 475 ms, FP32 637 ms, blockwise
# 856 ms; the conv stage was not timed there (its u8s8 kernels are the AVX2 ones), so the
# conv variants sit just before their MatMul recipe.
# arm64: not measured on hardware; ordered by ONNX Runtime's kernels (MatMulInteger and
# QLinearConv use SDOT/UDOT where the CPU has dot-product instructions; MatMulNBits' int8 path
# needs them as well, and without them the per-tensor kernels are the faster int8 ones).
RANKINGS = {
    "x86-vnni": Ranking("x86-vnni", ("dynamic-int8-conv", "dynamic-matmul",
                                     "blockwise-int8-conv", "blockwise-int8"),
                        "measured: AMD EPYC, AVX-512 VNNI, 2 cores, onnxruntime 1.32"),
    "x86-avx2": Ranking("x86-avx2", ("dynamic-int8-conv", "dynamic-matmul",
                                     "blockwise-int8-conv", "blockwise-int8"),
                        "measured for the MatMul recipes: AMD EPYC, AVX2 without VNNI, 2 threads, "
                        "onnxruntime 1.32; the INT8 conv stage not timed there"),
    "arm64-dotprod": Ranking("arm64-dotprod", ("dynamic-int8-conv", "dynamic-matmul",
                                               "blockwise-int8-conv", "blockwise-int8"),
                             "not measured on hardware: ordered by ONNX Runtime's kernels"),
    "arm64": Ranking("arm64", ("dynamic-int8-conv", "dynamic-matmul", "blockwise-int8-conv",
                               "blockwise-int8"),
                     "not measured on hardware: ordered by ONNX Runtime's kernels"),
}
TARGETS = (AUTO, *RANKINGS)


def _cpu_flags(cpuinfo: Path) -> set:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    flags: set = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def this_machine(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> str:
    """This CPU's target class (x86-vnni, x86-avx2, arm64-dotprod, arm64), or the machine
    name when it is none of them."""
    machine = (machine or platform.machine()).lower()
    flags = _cpu_flags(cpuinfo)
    if machine in ("x86_64", "amd64"):
        vnni = {"avx512_vnni", "avx_vnni", "avx512vnni"} & flags
        return "x86-vnni" if vnni else "x86-avx2"
    if machine in ("aarch64", "arm64"):
        return "arm64-dotprod" if "asimddp" in flags else "arm64"
    return machine


def check(target: str) -> str:
    if target not in TARGETS:
        raise ExportError(f"--target {target} is not one of {', '.join(TARGETS)}.")
    return target


def ranking(target: str) -> Ranking:
    """The committed order for ``target`` (a named class; ``auto`` is measured instead)."""
    return RANKINGS[check(target)]


def tuning_note(selection, machine: str | None = None) -> str | None:
    """A sentence when a bundle's INT8 recipe was chosen for another CPU class than this
    machine's (``selection``: the manifest's record of the choice), naming the recipe that
    ranks first here; None when it was chosen here, for this class, or by name."""
    if not selection:
        return None
    here = machine or this_machine()
    built_for = selection["target"] if selection["target"] != AUTO else selection["machine"]
    if built_for == here or here not in RANKINGS:
        return None
    chosen = selection["chosen"]
    passed = [t["recipe"] for t in selection["tries"] if t["gate"] != "failed"]
    faster = next((name for name in RANKINGS[here].order if name in passed), chosen)
    advice = (f"{faster} ranks first here among the recipes not refused by the gate; re-export "
              f"with --target {here} (or --target auto on this machine)"
              if faster != chosen else f"{chosen} also ranks first here")
    return (f"this bundle's INT8 recipe ({chosen}) was chosen for {built_for}; this machine is "
            f"{here}: {advice}.")
