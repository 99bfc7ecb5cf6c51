"""The model bundle: a directory holding everything a device needs to run one model.

Layout: ``manifest.json`` (schema below, :data:`SCHEMA_VERSION`), the ONNX graph(s) it lists under
``"graphs"`` (normally one ``model.onnx`` with role ``"full"``), ``reference.npz`` (reference input
windows and their expected outputs, for :func:`verify`) and possibly other files. The manifest's
``"files"`` maps every other file, by relative POSIX name, to its sha256 and size.

Conventions:

- Reading: :func:`load` validates the manifest (:func:`validate_manifest` collects every problem
  before anything is raised), refuses names that are absolute or escape the bundle (``..``, or a
  symlink resolving outside it), and checks sizes and sha256 hashes. The full hash pass runs once;
  a *stamp* keyed by each file's size, mtime and inode (under :func:`edgeser_home`) lets later
  loads skip it. ``load(..., rehash=True)`` and :func:`verify` always rehash.
- Writing: :func:`stage_bundle` hands out a temporary directory beside the destination; its
  :meth:`BundleStage.commit` hashes the files, validates the manifest, writes and fsyncs it, then
  publishes with one ``rename``. Nothing is published when the manifest is invalid or the block
  raises, so a reader never sees a half-written bundle.
- Every failure is a :class:`~edgeser.errors.BundleError` whose message is one sentence naming the
  bundle directory and the problem(s). This module never prints.
- Runtime only: numpy, onnxruntime (imported inside :func:`verify`) and the standard library.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from edgeser.errors import BundleError

SCHEMA_VERSION = 1
FORMAT = "edgeser-bundle"
MANIFEST = "manifest.json"
TASKS = ("emotion-dimensional", "emotion-categorical", "emotion-prototypes", "laughter")
LOGIT_KINDS = ("regression", "class-logits", "similarity")
NORMALIZATION_MODES = ("per-window", "per-file", "running", "in-graph")
SOURCE_KINDS = ("hub", "local")
SAMPLE_RATE_HZ = 16000
# The ONNX contract: one input, two outputs (see DESIGN.md, "The model bundle").
INPUT_NAME = "input_values"
OUTPUT_NAMES = ("logits", "embedding")
# TensorRT engine precisions (see edgeser.engines for the record).
ENGINE_PRECISIONS = ("fp16", "int8")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK_BYTES = 1 << 20
_STAMP_VERSION = 1


# --------------------------------------------------------------------------------------------
# Manifest validation: each checker appends short phrases to ``problems``; none raises.
# --------------------------------------------------------------------------------------------

_MISSING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _get(m: Mapping, key: str, problems: list[str], where: str = "") -> Any:
    """``m[key]``, or ``_MISSING`` with a problem recorded."""
    if key in m:
        return m[key]
    problems.append(f"missing {where}{key}")
    return _MISSING


def _name_problem(name: Any) -> str | None:
    """Why ``name`` is not a safe relative POSIX file name inside a bundle, or None."""
    if not isinstance(name, str) or name == "":
        return "is not a file name"
    if "\\" in name or "\x00" in name:
        return "contains a backslash or NUL"
    pure = PurePosixPath(name)
    if pure.is_absolute() or re.match(r"[A-Za-z]:", name):
        return "is absolute"
    if ".." in pure.parts:
        return "escapes the bundle"
    if str(pure) != name or "." in name.split("/"):
        return "is not a normalised relative name"
    return None


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
    if logits is not None and logits.get("kind") not in LOGIT_KINDS:
        problems.append(f"outputs.logits.kind must be one of {', '.join(LOGIT_KINDS)}")
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


def _check_normalization(m: Mapping, problems: list[str]) -> None:
    norm = _get(m, "normalization", problems)
    if norm is _MISSING:
        return
    if not isinstance(norm, dict):
        problems.append("normalization must be an object")
        return
    if norm.get("mode") not in NORMALIZATION_MODES:
        problems.append(f"normalization.mode must be one of {', '.join(NORMALIZATION_MODES)}")
    epsilon = norm.get("epsilon")
    if not (_is_number(epsilon) and epsilon > 0):
        problems.append("normalization.epsilon must be a positive number")


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
    _check_prototypes(m, problems)


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
        if not isinstance(engine, dict):
            problems.append(f"engines[{i}] must be an object")
            continue
        _check_ref(f"engines[{i}].file", engine.get("file"), listed, problems)
        if engine.get("precision") not in ENGINE_PRECISIONS:
            problems.append(f"engines[{i}].precision must be one of {', '.join(ENGINE_PRECISIONS)}")
        for key in ("tensorrt", "cuda", "gpu", "compute_capability"):
            if not _is_text(engine.get(key)):
                problems.append(f"engines[{i}].{key} must be a non-empty string")
        _check_engine_profile(i, engine.get("profile"), problems)


def _check_engine_profile(i: int, profile: Any, problems: list[str]) -> None:
    """``{"input": name, "batch": [min, opt, max], "samples": [min, opt, max]}``, 1 <= min <= opt
    <= max."""
    where = f"engines[{i}].profile"
    if not isinstance(profile, dict):
        problems.append(f"{where} must be an object")
        return
    if not _is_text(profile.get("input")):
        problems.append(f"{where}.input must be a non-empty string")
    for key in ("batch", "samples"):
        dims = profile.get(key)
        if not (isinstance(dims, list) and len(dims) == 3 and all(_is_int(d) for d in dims)
                and 1 <= dims[0] <= dims[1] <= dims[2]):
            problems.append(f"{where}.{key} must be [min, opt, max] integers, 1 <= min <= opt <= max")


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
    _check_pruning(m, problems)
    _check_source(m, problems)
    for key in ("parity", "tools"):
        value = _get(m, key, problems)
        if value is not _MISSING and not isinstance(value, dict):
            problems.append(f"{key} must be an object")
    tools = m.get("tools")
    if isinstance(tools, dict) and not all(isinstance(v, str) for v in tools.values()):
        problems.append("tools must map names to version strings")


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


def validate_manifest(m: dict) -> list[str]:
    """Every problem with manifest ``m``, each a short phrase; an empty list when it is valid.

    Unknown keys are allowed (forward compatibility). Only structure and values are checked here;
    the files themselves are checked by :func:`load`.
    """
    if not isinstance(m, dict):
        return ["manifest is not a JSON object"]
    problems: list[str] = []
    for check in _CHECKS:
        check(m, problems)
    return problems


# --------------------------------------------------------------------------------------------
# The loaded bundle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A validated bundle on disk. ``manifest`` is the parsed, validated ``manifest.json``."""

    path: Path
    manifest: dict = field(hash=False, repr=False)

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def window_s(self) -> float:
        return float(self.manifest["window_s"])

    @property
    def hop_s(self) -> float:
        return float(self.manifest["hop_s"])

    @property
    def min_samples(self) -> int:
        return int(self.manifest["min_samples"])

    @property
    def silence_dbfs(self) -> float:
        return float(self.manifest["silence_dbfs"])

    @property
    def operating_points(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.manifest["operating_points"].items()}

    @property
    def default_operating_point(self) -> str | None:
        return self.manifest["default_operating_point"]

    @property
    def positive_label(self) -> str | None:
        return self.manifest["positive_label"]

    @property
    def prototypes(self) -> np.ndarray | None:
        """Prototype vectors, float32 ``[n_prototypes, dim]`` (labels in
        ``manifest["prototypes"]["labels"]``), or None."""
        protos = self.manifest["prototypes"]
        return None if protos is None else np.asarray(protos["vectors"], dtype=np.float32)

    def graph_path(self, role: str = "full") -> Path:
        """The ONNX file of the graph with ``role``; BundleError when the bundle has none."""
        for graph in self.manifest["graphs"]:
            if graph["role"] == role:
                return self.path / graph["file"]
        raise BundleError(f"model bundle {self.path} has no graph with role {role!r}.")


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def edgeser_home() -> Path:
    """``$EDGESER_HOME``, else ``$XDG_CACHE_HOME/edgeser``, else ``~/.cache/edgeser``."""
    home = os.environ.get("EDGESER_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "edgeser"
    return Path.home() / ".cache" / "edgeser"


def _bad_id(text: str, max_slashes: int) -> bool:
    parts = text.split("/")
    return (
        len(parts) > max_slashes + 1
        or any(part.strip() in ("", ".") for part in parts)
        or ".." in text
        or any(ch in text for ch in "\\\x00")
    )


def default_bundle_dir(model_id: str, revision: str | None = None) -> Path:
    """Where the bundle for ``model_id`` at ``revision`` lives by default:
    ``edgeser_home()/bundles/<org>--<name>@<revision or main>``."""
    if not isinstance(model_id, str) or _bad_id(model_id, 1):
        raise BundleError(
            f"model id {model_id!r} cannot name a bundle directory: use 'org/name' or a plain "
            "name, without '..' or other path separators."
        )
    if revision is not None and (not isinstance(revision, str) or _bad_id(revision, 0)):
        raise BundleError(
            f"revision {revision!r} cannot name a bundle directory: use a commit hash or a "
            "branch or tag name without '/', '\\' or '..'."
        )
    name = f"{model_id.replace('/', '--')}@{revision or 'main'}"
    return edgeser_home() / "bundles" / name


# --------------------------------------------------------------------------------------------
# Hashing and the stamp
# --------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents (module-level so tests can count calls)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _stamp_path(real_root: Path) -> Path:
    key = hashlib.sha256(str(real_root).encode("utf-8", "surrogateescape")).hexdigest()
    return edgeser_home() / "stamps" / f"{key}.json"


def _read_stamp(real_root: Path) -> dict[str, dict]:
    """``{name: {"key": [...], "sha256": ...}}`` from the stamp, or {} when absent or unusable."""
    try:
        data = json.loads(_stamp_path(real_root).read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError):
        return {}
    ok = (
        isinstance(data, dict)
        and data.get("stamp") == _STAMP_VERSION
        and data.get("bundle") == str(real_root)
        and isinstance(data.get("files"), dict)
    )
    return data["files"] if ok else {}


def _write_stamp(real_root: Path, files: dict[str, dict]) -> None:
    """Write the stamp atomically; a cache that cannot be written just means no stamp."""
    data = {"stamp": _STAMP_VERSION, "bundle": str(real_root), "files": files}
    tmp = None
    try:
        target = _stamp_path(real_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(6)}")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, target)
    except (OSError, RuntimeError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _stamp_entries(root: Path, files: Mapping[str, Mapping]) -> dict[str, dict]:
    entries = {}
    for name, entry in files.items():
        with contextlib.suppress(OSError):
            entries[name] = {"key": _stat_key(os.stat(root / name)), "sha256": entry["sha256"]}
    return entries


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _read_manifest(root: Path) -> Any:
    if not root.exists():
        raise BundleError(f"model bundle {root} does not exist.")
    if not root.is_dir():
        raise BundleError(f"model bundle {root} is not a directory.")
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"model bundle {root} has no {MANIFEST}.") from None
    except OSError as err:
        problem = f"cannot read {MANIFEST} ({err.strerror})"
        raise BundleError(f"model bundle {root}: {problem}.") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"model bundle {root}: {MANIFEST} is not UTF-8 text.") from None
    except json.JSONDecodeError as err:
        raise BundleError(
            f"model bundle {root}: {MANIFEST} is not valid JSON "
            f"({err.msg} at line {err.lineno}, column {err.colno})."
        ) from None


