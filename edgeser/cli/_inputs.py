"""What ``detect`` reads: files as given, folders searched recursively for audio, ``-`` for stdin."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Extensions searched for in folders (files named explicitly are decoded whatever their name).
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
    ".snd", ".w64", ".caf", ".rf64",
})
STDIN = "-"


@dataclass(frozen=True)
class Input:
    """One thing to detect in. ``path`` is None for stdin; ``relative`` names it below the folder
    it was found in (for per-file label outputs); ``problem`` is set for an input that cannot be
    used at all (missing path, folder without audio)."""

    source: str
    path: Path | None
    relative: Path
    problem: str | None = None


def expand(arguments: list[str]) -> list[Input]:
    """Inputs in the order given; each folder's audio files sorted by path."""
    found: list[Input] = []
    for arg in arguments:
        if arg == STDIN:
            found.append(Input("stdin", None, Path("stdin")))
            continue
        path = Path(arg)
        try:
            is_dir = path.is_dir()
            exists = is_dir or path.exists()
        except OSError as err:  # e.g. a name too long for the file system, a parent not readable
            reason = " ".join(str(err.strerror or err).split())
            found.append(Input(arg, path, Path(path.name), f"{arg}: cannot be read ({reason})."))
            continue
        if is_dir:
            files = sorted(_audio_in(path))
            if not files:
                found.append(Input(arg, path, Path(path.name), f"{arg}: is a folder with no audio "
                                   f"files in it (looked for {', '.join(sorted(AUDIO_SUFFIXES))})."))
            found += [Input(str(f), f, f.relative_to(path)) for f in files]
        elif exists:
            found.append(Input(arg, path, Path(path.name)))
        else:
            found.append(Input(arg, path, Path(path.name), f"{arg}: no such file or folder."))
    return found


def _audio_in(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield Path(dirpath, name)
