"""What an archive run reads: the inputs ``detect`` takes (files, folders searched recursively),
plus list files of one path per line.

Each input becomes one row ``{"path", "source", "problem"}``: ``path`` absolute, for workers whose
working folder is not the driver's; ``source`` the name ``detect`` gives it in its results (so the
two engines write identical records); ``problem`` the sentence saying why it cannot be read, or
None. Inputs with a problem still travel to the workers and come back as failure records, as in
a single-process run.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeser.cli._inputs import STDIN, Input, expand as expand_arguments

# An argument ending in one of these is read as a list of paths, not decoded as audio.
LIST_SUFFIXES = frozenset({".txt", ".list", ".lst"})


def is_list_file(argument: str) -> bool:
    return argument != STDIN and Path(argument).suffix.lower() in LIST_SUFFIXES


def expand(arguments: list[str]) -> list[Input]:
    """Inputs in the order given, list files replaced by the entries they name (relative entries
    are relative to the list file's folder; blank lines and lines starting with # are skipped)."""
    found: list[Input] = []
    for argument in arguments:
        if not is_list_file(argument):
            found += expand_arguments([argument])
            continue
        try:
            text = Path(argument).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            found.append(Input(argument, Path(argument), Path(Path(argument).name),
                               f"{argument}: the list of inputs cannot be read ({reason})."))
            continue
        base = Path(argument).parent
        entries = [line.strip() for line in text.splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
        if not entries:
            found.append(Input(argument, Path(argument), Path(Path(argument).name),
                               f"{argument}: the list of inputs names no files."))
        for entry in entries:
            path = Path(entry) if os.path.isabs(entry) else base / entry
            found += expand_arguments([str(path)])
    return found


def rows(found: list[Input]) -> list[dict]:
    """The rows the workers receive, one per input."""
    return [{"path": os.path.abspath(item.path) if item.path is not None else None,
             "source": item.source, "problem": item.problem} for item in found]
