"""Writers for ``edgeser detect --format``: the same results as a table, JSON, JSON Lines, CSV,
an Audacity label track or a Praat TextGrid.

A writer is fed as results come (``window`` / ``event`` / ``file_done`` / ``failure``, then
``finish`` once), so a live stream can be written without keeping its history. Files come one
after another, never interleaved. The label formats (``LABEL_FORMATS``) describe one input
file each: open one writer per file, on that file's own output.
"""

from __future__ import annotations

import heapq
from typing import Protocol, TextIO

from edgeser.formats._audacity import AudacityWriter
from edgeser.formats._csv import CsvWriter
from edgeser.formats._json import JsonlWriter, JsonWriter
from edgeser.formats._table import DetailedTableWriter, FolderTableWriter, LiveTableWriter
from edgeser.formats._textgrid import TextGridWriter
from edgeser.results import DetectionResult, Event, FileEnd, RunInfo, WindowResult

__all__ = ["FORMATS", "LABEL_FORMATS", "Writer", "label_suffix", "open_writer", "write_result"]

FORMATS = ("table", "json", "jsonl", "csv", "audacity", "textgrid")
LABEL_FORMATS = ("audacity", "textgrid")
_LABEL_SUFFIXES = {"audacity": ".txt", "textgrid": ".TextGrid"}
_STREAM_WRITERS = {"json": JsonWriter, "jsonl": JsonlWriter, "csv": CsvWriter,
                   "audacity": AudacityWriter, "textgrid": TextGridWriter}


class Writer(Protocol):
    def window(self, source: str, w: WindowResult) -> None: ...
    def event(self, source: str, e: Event) -> None: ...
    def file_done(self, end: FileEnd) -> None: ...
    def failure(self, source: str, message: str) -> None: ...
    def finish(self) -> None: ...


def label_suffix(fmt: str) -> str:
    """File name suffix of a label format's per-input output (``.txt``, ``.TextGrid``)."""
    try:
        return _LABEL_SUFFIXES[fmt]
    except KeyError:
        raise ValueError(f"{fmt!r} is not a label format; one of: {', '.join(LABEL_FORMATS)}") from None


def open_writer(fmt: str, out: TextIO, run: RunInfo, *, live: bool = False,
                detailed: bool = True) -> Writer:
    """A writer of ``fmt`` onto ``out``. ``live``: flush after every record (a stream being
    watched). ``detailed`` (table only): per-window tables; False gives one row per file."""
    if fmt == "table":
        if live:
            return LiveTableWriter(out, run)
        return DetailedTableWriter(out, run) if detailed else FolderTableWriter(out, run)
    if fmt not in _STREAM_WRITERS:
        raise ValueError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    return _STREAM_WRITERS[fmt](out, run, live=live)


def write_result(writer: Writer, result: DetectionResult) -> None:
    """Feed one finished file: windows and events in time order, the way a live run
    emits them (each event right after its last window), then ``file_done``."""
    # Ordered by end sample; on a tie the window comes first, since it is what ends the event.
    records = heapq.merge(((w.stop, 0, i, w) for i, w in enumerate(result.windows)),
                          ((e.stop, 1, i, e) for i, e in enumerate(result.events)))
    for _, _, _, record in records:
        if isinstance(record, Event):
            writer.event(result.source, record)
        else:
            writer.window(result.source, record)
    writer.file_done(result.end)
