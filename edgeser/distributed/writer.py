"""The output folder of an archive run, and how a run goes on after a stop (``--resume``).

Layout (``OUT`` is the folder given with ``-o``)::

    OUT/run.json                    the run record that opens detect's JSONL output
    OUT/part-KEY.jsonl              window, event, file and failure records of a batch of files
    OUT/window/part-KEY.parquet     (--format parquet: one table per record type: window/,
                                     event/, file/, failure/)
    OUT/manifest/part-KEY.json      the files partition KEY holds, written last
    OUT/failures.jsonl|.parquet     every failed file of the folder (source, error), at the end

Every file is written atomically (temp file, then rename). A partition counts once its manifest
exists: data files without one (a worker killed between the two) are removed when a run starts
or ends, and the retried batch writes the same KEY again. ``--resume`` skips every file named in
a manifest, scored or failed, so each input appears in the folder exactly once.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from edgeser.atomic import atomic_file, atomic_text
from edgeser.distributed.actor import FileOutcome, records_text
from edgeser.errors import EdgeserError
from edgeser.formats._json import JsonlWriter
from edgeser.results import RunInfo

FORMATS = ("jsonl", "parquet")
RUN_FILE = "run.json"
MANIFEST_DIR = "manifest"
PREFIX = "part-"


class OutputError(EdgeserError):
    """An output folder that cannot take this run's results."""


def run_header(run: RunInfo) -> str:
    """The first line of ``detect --format jsonl`` for this run."""
    out = io.StringIO()
    JsonlWriter(out, run)
    return out.getvalue()


@dataclass(frozen=True)
class PartitionSink:
    """Writes one batch's results as a partition of the output folder (runs on the workers; the
    folder must be reachable from every node, e.g. a shared or network file system)."""

    out_dir: str
    fmt: str
    run: RunInfo

    def write(self, key: str, outcomes: list[FileOutcome]) -> str:
        name = PREFIX + key
        out = Path(self.out_dir)
        records = "".join(o.records for o in outcomes)
        data: list[str] = []
        if self.fmt == "jsonl":
            with atomic_text(out / f"{name}.jsonl") as fh:
                fh.write(records)
            data.append(f"{name}.jsonl")
        else:
            import pyarrow.parquet as pq

            from edgeser.distributed.parquet import tables

            for kind, table in tables(records, self.run).items():
                (out / kind).mkdir(exist_ok=True)
                with atomic_file(out / kind / f"{name}.parquet", binary=True) as fh:
                    pq.write_table(table, fh)
                data.append(f"{kind}/{name}.parquet")
        manifest = {"partition": name, "format": self.fmt, "data": data,
                    "files": [{"source": o.source, "path": o.path, "error": o.error,
                               "duration_s": o.duration_s} for o in outcomes]}
        with atomic_text(out / MANIFEST_DIR / f"{name}.json") as fh:
            json.dump(manifest, fh, allow_nan=False)
        return name


def input_key(path: str | None, source: str) -> str:
    """What identifies an input across runs: its absolute path (the source for an input without
    one)."""
    return path if path is not None else f"<{source}>"


def manifests(out_dir: Path) -> list[dict]:
    folder = out_dir / MANIFEST_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.glob(f"{PREFIX}*.json")):
        try:
            found.append(json.loads(entry.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise OutputError(f"{entry}: the manifest cannot be read ({err}); remove it and its "
                              f"partition to score those files again.") from None
    return found


def prepare(out_dir: Path, fmt: str, run: RunInfo, *, resume: bool) -> set[str]:
    """Make ``out_dir`` ready for this run; return the inputs already written there (empty
    without ``resume``). Refuses a folder that holds other things, or results of another run."""
    header = run_header(run)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: is a file; -o takes a folder for --engine ray.")
    used = out_dir.is_dir() and any(out_dir.iterdir())
    if used and not resume:
        raise OutputError(f"{out_dir}: is not empty; pass --resume to go on with the results in "
                          f"it, or give a new folder.")
    if used:
        try:
            previous = (out_dir / RUN_FILE).read_text(encoding="utf-8")
        except OSError:
            raise OutputError(f"{out_dir}: has no {RUN_FILE}, so it holds no results to resume; "
                              f"give a new folder.") from None
        if previous != header:
            raise OutputError(f"{out_dir}: holds results of another model, settings or edgeser "
                              f"version ({RUN_FILE} differs); give a new folder to score with "
                              f"these.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_DIR).mkdir(exist_ok=True)
    done = manifests(out_dir)
    other = sorted({m["format"] for m in done} - {fmt})
    if other:
        raise OutputError(f"{out_dir}: holds {other[0]} results; resume it with --format "
                          f"{other[0]}.")
    remove_orphans(out_dir, done)
    with atomic_text(out_dir / RUN_FILE) as fh:
        fh.write(header)
    return {input_key(f["path"], f["source"]) for m in done for f in m["files"]}


def remove_orphans(out_dir: Path, done: list[dict]) -> None:
    """Remove data files no manifest names and temp files left by killed workers."""
    kept = {d for m in done for d in m["data"]}
    folders = [out_dir, out_dir / MANIFEST_DIR] + [p for p in out_dir.iterdir() if p.is_dir()]
    for folder in dict.fromkeys(folders):
        for entry in folder.iterdir():
            relative = entry.relative_to(out_dir).as_posix()
            temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            orphan = (entry.name.startswith(PREFIX) and folder.name != MANIFEST_DIR
                      and relative not in kept)
            if entry.is_file() and (temp or orphan):
                entry.unlink(missing_ok=True)


def finish(out_dir: Path, fmt: str, run: RunInfo) -> list[tuple[str, str]]:
    """Write the failures table of the whole folder; return its (source, error) rows."""
    done = manifests(out_dir)
    remove_orphans(out_dir, done)
    failed = [(f["source"], f["error"]) for m in done for f in m["files"]
              if f["error"] is not None]
    text = records_text(run, lambda w: [w.failure(s, e) for s, e in failed])
    if fmt == "jsonl":
        with atomic_text(out_dir / "failures.jsonl") as fh:
            fh.write(text)
    else:
        import pyarrow.parquet as pq

        from edgeser.distributed.parquet import schemas, tables

        table = tables(text, run).get("failure") or schemas(run)["failure"].empty_table()
        with atomic_file(out_dir / "failures.parquet", binary=True) as fh:
            pq.write_table(table, fh)
    return failed
