"""Writing a bundle: stage in a temp dir beside the destination, publish with one rename.

:func:`stage_bundle` hands out a temporary directory beside the destination; its
:meth:`BundleStage.commit` hashes the files, validates the manifest, writes and fsyncs it, then
publishes with one ``rename``. Nothing is published when the manifest is invalid or the block
raises, so a reader never sees a half-written bundle.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator, Mapping

from edgeser.bundle import hashing
from edgeser.bundle.manifest import Bundle, FileEntry, Manifest
from edgeser.bundle.schema import MANIFEST, validate_manifest
from edgeser.errors import BundleError


def _sibling(dest: Path, kind: str) -> Path:
    """A fresh hidden sibling name ``.{dest.name}.{kind}-<random>`` (not created)."""
    while True:
        candidate = dest.with_name(f".{dest.name}.{kind}-{secrets.token_hex(6)}")
        if not os.path.lexists(candidate):
            return candidate


def _walk_files(root: Path, dest: Path) -> list[str]:
    """Relative POSIX names of every file under ``root`` except the top-level manifest;
    symlinks and special files are refused."""
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            full = Path(dirpath, entry)
            rel = full.relative_to(root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise BundleError(f"cannot publish bundle {dest}: {rel} is a symlink.")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BundleError(f"cannot publish bundle {dest}: {rel} is not a regular file.")
            if stat.S_ISREG(mode) and rel != MANIFEST:
                names.append(rel)
    return sorted(names)


def _describe_files(root: Path, dest: Path) -> dict[str, dict]:
    return {
        name: {"sha256": hashing._sha256_file(root / name), "bytes": os.stat(root / name).st_size}
        for name in _walk_files(root, dest)
    }


def _fsync_path(path: Path, directory: bool) -> None:
    """fsync a file (errors raise) or a directory (best effort: some platforms and file systems
    cannot open or sync directories)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not directory:
            raise


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            _fsync_path(Path(dirpath, name), directory=False)
        _fsync_path(Path(dirpath), directory=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _refuse_existing(dest: Path) -> None:
    raise BundleError(
        f"cannot publish bundle {dest}: it already exists (pass overwrite=True to replace it)."
    )


# renameat2(2)'s RENAME_EXCHANGE swaps two paths atomically (Linux 3.15+, glibc 2.28+): a reader
# of a replaced bundle sees the old directory or the new one, never neither.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; False where the system cannot (the caller falls back)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: not supported here
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def publish_folder(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``dest``. With ``overwrite`` an existing dest is swapped with ``tmp``
    in one step where the system can (then deleted), else moved aside first, restored if the
    rename fails, and deleted after."""
    if not os.path.lexists(dest):
        os.rename(tmp, dest)
    elif not overwrite:
        _refuse_existing(dest)
    elif _exchange(tmp, dest):
        _remove(tmp)  # now the old bundle
    else:
        old = _sibling(dest, "old")
        os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except OSError:
            os.rename(old, dest)
            raise
        _remove(old)
    _fsync_path(dest.parent, directory=True)


class BundleStage:
    """A bundle being written: put files under :attr:`path`, then :meth:`commit` a manifest."""

    def __init__(self, path: Path, dest: Path, overwrite: bool) -> None:
        self.path = path
        self.dest = dest
        self.overwrite = overwrite
        self.committed = False

    def commit(self, manifest: Manifest | Mapping) -> Bundle:
        """Hash every file under :attr:`path` into the manifest's ``files``, validate the result,
        write and fsync ``manifest.json`` and publish the directory at the destination.

        ``manifest`` is a :class:`Manifest` (what the export builds) or its JSON object without
        ``files``. Raises BundleError (nothing published) when the manifest is invalid, the
        destination exists without ``overwrite``, or the file system refuses. Returns the
        published bundle.
        """
        if self.committed:
            raise BundleError(f"bundle {self.dest} was already committed.")
        if not isinstance(manifest, (Manifest, Mapping)):
            raise BundleError(f"cannot publish bundle {self.dest}: the manifest is not a Manifest.")
        try:
            files = _describe_files(self.path, self.dest)
            if isinstance(manifest, Manifest):
                doc = manifest.with_files({name: FileEntry(entry["sha256"], entry["bytes"])
                                           for name, entry in files.items()}).to_json()
            else:
                doc = {**manifest, "files": files}
            # Through the schema: what is written is exactly what load() accepts.
            problems = validate_manifest(doc)
            if problems:
                raise BundleError(
                    f"cannot publish bundle {self.dest}: invalid manifest: {'; '.join(problems)}."
                )
            final = Manifest.from_json(doc)
            (self.path / MANIFEST).write_text(final.dumps(), encoding="utf-8")
            _fsync_tree(self.path)
            publish_folder(self.path, self.dest, self.overwrite)
        except OSError as err:
            detail = err.strerror or str(err)
            raise BundleError(f"cannot publish bundle {self.dest}: {detail}.") from None
        self.committed = True
        hashing._write_stamp(self.dest.resolve(), hashing._stamp_entries(self.dest, files))
        return Bundle(path=self.dest.absolute(), manifest=final)


def _make_stage_dir(dest: Path) -> Path:
    """Create ``.{dest.name}.tmp-<random>`` beside dest (mode from the umask, unlike mkdtemp)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _sibling(dest, "tmp")
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def stage_bundle(dest: str | os.PathLike, *, overwrite: bool = False) -> Iterator[BundleStage]:
    """Stage a bundle for ``dest``; publish it with ``stage.commit(manifest)`` inside the block.

    An existing ``dest`` is refused up front (and again at commit) unless ``overwrite``. If the
    block raises or never commits, the temporary directory is removed and ``dest`` is untouched.
    Stale ``.{name}.tmp-*`` siblings from crashed runs are left alone (and ignored).
    """
    dest = Path(dest)
    if os.path.lexists(dest) and not overwrite:
        _refuse_existing(dest)
    try:
        tmp = _make_stage_dir(dest)
    except OSError as err:
        raise BundleError(f"cannot stage bundle {dest}: {err.strerror or err}.") from None
    stage = BundleStage(tmp, dest, overwrite)
    try:
        yield stage
    finally:
        if not stage.committed:
            shutil.rmtree(tmp, ignore_errors=True)