def _check_manifest(root: Path, manifest: Any) -> None:
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if _is_int(version) and version > SCHEMA_VERSION:
        raise BundleError(f"model bundle {root}: {_too_new(version)}.")
    problems = validate_manifest(manifest)
    if problems:
        raise BundleError(f"model bundle {root} has an invalid manifest: {'; '.join(problems)}.")


def _stat_listed(real_root: Path, root: Path, name: str, entry: Mapping) -> tuple[Any, Any]:
    """``(problem, None)``, or ``(None, (resolved path, stat))`` for one listed file."""
    path = root / name
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return f"{name} cannot be resolved (symlink loop?)", None
    if not resolved.is_relative_to(real_root):
        return f"{name} resolves outside the bundle", None
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        return f"{name} is missing", None
    except OSError as err:
        return f"{name} cannot be read ({err.strerror})", None
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file", None
    if st.st_size != entry["bytes"]:
        return f"{name} has {st.st_size} bytes where the manifest says {entry['bytes']}", None
    return None, (resolved, st)


def _hash_listed(
    path: Path, name: str, st: os.stat_result, expected: str
) -> tuple[str | None, bool]:
    """``(problem, stable)``: hash one file; ``stable`` when it did not change while hashed."""
    try:
        digest = _sha256_file(path)
        stable = _stat_key(os.stat(path)) == _stat_key(st)
    except OSError as err:
        return f"{name} cannot be read ({err.strerror})", False
    if digest != expected:
        return f"{name}: sha256 mismatch (the file changed since the bundle was written)", False
    return None, stable


