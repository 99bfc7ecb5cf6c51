"""The work of ``detect`` once the detector is built: files and folders, or one live stream.

Results go to one writer (stdout, or the ``-o`` file written atomically), except label formats
with several inputs, which get one file per input under the ``-o`` folder. Errors are printed on
stderr as they happen, one sentence each; the callers return the names that failed.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgeser import frontend
from edgeser.atomic import atomic_text
from edgeser.cli._inputs import Input
from edgeser.detector import Detector
from edgeser.errors import EdgeserError
from edgeser.formats import LABEL_FORMATS, Writer, label_suffix, open_writer, write_result

# Live streams are read in chunks of at most this long: a window completes within one chunk of
# its last sample arriving.
_STREAM_CHUNK_S = 0.05


def _error(message: str) -> None:
    print(f"edgeser: {message}", file=sys.stderr)


def describe(detector: Detector) -> None:
    """--verbose: what runs, on stderr."""
    b, run, session = detector.bundle, detector.run_info, detector.session
    lines = [
        f"bundle    {b.path} ({b.model_id}, {b.task})",
        f"labels    {', '.join(b.labels)} ({run.logits_kind})",
        f"precision {b.manifest.quantization.precision} ({b.manifest.quantization.describe()})",
        f"windows   {run.window_s:g} s, hop {run.hop_s:g} s, silence below "
        f"{run.silence_dbfs:g} dBFS, batch {detector.options.batch_size}",
        f"device    {detector.device.label()}",
        f"session   {session.settings.describe()}",
        f"providers {', '.join(session.providers)} (in use)",
        f"frontend  {frontend.BACKEND}",
    ]
    if detector.device.fallback:
        lines.append(f"fallback  {detector.device.fallback}")
    if run.threshold is not None:
        lines.append(f"events    {run.positive_label} >= {run.threshold:g}"
                     f"{f' ({run.operating_point})' if run.operating_point else ''}, min "
                     f"{run.min_duration_s:g} s, merge gap {run.merge_gap_s:g} s")
    for line in lines:
        print(line, file=sys.stderr)


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
    else:
        with atomic_text(output) as out:
            yield out


def _detect(detector: Detector, item: Input):
    """The :class:`DetectionResult` of one input, or the sentence saying why there is none."""
    if item.problem is not None:
        return item.problem
    try:
        if item.path is None:
            with _spooled_stdin() as spool:
                result = detector.detect_file(spool, name=item.source)
        else:
            result = detector.detect_file(item.path)
    except EdgeserError as err:
        return str(err)
    for warning in result.warnings:
        _error(f"warning: {warning}")
    return result


def files(detector: Detector, found: list[Input], fmt: str, output: Path | None,
          on_result: Callable[[Input, object], None] | None = None) -> list[str]:
    """Detect in every input, writing each result as it comes (and passing it to
    ``on_result``); returns the inputs that failed."""
    failures: list[str] = []
    per_input = fmt in LABEL_FORMATS and len(found) > 1
    with _progress(len(found)) as advance, \
            contextlib.ExitStack() as stack:
        writer = None
        if not per_input:
            out = stack.enter_context(_destination(output))
            writer = open_writer(fmt, out, detector.run_info, detailed=len(found) == 1)
        for item in found:
            result = _detect(detector, item)
            if on_result is not None and not isinstance(result, str):
                on_result(item, result)
            advance()
            if isinstance(result, str):
                failures.append(item.source)
                _error(result)
                if writer is not None:
                    writer.failure(item.source, result)
            elif writer is not None:
                write_result(writer, result)
            else:  # one label file per input, mirroring the folders it came from
                target = output / item.relative.with_suffix(label_suffix(fmt))
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_text(target) as out:
                    label_writer = open_writer(fmt, out, detector.run_info)
                    write_result(label_writer, result)
                    label_writer.finish()
        if writer is not None:
            writer.finish()
    return failures


def stream(detector: Detector, item: Input, raw_format: tuple, fmt: str,
           output: Path | None) -> list[str]:
    """One live stream: windows are written as soon as they are inferred; Ctrl-C ends the stream
    cleanly (the last windows and the summary are still written)."""
    from edgeser.pcmstream import open_pcm_stream

    if item.problem is not None:
        _error(item.problem)
        return [item.source]
    rate, channels, sample_format = raw_format
    with contextlib.ExitStack() as stack:
        if item.path is None:
            source = sys.stdin.buffer
        else:
            try:
                source = stack.enter_context(open(item.path, "rb"))
            except OSError as err:
                _error(f"{item.source}: cannot be opened ({err.strerror or err}).")
                return [item.source]
        out = stack.enter_context(_destination(output))
        writer = open_writer(fmt, out, detector.run_info, live=True)
        try:
            pcm = open_pcm_stream(source, item.source, rate_hz=rate, channels=channels,
                                  sample_format=sample_format)
            live = detector.stream(pcm.format.rate_hz, pcm.format.channels, source=item.source)
            max_frames = max(1, round(pcm.format.rate_hz * _STREAM_CHUNK_S))
            with contextlib.suppress(KeyboardInterrupt):
                for chunk in pcm.chunks(max_frames=max_frames):
                    _write_step(writer, item.source, live.feed(chunk))
            last = live.close()
        except EdgeserError as err:
            _error(str(err))
            writer.failure(item.source, str(err))
            writer.finish()
            return [item.source]
        _write_step(writer, item.source, last)
        writer.file_done(last.end)
        writer.finish()
    return []


def _write_step(writer: Writer, source: str, step) -> None:
    for w in step.windows:
        writer.window(source, w)
    for e in step.events:
        writer.event(source, e)


@contextlib.contextmanager
def _spooled_stdin():
    """stdin copied to a seekable temp file (in memory up to 32 MiB) for file-mode decoding."""
    with tempfile.SpooledTemporaryFile(max_size=32 * 2**20) as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        yield spool


@contextlib.contextmanager
def _progress(total: int):
    """A progress bar on stderr for folder runs (only on a terminal); yields ``advance()``."""
    console = Console(stderr=True)
    bar = Progress(TextColumn("detecting"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True,
                   disable=total < 2 or not console.is_terminal)
    with bar:
        task = bar.add_task("detect", total=total)
        yield lambda: bar.advance(task)
