"""Parquet output: the JSONL records of each type as one table, with the same fields.

A Parquet file needs one schema for every partition of a table (a partition whose files are all
silent must not infer ``scores`` as null-typed), so the types of the record fields are stated
here; the rows themselves are the record dicts ``detect --format jsonl`` writes, and a record
whose fields differ from the schema is refused rather than silently dropped.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from edgeser.results import RunInfo

RECORD_TYPES = ("window", "event", "file", "failure")
# Fields the record builders add only in some runs (voice activity gating): typed by name, and a
# column of every partition of a run that has them (null where a record lacks the field).
_OPTIONAL = {"speech_fraction": pa.float64(), "non_speech": pa.bool_(),
             "non_speech_windows": pa.int64()}


class SchemaError(ValueError):
    """A record with a field the Parquet output has no column for."""


def _gated(run: RunInfo) -> bool:
    return getattr(run, "min_speech", None) is not None


def schemas(run: RunInfo) -> dict[str, pa.Schema]:
    optional = _gated(run)
    scores = pa.struct([(label, pa.float64()) for label in run.labels])
    span = [("start_sample", pa.int64()), ("end_sample", pa.int64()),
            ("start_s", pa.float64()), ("end_s", pa.float64())]
    summary = pa.struct([
        ("windows", pa.int64()), ("voiced_windows", pa.int64()), ("silent_windows", pa.int64()),
        ("scores", scores), ("top_label", pa.string()), ("events", pa.int64()),
        ("event_s", pa.float64()),
        *([("non_speech_windows", _OPTIONAL["non_speech_windows"])] if optional else []),
    ])
    return {
        "window": pa.schema([("source", pa.string()), ("index", pa.int64()), *span,
                             ("level_dbfs", pa.float64()), ("silent", pa.bool_()),
                             ("scores", scores), ("top_label", pa.string()),
                             *([(name, _OPTIONAL[name]) for name in ("speech_fraction",
                                                                      "non_speech")]
                               if optional else [])]),
        "event": pa.schema([("source", pa.string()), ("label", pa.string()), *span,
                            ("duration_s", pa.float64()), ("peak", pa.float64()),
                            ("peak_s", pa.float64()), ("windows", pa.int64())]),
        "file": pa.schema([("source", pa.string()), ("rate_hz", pa.int64()),
                           ("channels", pa.int64()), ("samples", pa.int64()),
                           ("duration_s", pa.float64()), ("summary", summary),
                           ("warnings", pa.list_(pa.string()))]),
        "failure": pa.schema([("source", pa.string()), ("error", pa.string())]),
    }


def _check_fields(record: dict[str, Any], fields: pa.StructType | pa.Schema, kind: str) -> None:
    names = {f.name for f in fields}
    extra = [name for name in record if name not in names]
    missing = [name for name in names - set(record) if name not in _OPTIONAL]
    if extra or missing:
        raise SchemaError(f"Parquet output has no column for the {kind} record field "
                          f"{(extra or missing)[0]!r}; write --format jsonl instead.")
    for f in fields:
        value = record.get(f.name)
        if pa.types.is_struct(f.type) and isinstance(value, dict):
            _check_fields(value, f.type, f"{kind}.{f.name}")


def tables(jsonl: str, run: RunInfo) -> dict[str, pa.Table]:
    """The records in ``jsonl`` (JSON Lines of typed records) as one table per record type that
    occurs; the ``type`` field becomes the table."""
    by_type: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RECORD_TYPES}
    for line in jsonl.splitlines():
        record = json.loads(line)
        by_type[record.pop("type")].append(record)
    out = {}
    for kind, schema in schemas(run).items():
        if by_type[kind]:
            for record in by_type[kind]:
                _check_fields(record, schema, kind)
            out[kind] = pa.Table.from_pylist(by_type[kind], schema=schema)
    return out