def _check_listed_files(root: Path, files: Mapping[str, Mapping], rehash: bool) -> None:
    """Sizes, containment and hashes of every listed file; hashes skipped where the stamp is
    still valid. Raises one BundleError listing every problem."""
    real_root = root.resolve()
    stamp = {} if rehash else _read_stamp(real_root)
    problems: list[str] = []
    fresh: dict[str, dict] = {}
    hashed = False
    for name, entry in files.items():
        problem, found = _stat_listed(real_root, root, name, entry)
        if problem is None:
            resolved, st = found
            known = stamp.get(name)
            key = _stat_key(st)
            if isinstance(known, dict) and known == {"key": key, "sha256": entry["sha256"]}:
                fresh[name] = known
                continue
            hashed = True
            problem, stable = _hash_listed(resolved, name, st, entry["sha256"])
            if problem is None and stable:
                fresh[name] = {"key": key, "sha256": entry["sha256"]}
        if problem is not None:
            problems.append(problem)
    if problems:
        raise BundleError(f"model bundle {root}: {'; '.join(problems)}.")
    if hashed:
        _write_stamp(real_root, fresh)


def load(path: str | os.PathLike, *, rehash: bool = False) -> Bundle:
    """Open the bundle directory ``path``: validate its manifest and check its files.

    Hashes are checked in full on first use and remembered in a stamp (see module docs);
    ``rehash=True`` ignores the stamp. Raises BundleError naming the bundle and the problem(s).
    """
    root = Path(path)
    manifest = _read_manifest(root)
    _check_manifest(root, manifest)
    _check_listed_files(root, manifest["files"], rehash)
    return Bundle(path=root.absolute(), manifest=manifest)


