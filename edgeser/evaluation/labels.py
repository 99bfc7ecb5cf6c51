"""The labels CSV an evaluation scores against.

A header, then one row per file (``file`` first); the targets are whichever of these columns
the header has:

- one column per regression output the model names (``arousal,dominance,valence``): numbers;
- a class column (``class`` unless told otherwise): the true class;
- ``start,end`` (seconds): one row per laughter segment; a file listed with empty start and end
  has none, and the set of files is every file listed.

Optional ``speaker`` and ``sex`` columns group the results; other columns are ignored. Relative
paths resolve against the CSV's folder. A row that cannot be used is listed with its line
number and the reason, and the rest runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from edgeser.errors import EvaluationError

FILE_COLUMN = "file"
SEGMENT_COLUMNS = ("start", "end")
GROUP_COLUMNS = ("speaker", "sex")
_SEX_NAMES = {"m": "male", "f": "female"}


@dataclass(frozen=True)
class LabelledFile:
    """One file's targets. ``values`` holds the regression targets it has; ``label`` its class;
    ``segments`` its laughter segments in seconds (empty: none)."""

    path: Path
    name: str  # as written in the CSV
    line: int  # where the file is first listed
    values: Mapping[str, float] = field(default_factory=dict, hash=False)
    label: str | None = None
    segments: tuple[tuple[float, float], ...] = ()
    speaker: str | None = None
    sex: str | None = None


@dataclass(frozen=True)
class BadRow:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass(frozen=True)
class LabelSet:
    """The usable files of a labels CSV, the rows that were not, and what targets it has."""

    path: Path
    sha256: str
    dimensions: tuple[str, ...]  # regression targets present
    class_column: str | None  # None: no class targets
    has_segments: bool
    files: tuple[LabelledFile, ...]
    bad_rows: tuple[BadRow, ...] = ()

    @property
    def rows_used(self) -> int:
        return len(self.files)

    def describe(self) -> str:
        kinds = []
        if self.dimensions:
            kinds.append(", ".join(self.dimensions))
        if self.class_column:
            kinds.append(f"classes ({self.class_column})")
        if self.has_segments:
            kinds.append("laughter segments")
        return f"{self.path} ({len(self.files)} files; {'; '.join(kinds)})"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _number(text: str, what: str) -> tuple[float | None, str | None]:
    try:
        value = float(text)
    except ValueError:
        return None, f"{what} {text!r} is not a number"
    if not math.isfinite(value):
        return None, f"{what} {text!r} is not a finite number"
    return value, None


class _Parser:
    def __init__(self, path: Path, header: list[str], dimensions: Sequence[str],
                 class_column: str | None):
        self.folder = path.parent
        self.header = header
        self.dimensions = tuple(d for d in dimensions if d in header)
        self.class_column = class_column if class_column in header else None
        self.has_segments = all(c in header for c in SEGMENT_COLUMNS)
        self.files: dict[str, LabelledFile] = {}
        self.bad: list[BadRow] = []

    def row(self, line: int, cells: dict[str, str]) -> None:
        name = cells.get(FILE_COLUMN, "").strip()
        if not name:
            self.bad.append(BadRow(line, "the file column is empty"))
            return
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.folder / path
        if not path.is_file():
            self.bad.append(BadRow(line, f"{name} does not exist"))
            return
        values: dict[str, float] = {}
        problems: list[str] = []
        for dim in self.dimensions:
            text = cells.get(dim, "").strip()
            if text:
                value, problem = _number(text, dim)
                if problem:
                    problems.append(problem)
                else:
                    values[dim] = value
        label = cells.get(self.class_column, "").strip() if self.class_column else ""
        segment, problem = self._segment(cells)
        if problem:
            problems.append(problem)
        if problems:
            self.bad.append(BadRow(line, "; ".join(problems)))
            return
        if not (values or label or self.has_segments):
            self.bad.append(BadRow(line, "has no target"))
            return
        sex = cells.get("sex", "").strip().lower() or None
        entry = LabelledFile(path, name, line, values, label or None,
                             (segment,) if segment else (),
                             cells.get("speaker", "").strip() or None,
                             _SEX_NAMES.get(sex, sex) if sex else None)
        self._add(line, entry)

    def _segment(self, cells: dict[str, str]) -> tuple[tuple[float, float] | None, str | None]:
        if not self.has_segments:
            return None, None
        start_text, end_text = (cells.get(c, "").strip() for c in SEGMENT_COLUMNS)
        if not start_text and not end_text:
            return None, None
        if not start_text or not end_text:
            return None, "start and end must both be given (or both left empty for no laughter)"
        start, problem = _number(start_text, "start")
        end, problem2 = _number(end_text, "end")
        if problem or problem2:
            return None, problem or problem2
        if start < 0 or end <= start:
            return None, f"the segment {start_text}-{end_text} s is not 0 <= start < end"
        return (start, end), None

    def _add(self, line: int, entry: LabelledFile) -> None:
        key = str(entry.path.resolve())
        known = self.files.get(key)
        if known is None:
            self.files[key] = entry
            return
        if entry.values or entry.label:
            if entry.values != known.values or entry.label != known.label:
                self.bad.append(BadRow(line, f"{entry.name} is listed again (line {known.line}) "
                                             "with other targets"))
                return
            if not entry.segments:
                self.bad.append(BadRow(line, f"{entry.name} is listed again (line "
                                             f"{known.line})"))
                return
        segments = tuple(sorted(known.segments + entry.segments))
        self.files[key] = LabelledFile(known.path, known.name, known.line, known.values,
                                       known.label, segments, known.speaker or entry.speaker,
                                       known.sex or entry.sex)


def read_labels(path: str | Path, dimensions: Sequence[str] = (),
                class_column: str | None = "class") -> LabelSet:
    """Read the labels CSV at ``path``; ``dimensions`` are the regression targets to look for
    (the models' output names). Raises :class:`EvaluationError` when the file cannot be read or
    has no usable target column; bad rows are collected, not raised."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvaluationError(f"labels file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "it is not UTF-8 text"
        raise EvaluationError(f"labels file {path} cannot be read ({reason}).") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise EvaluationError(f"labels file {path} is empty.") from None
    except csv.Error as err:
        raise EvaluationError(f"labels file {path} is not CSV ({err}).") from None
    if FILE_COLUMN not in header:
        raise EvaluationError(f"labels file {path} has no {FILE_COLUMN!r} column in its header "
                              f"({', '.join(header) or 'empty'}).")
    parser = _Parser(path, header, dimensions, class_column)
    if not (parser.dimensions or parser.class_column or parser.has_segments):
        wanted = [*dimensions, *([class_column] if class_column else []), "start,end"]
        raise EvaluationError(f"labels file {path} has no target column: expected one of "
                              f"{', '.join(wanted)}.")
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                parser.bad.append(BadRow(line, f"has {len(cells)} fields where the header has "
                                               f"{len(header)}"))
                continue
            parser.row(line, dict(zip(header, cells)))
    except csv.Error as err:
        parser.bad.append(BadRow(reader.line_num, f"is not valid CSV ({err})"))
    return LabelSet(path, _sha256(path), parser.dimensions, parser.class_column,
                    parser.has_segments, tuple(parser.files.values()), tuple(parser.bad))
