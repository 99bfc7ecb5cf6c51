"""Output files that are never half written: a temp file beside the target, renamed into place."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_file", "atomic_text"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, binary: bool = False) -> Iterator[IO]:
    """Yield a file that replaces ``path`` in one rename when the block succeeds (after an fsync,
    so a crash right after leaves the old or the new file, never a torn one); when the block
    raises, the temp file is removed and ``path`` is untouched. The result gets the mode of the
    file it replaces, else the mode any new file gets under the umask."""
    target = Path(path)
    fd, tmp = _create_sibling(target)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, target.stat().st_mode & 0o7777)
        mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, **mode) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _create_sibling(target: Path) -> tuple[int, str]:
    # os.open with 0o666 lets the umask decide the mode (mkstemp would force 0600).
    while True:
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_text(path: str | os.PathLike) -> contextlib.AbstractContextManager:
    """:func:`atomic_file` for UTF-8 text (newlines written as given)."""
    return atomic_file(path)
