"""``json`` (one document per run) and ``jsonl`` (one record per line, as results come)."""

from __future__ import annotations

import json
import textwrap
from typing import Any, TextIO

from edgeser import __version__
from edgeser.formats._common import (event_record, failure_record, file_record, model_record,
                                     window_record)
from edgeser.results import RESULT_SCHEMA_VERSION, Event, FileEnd, RunInfo, WindowResult


def _dumps(value: Any, **kwargs: Any) -> str:
    # allow_nan=False: a NaN or infinity would make the output invalid JSON; fail instead.
    return json.dumps(value, allow_nan=False, **kwargs)


class JsonWriter:
    """The whole run as one indented document, written at ``finish``.

    Only the current file is held as records; a finished file is kept as its JSON text, which
    is several times smaller than the dicts, so long folder runs stay light.
    """

    def __init__(self, out: TextIO, run: RunInfo, *, live: bool = False) -> None:
        # live changes nothing: the document is valid only once complete, so it is written whole.
        self._out, self._run = out, run
        self._windows: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._files_text: list[str] = []
        self._failures: list[dict[str, str]] = []

    def window(self, source: str, w: WindowResult) -> None:
        self._windows.append(window_record(w))

    def event(self, source: str, e: Event) -> None:
        self._events.append(event_record(e))

    def file_done(self, end: FileEnd) -> None:
        record = file_record(end) | {"windows": self._windows, "events": self._events}
        # Indented as it will sit in the document: inside "files", two levels deep.
        self._files_text.append(textwrap.indent(_dumps(record, indent=2), "    "))
        self._windows, self._events = [], []

    def failure(self, source: str, message: str) -> None:
        self._windows, self._events = [], []  # a stream that broke part-way leaves no file record
        self._failures.append(failure_record(source, message))

    def finish(self) -> None:
        # Same text as json.dumps(document, indent=2), assembled from the per-file pieces.
        head = _dumps({"schema_version": RESULT_SCHEMA_VERSION, "edgeser": __version__,
                       "model": model_record(self._run)}, indent=2)
        files = "[\n" + ",\n".join(self._files_text) + "\n  ]" if self._files_text else "[]"
        failures = textwrap.indent(_dumps(self._failures, indent=2), "  ").lstrip()
        self._out.write(f'{head[:-2]},\n  "files": {files},\n  "failures": {failures}\n}}\n')
        self._out.flush()


class JsonlWriter:
    """One compact JSON object per line, each tagged with ``type``, written as results come:
    a ``run`` header, then ``window`` / ``event`` records, a ``file`` record per finished file
    and a ``failure`` record per failed one."""

    def __init__(self, out: TextIO, run: RunInfo, *, live: bool = False) -> None:
        self._out, self._live = out, live
        self._line({"type": "run", "schema_version": RESULT_SCHEMA_VERSION, "edgeser": __version__,
                    "model": model_record(run)})

    def _line(self, record: dict[str, Any]) -> None:
        self._out.write(_dumps(record, separators=(",", ":")) + "\n")
        if self._live:
            self._out.flush()

    def window(self, source: str, w: WindowResult) -> None:
        self._line({"type": "window", "source": source} | window_record(w))

    def event(self, source: str, e: Event) -> None:
        self._line({"type": "event", "source": source} | event_record(e))

    def file_done(self, end: FileEnd) -> None:
        self._line({"type": "file"} | file_record(end))

    def failure(self, source: str, message: str) -> None:
        self._line({"type": "failure"} | failure_record(source, message))

    def finish(self) -> None:
        self._out.flush()
