"""Archive runs on Ray: the dataset of results, and the run that writes it to a folder.

Ray is imported here only, when a run starts; without it the run stops with one sentence saying
what to install.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgeser.cli._inputs import Input
from edgeser.detector import DetectionOptions, Detector, default_bundle_path
from edgeser.distributed import inputs as inputs_
from edgeser.distributed.actor import FileScorer
from edgeser.distributed.writer import FORMATS, PartitionSink, finish, input_key, prepare
from edgeser.errors import EdgeserError

INSTALL_HINT = 'Ray is not installed; --engine ray needs pip install "edgeser[ray]".'
# Files per actor call, and so per partition: large enough that a partition's fixed costs (a
# few small files, a manifest) vanish, small enough that a killed worker loses little work and
# every actor gets batches on small runs.
MAX_FILES_PER_PARTITION = 32


class DistributedError(EdgeserError):
    """An archive run that cannot start or did not finish (Ray missing, cluster unreachable)."""


def require_ray() -> None:
    """Fail now, with the install hint, where Ray is missing (without importing it)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except ValueError:  # a module set to None in sys.modules
        found = False
    if not found:
        raise DistributedError(INSTALL_HINT)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is the part edgeser needs
    except ImportError:
        raise DistributedError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, *, num_cpus: int | None = None, quiet: bool = True) -> None:
    """Join the cluster at ``address`` (``auto``: the one running on this machine), or start a
    local one on the loopback interface when ``address`` is None (when Ray was not imported
    before: it reads that setting on import)."""
    if address is None:
        # A cluster of one machine needs no reachable address: keep every port on loopback.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if quiet:  # the driver's C++ log lines (e.g. on restarted actors) would drown the progress
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray = import_ray()
    if ray.is_initialized():
        return
    kwargs: dict = {"logging_level": logging.ERROR, "log_to_driver": not quiet}
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = address
    try:
        if quiet:
            _without_log_banner(lambda: ray.init(**kwargs))
        else:
            ray.init(**kwargs)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = f"at {address}" if address else "on this machine"
        raise DistributedError(f"cannot start or join the Ray cluster {where} "
                               f"({_last_line(err)}).") from None
    if quiet:
        _quiet_ray_data(ray)


def _without_log_banner(start) -> None:
    """Run ``start`` with this process's stderr (fd 2, where Ray's C++ core writes) caught, and
    pass on all but the line saying which log level RAY_BACKEND_LOG_LEVEL chose."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            start()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode("utf-8", "replace").splitlines():
                if "RAY_BACKEND_LOG_LEVEL" not in line:
                    print(line, file=sys.stderr)


def _quiet_ray_data(ray) -> None:
    """Results and progress are edgeser's to report: Ray Data's progress bars and INFO lines
    would interleave with them (its full logs stay in the Ray session folder)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        if handler.__class__.__name__ != "SessionFileHandler":
            handler.setLevel(logging.ERROR)


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else type(err).__name__


