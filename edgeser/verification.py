"""Self-check of a bundle on this device: :func:`verify` and :class:`VerifyReport`.

Sits above :mod:`edgeser.bundle` (reading) and :mod:`edgeser.inference` (running): every file is
rehashed, then the stored reference windows run through ONNX Runtime and are compared with
their expected outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.bundle import Bundle, FidelityGate, load
from edgeser.contract import OUTPUT_NAMES
from edgeser.errors import BundleError
from edgeser.inference import Session, SessionSettings


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`. ``max_abs_error`` is per output name over all windows (NaN when
    no window of that output could be compared); ``problems`` name the window and output."""

    bundle: Path
    files_checked: int
    windows_checked: int
    max_abs_error: dict[str, float] = field(hash=False)
    atol: float
    ok: bool
    problems: tuple[str, ...]
    gate: FidelityGate = FidelityGate(True)  # the export's fidelity verdict, as recorded


def _read_reference(bundle: Bundle) -> list[dict[str, np.ndarray]]:
    """``[{"input": x, "logits": y, "embedding": e}, ...]`` from the reference file."""
    ref = bundle.manifest.reference_windows
    path = bundle.path / ref.file
    keys = ("input",) + OUTPUT_NAMES
    wanted = [[f"{k}_{i}" for k in keys] for i in range(ref.count)]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for names in wanted for name in names if name not in data.files]
            if not missing:
                return [{k: np.asarray(data[n]) for k, n in zip(keys, names)} for names in wanted]
        problem = f"{ref.file} lacks {', '.join(missing[:3])}" + (" ..." if missing[3:] else "")
    except Exception as err:  # zip/npz/pickle refusal errors vary by NumPy version
        problem = f"{ref.file} cannot be read as .npz ({err})"
    raise BundleError(f"model bundle {bundle.path}: {problem}.")


def _session(bundle: Bundle) -> Any:
    """A CPU session on the full graph, one thread (the reference windows are few)."""
    return Session(bundle, SessionSettings(threads=1))


def _compare(i: int, name: str, got: np.ndarray, want: np.ndarray, atol: float):
    """``(max abs error or None, problem or None)`` for one output of one window."""
    if got.shape != want.shape:
        return None, f"window {i} {name}: shape {got.shape} differs from the expected {want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    error = float(np.max(diff)) if diff.size else 0.0
    if not error <= atol:  # also catches NaN
        return error, f"window {i} {name}: max abs error {error:.3g} exceeds atol {atol:g}"
    return error, None


def _run_window(session: Any, i: int, window: dict, atol: float, errors: dict, problems: list):
    try:
        got = session.run(window["input"])
    except BundleError as err:
        problems.append(f"window {i}: {err}".rstrip("."))
        return
    for name, value in zip(OUTPUT_NAMES, got):
        error, problem = _compare(i, name, np.asarray(value), window[name], atol)
        if error is not None:
            errors[name].append(error)
        if problem is not None:
            problems.append(problem)


def verify(target: str | os.PathLike | Bundle) -> VerifyReport:
    """Rehash every file, then run each reference window through ONNX Runtime (CPU) and compare
    ``logits`` and ``embedding`` with the stored expectations within the manifest's ``atol``.

    ``target`` is a bundle directory (loaded here with a full rehash) or a :class:`Bundle`
    already loaded with ``rehash=True``. Manifest, file and hash problems raise BundleError (as
    :func:`edgeser.bundle.load`); numeric disagreement returns a report with ``ok=False`` and
    the problems.
    """
    bundle = target if isinstance(target, Bundle) else load(target, rehash=True)
    windows = _read_reference(bundle)
    atol = bundle.manifest.reference_windows.atol
    session = _session(bundle)
    errors: dict[str, list[float]] = {name: [] for name in OUTPUT_NAMES}
    problems: list[str] = []
    for i, window in enumerate(windows):
        _run_window(session, i, window, atol, errors, problems)
    worst = {k: float(np.max(v)) if v else float("nan") for k, v in errors.items()}
    return VerifyReport(
        bundle=bundle.path,
        files_checked=len(bundle.manifest.files),
        windows_checked=len(windows),
        max_abs_error=worst,
        atol=atol,
        ok=not problems,
        problems=tuple(problems),
        gate=bundle.gate,
    )
