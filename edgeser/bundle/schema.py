"""The manifest's JSON schema: :func:`validate_manifest` and the upgrade of older schemas.

:func:`validate_manifest` collects every problem before anything is raised: each checker appends
short phrases to ``problems``; none raises. :func:`upgrade` turns a schema-1 manifest into the
current schema (what schema 1 recorded but the runtime never used is dropped). The typed view is
:class:`edgeser.bundle.manifest.Manifest`. Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any, Callable, Mapping

from edgeser.contract import (INPUT_NAME, LOGITS_KINDS, NORMALIZATION_MODES, OUTPUT_NAMES,
                              SAMPLE_RATE_HZ, TASKS)
from edgeser.engines.record import EngineRecord
from edgeser.jsonchecks import file_name_problem as _name_problem
from edgeser.jsonchecks import is_int as _is_int
from edgeser.jsonchecks import is_number as _is_number
from edgeser.jsonchecks import is_text as _is_text

# 2: normalisation is a mode the runtime runs (per-window or none; no epsilon), the
# quantization record names the precision and the preset that reproduces it, and engines are
# ONNX Runtime TensorRT context models (edgeser.engines.EngineRecord).
SCHEMA_VERSION = 2
FORMAT = "edgeser-bundle"
MANIFEST = "manifest.json"
SOURCE_KINDS = ("hub", "local")
PRECISIONS = ("fp32", "fp16", "int8")

_HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# Manifest validation: each checker appends short phrases to ``problems``; none raises.
# --------------------------------------------------------------------------------------------

_MISSING = object()


def _get(m: Mapping, key: str, problems: list[str], where: str = "") -> Any:
    """``m[key]``, or ``_MISSING`` with a problem recorded."""
    if key in m:
        return m[key]
    problems.append(f"missing {where}{key}")
    return _MISSING


def _check_header(m: Mapping, problems: list[str]) -> None:
    version = _get(m, "schema_version", problems)
    if version is not _MISSING:
        if not _is_int(version) or version < 1:
            problems.append("schema_version must be a positive integer")
        elif version > SCHEMA_VERSION:
            problems.append(_too_new(version))
    fmt = _get(m, "format", problems)
    if fmt is not _MISSING and fmt != FORMAT:
        problems.append(f"format must be {FORMAT!r}")
    model_id = _get(m, "model_id", problems)
    if model_id is not _MISSING and not _is_text(model_id):
        problems.append("model_id must be a non-empty string")
    task = _get(m, "task", problems)
    if task is not _MISSING and task not in TASKS:
        problems.append(f"task must be one of {', '.join(TASKS)}")
    created = _get(m, "created_utc", problems)
    if created is not _MISSING and not _is_iso8601(created):
        problems.append("created_utc must be an ISO-8601 date-time string")


def _is_iso8601(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        _dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _too_new(version: int) -> str:
    return (
        f"bundle schema {version} is newer than this edgeser supports ({SCHEMA_VERSION}); "
        "upgrade edgeser"
    )


def _check_labels_outputs(m: Mapping, problems: list[str]) -> None:
    labels = _get(m, "labels", problems)
    labels_ok = isinstance(labels, list) and labels and all(_is_text(x) for x in labels)
    if labels is not _MISSING and not labels_ok:
        problems.append("labels must be a non-empty list of strings")
    elif labels_ok and len(set(labels)) != len(labels):
        problems.append("labels must be unique")
    outputs = _get(m, "outputs", problems)
    if outputs is _MISSING:
        return
    if not isinstance(outputs, dict):
        problems.append("outputs must be an object")
        return
    logits = _check_output(outputs, "logits", problems)
    if logits is not None and logits.get("kind") not in LOGITS_KINDS:
        problems.append(f"outputs.logits.kind must be one of {', '.join(LOGITS_KINDS)}")
    size = logits.get("size") if logits is not None else None
    if labels_ok and _is_int(size) and size != len(labels):
        problems.append(f"outputs.logits.size ({size}) must equal the number of labels")
    _check_output(outputs, "embedding", problems)


def _check_output(outputs: Mapping, name: str, problems: list[str]) -> dict | None:
    spec = _get(outputs, name, problems, "outputs.")
    if spec is _MISSING:
        return None
    if not isinstance(spec, dict):
        problems.append(f"outputs.{name} must be an object")
        return None
    size = spec.get("size")
    if not _is_int(size) or size < 1:
        problems.append(f"outputs.{name}.size must be a positive integer")
    if not isinstance(spec.get("meaning"), str):
        problems.append(f"outputs.{name}.meaning must be a string")
    return spec


def _check_audio(m: Mapping, problems: list[str]) -> None:
    rate = _get(m, "sample_rate_hz", problems)
    if rate is not _MISSING and (not _is_int(rate) or rate != SAMPLE_RATE_HZ):
        problems.append(f"sample_rate_hz must be {SAMPLE_RATE_HZ}")
    _check_normalization(m, problems)
    window = _get(m, "window_s", problems)
    window_ok = _is_number(window) and window > 0
    if window is not _MISSING and not window_ok:
        problems.append("window_s must be a positive number")
    hop = _get(m, "hop_s", problems)
    if hop is not _MISSING and not (_is_number(hop) and hop > 0):
        problems.append("hop_s must be a positive number")
    elif window_ok and hop is not _MISSING and hop > window:
        problems.append("hop_s must not exceed window_s")
    min_samples = _get(m, "min_samples", problems)
    if min_samples is not _MISSING and not (_is_int(min_samples) and min_samples >= 1):
        problems.append("min_samples must be a positive integer")
    silence = _get(m, "silence_dbfs", problems)
    if silence is not _MISSING and not (_is_number(silence) and silence <= 0):
        problems.append("silence_dbfs must be a finite number <= 0")
    _check_gating(m, problems)


def _check_gating(m: Mapping, problems: list[str]) -> None:
    # Optional: bundles made before voice activity gating and denoising do neither.
    vad = m.get("vad")
    if vad is not None:
        min_speech = vad.get("min_speech") if isinstance(vad, dict) else None
        if not (isinstance(vad, dict) and isinstance(vad.get("enabled", False), bool)
                and (min_speech is None or (_is_number(min_speech) and 0 <= min_speech <= 1))):
            problems.append("vad must be an object with enabled (true/false) and min_speech (a "
                            "fraction from 0 to 1, or null)")
    if not isinstance(m.get("denoise", False), bool):
        problems.append("denoise must be true or false")


def _check_normalization(m: Mapping, problems: list[str]) -> None:
    norm = _get(m, "normalization", problems)
    if norm is _MISSING:
        return
    if not isinstance(norm, dict):
        problems.append("normalization must be an object")
        return
    if norm.get("mode") not in NORMALIZATION_MODES:
        problems.append(f"normalization.mode must be one of {', '.join(NORMALIZATION_MODES)}")
    if not isinstance(norm.get("origin", ""), str):
        problems.append("normalization.origin must be a string")


def _check_decisions(m: Mapping, problems: list[str]) -> None:
    laughter = m.get("task") == "laughter"
    points = _get(m, "operating_points", problems)
    points_ok = isinstance(points, dict) and all(
        _is_text(k) and _is_number(v) and 0 < v < 1 for k, v in points.items()
    )
    if points is not _MISSING and not points_ok:
        problems.append("operating_points must map names to thresholds in (0, 1)")
    elif laughter and points_ok and not points:
        problems.append("operating_points must not be empty for a laughter bundle")
    default = _get(m, "default_operating_point", problems)
    if default is None and laughter:
        problems.append("default_operating_point must name an operating point for laughter")
    elif default not in (None, _MISSING) and not (points_ok and isinstance(default, str)
                                                   and default in points):
        problems.append("default_operating_point must be one of operating_points")
    positive = _get(m, "positive_label", problems)
    labels = m.get("labels") if isinstance(m.get("labels"), list) else []
    if positive is None and laughter:
        problems.append("positive_label must name a label for laughter")
    elif positive not in (None, _MISSING) and positive not in labels:
        problems.append("positive_label must be one of labels")
    _check_origins(m, points if points_ok else None, problems)
    _check_prototypes(m, problems)


def _check_origins(m: Mapping, points: Mapping | None, problems: list[str]) -> None:
    # Optional: operating points given by hand (or in bundles made before it) have no origin.
    origins = m.get("operating_point_origins", {})
    if not isinstance(origins, dict):
        problems.append("operating_point_origins must be an object")
        return
    for name, origin in origins.items():
        where = f"operating_point_origins[{name!r}]"
        if points is not None and name not in points:
            problems.append(f"{where} names no operating point")
        if not isinstance(origin, dict):
            problems.append(f"{where} must be an object")
            continue
        counts = [origin.get(k) for k in ("files", "windows", "positive_windows")]
        if not (all(_is_text(origin.get(k)) for k in ("rule", "labels_file", "tool"))
                and isinstance(origin.get("labels_sha256"), str)
                and _HEX64.fullmatch(origin["labels_sha256"])
                and all(_is_int(c) and c >= 0 for c in counts) and counts[0] >= 1
                and counts[2] <= counts[1]
                and _is_iso8601(origin.get("created_utc"))
                and isinstance(origin.get("denoised", False), bool)
                and isinstance(origin.get("measured", {}), dict)
                and all(v is None or _is_number(v) for v in origin.get("measured", {}).values())):
            problems.append(f"{where} must record rule, labels_file, labels_sha256 (64 hex "
                            "digits), files (>= 1), windows, positive_windows (<= windows), "
                            "measured (numbers), created_utc, tool and denoised (true/false)")


def _check_prototypes(m: Mapping, problems: list[str]) -> None:
    protos = _get(m, "prototypes", problems)
    if protos is None and m.get("task") == "emotion-prototypes":
        problems.append("prototypes are required for an emotion-prototypes bundle")
    if protos is None or protos is _MISSING:
        return
    if not isinstance(protos, dict):
        problems.append("prototypes must be null or an object")
        return
    labels = protos.get("labels")
    if not (isinstance(labels, list) and labels and all(_is_text(x) for x in labels)):
        problems.append("prototypes.labels must be a non-empty list of strings")
        labels = None
    vectors = protos.get("vectors")
    rows_ok = isinstance(vectors, list) and vectors and all(
        isinstance(row, list) and row and all(_is_number(x) for x in row) for row in vectors
    )
    if not rows_ok or len({len(row) for row in vectors}) != 1:
        problems.append("prototypes.vectors must be a rectangular list of finite numbers")
    elif labels is not None and len(vectors) != len(labels):
        problems.append("prototypes.vectors must have one row per prototype label")


def _check_files(m: Mapping, problems: list[str]) -> None:
    files = _get(m, "files", problems)
    names: set[str] = set()
    if files is not _MISSING and not isinstance(files, dict):
        problems.append("files must be an object")
    elif isinstance(files, dict):
        names = set(files)
        for name, entry in files.items():
            _check_file_entry(name, entry, problems)
    listed = names if isinstance(files, dict) else None
    _check_graphs(m, listed, problems)
    _check_engines(m, listed, problems)
    _check_reference(m, listed, problems)


def _check_file_entry(name: str, entry: Any, problems: list[str]) -> None:
    why = _name_problem(name)
    if why:
        problems.append(f"files: {name!r} {why}")
    elif name == MANIFEST:
        problems.append(f"files must not list {MANIFEST}")
    if not isinstance(entry, dict):
        problems.append(f"files[{name!r}] must be an object")
        return
    if not (isinstance(entry.get("sha256"), str) and _HEX64.fullmatch(entry["sha256"])):
        problems.append(f"files[{name!r}].sha256 must be 64 lowercase hex digits")
    if not (_is_int(entry.get("bytes")) and entry["bytes"] >= 0):
        problems.append(f"files[{name!r}].bytes must be a non-negative integer")


def _check_ref(where: str, name: Any, listed: set[str] | None, problems: list[str]) -> None:
    """A file named by another manifest field: safe, and listed under ``files``."""
    why = _name_problem(name)
    if why:
        problems.append(f"{where} {name!r} {why}")
    elif listed is not None and name not in listed:
        problems.append(f"{where} {name!r} is not listed in files")


def _check_graphs(m: Mapping, listed: set[str] | None, problems: list[str]) -> None:
    graphs = _get(m, "graphs", problems)
    if graphs is _MISSING:
        return
    if not (isinstance(graphs, list) and graphs and all(isinstance(g, dict) for g in graphs)):
        problems.append("graphs must be a non-empty list of objects")
        return
    roles = [g.get("role") for g in graphs]
    if len(set(map(str, roles))) != len(roles):
        problems.append("graphs must have unique roles")
    for i, graph in enumerate(graphs):
        _check_graph(i, graph, listed, problems)


def _check_graph(i: int, graph: Mapping, listed: set[str] | None, problems: list[str]) -> None:
    _check_ref(f"graphs[{i}].file", graph.get("file"), listed, problems)
    if not _is_text(graph.get("role")):
        problems.append(f"graphs[{i}].role must be a non-empty string")
    if not (_is_int(graph.get("opset")) and graph["opset"] >= 1):
        problems.append(f"graphs[{i}].opset must be a positive integer")
    inputs, outputs = graph.get("inputs"), graph.get("outputs")
    if not (isinstance(inputs, dict) and isinstance(outputs, dict)):
        problems.append(f"graphs[{i}].inputs and .outputs must be objects")
    elif graph.get("role") == "full":
        if INPUT_NAME not in inputs or any(name not in outputs for name in OUTPUT_NAMES):
            problems.append(
                f"graphs[{i}] (full) must take {INPUT_NAME} and give {' and '.join(OUTPUT_NAMES)}"
            )


def _check_engines(m: Mapping, listed: set[str] | None, problems: list[str]) -> None:
    engines = _get(m, "engines", problems)
    if engines is _MISSING:
        return
    if not isinstance(engines, list):
        problems.append("engines must be a list")
        return
    for i, engine in enumerate(engines):
        record, record_problems = EngineRecord.from_json(engine, f"engines[{i}]")
        problems.extend(record_problems)
        if record is not None:
            _check_ref(f"engines[{i}].file", record.file, listed, problems)
            _check_ref(f"engines[{i}].context_model", record.context_model, listed, problems)


def _check_reference(m: Mapping, listed: set[str] | None, problems: list[str]) -> None:
    ref = _get(m, "reference_windows", problems)
    if ref is _MISSING:
        return
    if not isinstance(ref, dict):
        problems.append("reference_windows must be an object")
        return
    _check_ref("reference_windows.file", ref.get("file"), listed, problems)
    if not (_is_int(ref.get("count")) and ref["count"] >= 1):
        problems.append("reference_windows.count must be a positive integer")
    if not (_is_number(ref.get("atol")) and ref["atol"] >= 0):
        problems.append("reference_windows.atol must be a finite number >= 0")


def _check_provenance(m: Mapping, problems: list[str]) -> None:
    quant = _get(m, "quantization", problems)
    if quant is not _MISSING and not (isinstance(quant, dict) and _is_text(quant.get("method"))):
        problems.append("quantization must be an object with a method")
    elif isinstance(quant, dict):
        if quant.get("precision") not in PRECISIONS:
            problems.append(f"quantization.precision must be one of {', '.join(PRECISIONS)}")
        if not (quant.get("preset") is None or _is_text(quant.get("preset"))):
            problems.append("quantization.preset must be a string or null")
    _check_pruning(m, problems)
    if not isinstance(m.get("distillation"), (dict, type(None))):
        problems.append("distillation must be null or an object")
    _check_source(m, problems)
    for key in ("parity", "tools"):
        value = _get(m, key, problems)
        if value is not _MISSING and not isinstance(value, dict):
            problems.append(f"{key} must be an object")
    tools = m.get("tools")
    if isinstance(tools, dict) and not all(isinstance(v, str) for v in tools.values()):
        problems.append("tools must map names to version strings")
    gate = m.get("parity", {}).get("gate") if isinstance(m.get("parity"), dict) else None
    if gate is not None and not (
            isinstance(gate, dict) and isinstance(gate.get("passed"), bool)
            and isinstance(gate.get("allowed_degraded", False), bool)
            and isinstance(gate.get("failures"), list) and all(_is_text(f) for f in gate["failures"])):
        problems.append("parity.gate must be an object with passed (true/false) and failures "
                        "(a list of strings)")


def _check_pruning(m: Mapping, problems: list[str]) -> None:
    pruning = _get(m, "pruning", problems)
    if pruning is None or pruning is _MISSING:
        return
    kept = pruning.get("layers_kept") if isinstance(pruning, dict) else None
    total = pruning.get("layers_in_checkpoint") if isinstance(pruning, dict) else None
    if not (_is_int(kept) and _is_int(total) and 1 <= kept <= total):
        problems.append("pruning must be null or 1 <= layers_kept <= layers_in_checkpoint")


def _check_source(m: Mapping, problems: list[str]) -> None:
    source = _get(m, "source", problems)
    if source is _MISSING:
        return
    if not isinstance(source, dict):
        problems.append("source must be an object")
        return
    for key in ("model", "architecture", "family"):
        if not _is_text(source.get(key)):
            problems.append(f"source.{key} must be a non-empty string")
    if source.get("kind") not in SOURCE_KINDS:
        problems.append(f"source.kind must be one of {', '.join(SOURCE_KINDS)}")
    for key in ("revision", "commit"):
        if not (source.get(key) is None or isinstance(source.get(key), str)):
            problems.append(f"source.{key} must be a string or null")
    weights = source.get("weights")
    if not (isinstance(weights, list) and all(_is_weight(w) for w in weights)):
        problems.append("source.weights must be a list of {file, sha256}")


def _is_weight(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and _is_text(entry.get("file"))
        and isinstance(entry.get("sha256"), str)
        and _HEX64.fullmatch(entry["sha256"]) is not None
    )


def _check_json(m: Mapping, problems: list[str]) -> None:
    try:
        json.dumps(m, allow_nan=False)
    except (TypeError, ValueError) as err:
        problems.append(f"manifest is not strict JSON ({err})")


_CHECKS: tuple[Callable[[Mapping, list[str]], None], ...] = (
    _check_header,
    _check_labels_outputs,
    _check_audio,
    _check_decisions,
    _check_files,
    _check_provenance,
    _check_json,
)


def _upgrade_normalization(norm: Any) -> Any:
    if not isinstance(norm, dict):
        return norm
    # Schema 1 also named modes the runtime never ran (per-file, running): they stay invalid.
    # "in-graph" meant the graph normalises, so the runtime feeds raw samples: mode "none".
    mode = "none" if norm.get("mode") == "in-graph" else norm.get("mode")
    return {"mode": mode, "origin": "schema 1 bundle"}


def _upgrade_quantization(quant: Any) -> Any:
    if not isinstance(quant, dict):
        return quant
    weights = quant.get("weights", "fp32" if quant.get("method") == "none" else None)
    precision = {"int8": "int8", "fp16": "fp16", "fp32": "fp32"}.get(weights)
    # Schema 1 recorded the recipe's internal name, not always a preset --recipe takes.
    return {**quant, "precision": precision, "preset": None}


def upgrade(m: Any) -> Any:
    """A schema-1 manifest in the current schema (anything else is returned unchanged)."""
    if not (isinstance(m, dict) and m.get("schema_version") == 1):
        return m
    upgraded = dict(m, schema_version=SCHEMA_VERSION)
    if "normalization" in m:
        upgraded["normalization"] = _upgrade_normalization(m["normalization"])
    if "quantization" in m:
        upgraded["quantization"] = _upgrade_quantization(m["quantization"])
    if isinstance(m.get("engines"), list):
        # Schema 1 recorded TensorRT .plan files that no runtime ran; engines are now ONNX
        # Runtime context models built on the device (`edgeser engine build`). The old files
        # stay listed and hashed.
        upgraded["engines"] = []
    return upgraded


def validate_manifest(m: dict) -> list[str]:
    """Every problem with manifest ``m``, each a short phrase; an empty list when it is valid.

    Unknown keys are allowed (forward compatibility). A schema-1 manifest is judged after
    :func:`upgrade`. Only structure and values are checked here; the files themselves are checked
    when a bundle is loaded.
    """
    if not isinstance(m, dict):
        return ["manifest is not a JSON object"]
    m = upgrade(m)
    problems: list[str] = []
    for check in _CHECKS:
        check(m, problems)
    return problems
