"""The bundle contract has one home: constants in ``edgeser.contract``, the manifest as typed
values (``edgeser.bundle.Manifest``) that export writes and the runtime reads, schema-1 bundles
still readable, and a recorded quantization preset that reproduces its bundle."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import checkpoints
from edgeser import bundle as bundles
from edgeser import contract
from edgeser.errors import BundleError
from edgeser.export import ExportOptions, export_model
from test_bundle import base_manifest, with_files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "edgeser").rglob("*.py"), *(ROOT / "export").rglob("*.py")])


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ------------------------------------------------------------------------------------------
# One home for the constants and the manifest
# ------------------------------------------------------------------------------------------


def test_no_raw_manifest_reads_outside_the_bundle_package():
    """The runtime and the export read Manifest attributes, never JSON keys."""
    offenders = []
    for path in SOURCES:
        if _relative(path).startswith("edgeser/bundle/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            target = None
            if isinstance(node, ast.Subscript):
                target = node.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "get"):
                target = node.func.value
            name = target.attr if isinstance(target, ast.Attribute) else (
                target.id if isinstance(target, ast.Name) else None)
            if name == "manifest":
                offenders.append(f"{_relative(path)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("pattern, allowed", [
    (r"(?<![\w.])16_?000(?![\w.])", ("edgeser/contract.py",)),
    (r"[\"']input_values[\"']", ("edgeser/contract.py",)),
])
def test_contract_values_are_defined_once(pattern, allowed):
    """16 kHz and the graph's input name are spelled once; comments and docstrings may speak of
    them, code imports them from edgeser.contract."""
    offenders = []
    for path in SOURCES:
        if _relative(path) in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code) and not _in_docstring(path, number):
                offenders.append(f"{_relative(path)}:{number}: {line.strip()}")
    assert offenders == []


def _docstring_lines(path: Path) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
                and isinstance(node.value.value, str):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


_DOCSTRINGS: dict[Path, set[int]] = {}


def _in_docstring(path: Path, number: int) -> bool:
    if path not in _DOCSTRINGS:
        _DOCSTRINGS[path] = _docstring_lines(path)
    return number in _DOCSTRINGS[path]


def test_the_schema_accepts_only_normalisations_the_runtime_runs():
    assert contract.NORMALIZATION_MODES == ("per-window", "none")
    m = with_files(base_manifest(schema_version=2))
    m["normalization"] = {"mode": "running", "origin": "x"}
    m["quantization"] = {"method": "none", "precision": "fp32", "preset": None}
    assert "normalization.mode must be one of per-window, none" in bundles.validate_manifest(m)


# ------------------------------------------------------------------------------------------
# Schema 1 bundles
# ------------------------------------------------------------------------------------------


def test_a_schema_1_manifest_is_read_in_the_current_schema():
    v1 = with_files(base_manifest())
    assert v1["schema_version"] == 1 and v1["normalization"]["epsilon"] == 1e-7
    manifest = bundles.Manifest.from_json(v1)
    assert manifest.normalization == bundles.Normalization("per-window", "schema 1 bundle")
    assert manifest.quantization.precision == "fp32" and manifest.quantization.preset is None
    doc = manifest.to_json()
    assert doc["schema_version"] == bundles.SCHEMA_VERSION
    assert "epsilon" not in doc["normalization"]
    assert bundles.Manifest.from_json(doc) == manifest


def test_schema_1_in_graph_normalisation_means_raw_samples_and_other_modes_are_refused():
    v1 = with_files(base_manifest(normalization={"mode": "in-graph", "epsilon": 1e-7}))
    assert bundles.Manifest.from_json(v1).normalization.mode == "none"
    v1 = with_files(base_manifest(normalization={"mode": "per-file", "epsilon": 1e-7}))
    with pytest.raises(BundleError, match="normalization.mode must be one of per-window, none"):
        bundles.Manifest.from_json(v1, "model bundle old")


def test_every_problem_is_collected_in_one_sentence():
    v2 = with_files(base_manifest(schema_version=2, task="singing", labels=[]))
    with pytest.raises(BundleError) as info:
        bundles.Manifest.from_json(v2, "model bundle x")
    message = str(info.value)
    assert message.startswith("model bundle x has an invalid manifest: ")
    for problem in ("task must be one of", "labels must be a non-empty list",
                    "quantization.precision must be one of fp32, fp16, int8"):
        assert problem in message


# ------------------------------------------------------------------------------------------
# Export writes the typed manifest; the recorded preset reproduces the bundle
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return checkpoints.audeering_trained_like(tmp_path_factory.mktemp("ckpt") / "emotion")


def test_an_exported_manifest_round_trips(checkpoint, tmp_path):
    out = tmp_path / "b"
    export_model(ExportOptions(model=str(checkpoint), out=out, quantize="none", eval_windows=4))
    on_disk = json.loads((out / "manifest.json").read_text())
    loaded = bundles.load(out).manifest
    assert on_disk == loaded.to_json()
    assert bundles.Manifest.from_json(loaded.to_json()) == loaded
    assert on_disk["schema_version"] == bundles.SCHEMA_VERSION
    assert loaded.quantization == bundles.Quantization("fp32", "none", None, {"recipe": "fp32"})


# Presets whose recipe's internal name is not the preset (the schema-1 record could not be
# given back to --recipe), and the default.
@pytest.mark.parametrize("preset", ["blockwise-int8", "static-percentile",
                                    "dynamic-matmul-per-channel"])
def test_the_recorded_preset_reproduces_the_bundle(preset, checkpoint, tmp_path):
    windows = dict(eval_windows=8, calibration_windows=6, allow_degraded=True)
    first = export_model(ExportOptions(model=str(checkpoint), out=tmp_path / "a", recipe=preset,
                                       **windows))
    recorded = bundles.load(first.bundle).manifest.quantization
    assert recorded.precision == "int8" and recorded.preset == preset
    again = export_model(ExportOptions(model=str(checkpoint), out=tmp_path / "b",
                                       recipe=recorded.preset, **windows))
    assert bundles.load(again.bundle).manifest.quantization == recorded
    a, b = (Path(r.bundle) / "model.onnx" for r in (first, again))
    assert a.read_bytes() == b.read_bytes()