# --------------------------------------------------------------------------------------------
# Writing: stage in a temp dir beside the destination, publish with one rename
# --------------------------------------------------------------------------------------------


def _sibling(dest: Path, kind: str) -> Path:
    """A fresh hidden sibling name ``.{dest.name}.{kind}-<random>`` (not created)."""
    while True:
        candidate = dest.with_name(f".{dest.name}.{kind}-{secrets.token_hex(6)}")
        if not os.path.lexists(candidate):
            return candidate


def _walk_files(root: Path, dest: Path) -> list[str]:
    """Relative POSIX names of every file under ``root`` except the top-level manifest;
    symlinks and special files are refused."""
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            full = Path(dirpath, entry)
            rel = full.relative_to(root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise BundleError(f"cannot publish bundle {dest}: {rel} is a symlink.")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BundleError(f"cannot publish bundle {dest}: {rel} is not a regular file.")
            if stat.S_ISREG(mode) and rel != MANIFEST:
                names.append(rel)
    return sorted(names)


def _describe_files(root: Path, dest: Path) -> dict[str, dict]:
    return {
        name: {"sha256": _sha256_file(root / name), "bytes": os.stat(root / name).st_size}
        for name in _walk_files(root, dest)
    }


def _fsync_path(path: Path, directory: bool) -> None:
    """fsync a file (errors raise) or a directory (best effort: some platforms and file systems
    cannot open or sync directories)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not directory:
            raise


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            _fsync_path(Path(dirpath, name), directory=False)
        _fsync_path(Path(dirpath), directory=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _refuse_existing(dest: Path) -> None:
    raise BundleError(
        f"cannot publish bundle {dest}: it already exists (pass overwrite=True to replace it)."
    )


def _publish(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``dest``; with ``overwrite`` an existing dest is moved aside first,
    restored if the rename fails, and deleted after."""
    if not os.path.lexists(dest):
        os.rename(tmp, dest)
    elif not overwrite:
        _refuse_existing(dest)
    else:
        old = _sibling(dest, "old")
        os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except OSError:
            os.rename(old, dest)
            raise
        _remove(old)
    _fsync_path(dest.parent, directory=True)


class BundleStage:
    """A bundle being written: put files under :attr:`path`, then :meth:`commit` a manifest."""

    def __init__(self, path: Path, dest: Path, overwrite: bool) -> None:
        self.path = path
        self.dest = dest
        self.overwrite = overwrite
        self.committed = False

    def commit(self, manifest: dict) -> Bundle:
        """Hash every file under :attr:`path` into a copy of ``manifest`` (``"files"``), validate
        it, write and fsync ``manifest.json`` and publish the directory at the destination.

        Raises BundleError (nothing published) when the manifest is invalid, the destination
        exists without ``overwrite``, or the file system refuses. Returns the published bundle.
        """
        if self.committed:
            raise BundleError(f"bundle {self.dest} was already committed.")
        if not isinstance(manifest, dict):
            raise BundleError(f"cannot publish bundle {self.dest}: the manifest is not a dict.")
        try:
            final = {**manifest, "files": _describe_files(self.path, self.dest)}
            problems = validate_manifest(final)
            if problems:
                raise BundleError(
                    f"cannot publish bundle {self.dest}: invalid manifest: {'; '.join(problems)}."
                )
            text = json.dumps(final, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            (self.path / MANIFEST).write_text(text, encoding="utf-8")
            _fsync_tree(self.path)
            _publish(self.path, self.dest, self.overwrite)
        except OSError as err:
            detail = err.strerror or str(err)
            raise BundleError(f"cannot publish bundle {self.dest}: {detail}.") from None
        self.committed = True
        _write_stamp(self.dest.resolve(), _stamp_entries(self.dest, final["files"]))
        return Bundle(path=self.dest.absolute(), manifest=final)


def _make_stage_dir(dest: Path) -> Path:
    """Create ``.{dest.name}.tmp-<random>`` beside dest (mode from the umask, unlike mkdtemp)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _sibling(dest, "tmp")
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def stage_bundle(dest: str | os.PathLike, *, overwrite: bool = False) -> Iterator[BundleStage]:
    """Stage a bundle for ``dest``; publish it with ``stage.commit(manifest)`` inside the block.

    An existing ``dest`` is refused up front (and again at commit) unless ``overwrite``. If the
    block raises or never commits, the temporary directory is removed and ``dest`` is untouched.
    Stale ``.{name}.tmp-*`` siblings from crashed runs are left alone (and ignored).
    """
    dest = Path(dest)
    if os.path.lexists(dest) and not overwrite:
        _refuse_existing(dest)
    try:
        tmp = _make_stage_dir(dest)
    except OSError as err:
        raise BundleError(f"cannot stage bundle {dest}: {err.strerror or err}.") from None
    stage = BundleStage(tmp, dest, overwrite)
    try:
        yield stage
    finally:
        if not stage.committed:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Self-check against the reference windows
# --------------------------------------------------------------------------------------------


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


def _read_reference(bundle: Bundle) -> list[dict[str, np.ndarray]]:
    """``[{"input": x, "logits": y, "embedding": e}, ...]`` from the reference file."""
    ref = bundle.manifest["reference_windows"]
    path = bundle.path / ref["file"]
    keys = ("input",) + OUTPUT_NAMES
    wanted = [[f"{k}_{i}" for k in keys] for i in range(ref["count"])]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for names in wanted for name in names if name not in data.files]
            if not missing:
                return [{k: np.asarray(data[n]) for k, n in zip(keys, names)} for names in wanted]
        problem = f"{ref['file']} lacks {', '.join(missing[:3])}" + (" ..." if missing[3:] else "")
    except Exception as err:  # zip/npz/pickle refusal errors vary by NumPy version
        problem = f"{ref['file']} cannot be read as .npz ({err})"
    raise BundleError(f"model bundle {bundle.path}: {problem}.")


def _session(bundle: Bundle) -> Any:
    """A CPU ONNX Runtime session on the full graph, fully optimised, one thread."""
    import onnxruntime as ort

    graph = bundle.graph_path("full")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(graph), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # ONNX Runtime raises its own pybind exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BundleError(
            f"model bundle {bundle.path}: ONNX Runtime cannot load {graph.name} ({first})."
        ) from None
    _check_session_io(bundle, session)
    return session


def _check_session_io(bundle: Bundle, session: Any) -> None:
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= outputs:
        raise BundleError(
            f"model bundle {bundle.path}: the full graph must take {INPUT_NAME} and give "
            f"{' and '.join(OUTPUT_NAMES)} (it takes {sorted(inputs)} and gives {sorted(outputs)})."
        )


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
    x = np.ascontiguousarray(window["input"], dtype=np.float32)
    try:
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    except Exception as err:  # ONNX Runtime raises its own pybind exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        problems.append(f"window {i}: ONNX Runtime failed ({first})")
        return
    for name, value in zip(OUTPUT_NAMES, got):
        error, problem = _compare(i, name, np.asarray(value), window[name], atol)
        if error is not None:
            errors[name].append(error)
        if problem is not None:
            problems.append(problem)


def verify(path: str | os.PathLike) -> VerifyReport:
    """Rehash every file, then run each reference window through ONNX Runtime (CPU) and compare
    ``logits`` and ``embedding`` with the stored expectations within the manifest's ``atol``.

    Manifest, file and hash problems raise BundleError (as :func:`load`); numeric disagreement
    returns a report with ``ok=False`` and the problems.
    """
    bundle = load(path, rehash=True)
    windows = _read_reference(bundle)
    atol = float(bundle.manifest["reference_windows"]["atol"])
    session = _session(bundle)
    errors: dict[str, list[float]] = {name: [] for name in OUTPUT_NAMES}
    problems: list[str] = []
    for i, window in enumerate(windows):
        _run_window(session, i, window, atol, errors, problems)
    worst = {k: float(np.max(v)) if v else float("nan") for k, v in errors.items()}
    return VerifyReport(
        bundle=bundle.path,
        files_checked=len(bundle.manifest["files"]),
        windows_checked=len(windows),
        max_abs_error=worst,
        atol=atol,
        ok=not problems,
        problems=tuple(problems),
    )