def _cluster_actors(threads_per_actor: int) -> int:
    ray = import_ray()
    cpus = ray.cluster_resources().get("CPU", 1)
    return max(1, int(cpus // threads_per_actor))


def _source_rows(inputs, done: set[str]):
    """The dataset of input rows, less those already done."""
    ray = import_ray()
    if isinstance(inputs, ray.data.Dataset):
        if "path" not in (inputs.columns() or []):
            raise DistributedError(f"a dataset of inputs needs a 'path' column; it has "
                                   f"{', '.join(inputs.columns() or []) or 'none'}.")
        cwd = os.getcwd()

        def to_rows(batch):
            import pyarrow as pa

            rows = [{"path": os.path.join(cwd, str(p)), "source": str(p), "problem": None}
                    for p in batch["path"].to_pylist()]
            rows = [r for r in rows if input_key(r["path"], r["source"]) not in done]
            return pa.Table.from_pylist(rows, schema=pa.schema(
                [("path", pa.string()), ("source", pa.string()), ("problem", pa.string())]))

        # Materialized first: once the actors hold every CPU, tasks upstream of them (the
        # reads that made the paths) could no longer be scheduled. A list of paths is small.
        ds = inputs.map_batches(to_rows, batch_format="pyarrow", num_cpus=0).materialize()
        count = ds.count()
        return (ds, count) if count else (None, 0)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found = [i for i in inputs if isinstance(i, Input)]  # already expanded (by the CLI)
    found += inputs_.expand([os.fspath(i) for i in inputs if not isinstance(i, Input)])
    rows, seen = [], set(done)
    for row in inputs_.rows(found):  # an input named twice is scored once
        key = input_key(row["path"], row["source"])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    if not rows:
        return None, 0
    return ray.data.from_items(rows), len(rows)


def _check_counts(actors: int | None, threads_per_actor: int) -> None:
    """Before anything is written: actors (None: as the cluster allows) and threads."""
    for what, value in (("actors", 1 if actors is None else actors),
                        ("threads per actor", threads_per_actor)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DistributedError(f"{what} must be a positive integer, got {value!r}.")


def _plan(inputs, model, options: DetectionOptions, actors: int | None, threads_per_actor: int,
          files_per_partition: int | None, sink: PartitionSink | None, done: set[str]):
    ray = import_ray()
    ds, count = _source_rows(inputs, done)
    if ds is None:
        return None, 0
    actors = actors or _cluster_actors(threads_per_actor)
    if files_per_partition is None:
        # Small runs: several batches per actor so that every actor has work.
        per_actor = math.ceil((count or 0) / (actors * 4)) if count else MAX_FILES_PER_PARTITION
        files_per_partition = max(1, min(MAX_FILES_PER_PARTITION, per_actor))
    bundle = os.path.abspath(os.fspath(model if model is not None else default_bundle_path()))
    actor_options = dataclasses.replace(options, threads=threads_per_actor)
    scored = ds.map_batches(
        FileScorer, fn_constructor_kwargs={"bundle": bundle, "options": actor_options,
                                           "sink": sink},
        batch_size=files_per_partition, batch_format="pyarrow",
        # Ray Data restarts a killed actor and runs its batch again (max_restarts=-1 and
        # max_task_retries=-1 are its defaults for actor pools).
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads_per_actor)
    return scored, count


def detect(inputs, model: str | os.PathLike | None = None, *,
           options: DetectionOptions = DetectionOptions(), actors: int | None = None,
           threads_per_actor: int = 1, files_per_partition: int | None = None):
    """A Ray Dataset of results, one row per input: ``source`` (as ``detect`` names it),
    ``path``, ``error`` (the sentence of a failure, else None), ``duration_s`` and ``records``
    (the file's window, event and file records, or its failure record, as the JSON Lines of
    ``detect --format jsonl``).

    ``inputs``: a path (file, folder, list file of one path per line), a list of them, or a Ray
    Dataset with a ``path`` column. ``model``: a bundle directory every node can read (None: the
    default model's bundle). The dataset is lazy; Ray is started on first use if it is not
    running. Each of ``actors`` workers (default: as many as the cluster's CPUs allow) loads the
    bundle once and runs inference on ``threads_per_actor`` threads.
    """
    _check_counts(actors, threads_per_actor)
    ds, _ = _plan(inputs, model, options, actors, threads_per_actor, files_per_partition, None,
                  set())
    if ds is None:
        raise DistributedError("there are no inputs to score.")
    return ds


@dataclass(frozen=True)
class RunSummary:
    """What a run to a folder did: files scored in this run, their audio seconds, files skipped
    as already written (``--resume``), and the failures of the whole folder."""

    files: int
    audio_s: float
    skipped: int
    failures: tuple[tuple[str, str], ...]
    elapsed_s: float


def write(inputs, out_dir: str | os.PathLike, *,
          model: str | os.PathLike | Detector | None = None,
          fmt: str = "jsonl", options: DetectionOptions = DetectionOptions(),
          actors: int | None = None, threads_per_actor: int = 1,
          files_per_partition: int | None = None, resume: bool = False,
          on_start: Callable[[int], None] | None = None,
          on_file: Callable[[dict], None] | None = None) -> RunSummary:
    """Score ``inputs`` (as for :func:`detect`) into partitions under ``out_dir`` (see
    :mod:`edgeser.distributed.writer` for the layout). ``model`` may also be a loaded
    :class:`~edgeser.Detector`: its bundle and options are used (``options`` is then ignored;
    the workers load their own). ``on_start`` is told how many inputs are left to score (after ``resume`` skipped those
    already written); ``on_file`` sees each input's manifest row (``source``, ``path``,
    ``error``, ``duration_s``) as it is written."""
    if fmt not in FORMATS:
        raise DistributedError(f"{fmt!r} is not an archive format; one of: {', '.join(FORMATS)}.")
    _check_counts(actors, threads_per_actor)
    started = time.monotonic()
    if isinstance(model, Detector):
        options = model.options
    else:
        model = Detector.load(model, options=dataclasses.replace(options, threads=1))
    run = model.run_info
    out = Path(out_dir)
    done = prepare(out, fmt, run, resume=resume)
    sink = PartitionSink(str(out.resolve()), fmt, run)
    ds, count = _plan(inputs, model.bundle.path, options, actors, threads_per_actor,
                      files_per_partition, sink, done)
    if on_start is not None and count is not None:
        on_start(count)
    files, audio_s = 0, 0.0
    if ds is not None:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.drop_columns(["partition"]).to_pylist():
                    files += 1
                    audio_s += row["duration_s"] or 0.0
                    if on_file is not None:
                        on_file(row)
        except EdgeserError:
            raise
        except Exception as err:  # a worker that cannot start: Ray wraps the cause
            raise DistributedError(f"the Ray run stopped ({_last_line(err)}); the partitions "
                                   f"written so far are kept, rerun with --resume to go "
                                   f"on.") from None
    failures = finish(out, fmt, run)
    return RunSummary(files, audio_s, len(done), tuple(failures), time.monotonic() - started)
