"""External data in ONNX graphs: :func:`external_data_locations` and :func:`check_external_data`.

An ONNX file may keep tensors outside itself: a ``TensorProto`` whose ``external_data`` entries
name a ``location`` that ONNX Runtime resolves against the model's directory and reads. A hostile
bundle could name ``../../home/user/.ssh/id_rsa`` or ``/etc/shadow`` (the bytes then leak through
the model's outputs) or a device file. :func:`check_external_data` allows only locations that are
plain relative names inside the bundle *and* listed in the manifest's ``"files"`` (so they are
size- and hash-checked like everything else); :func:`~edgeser.bundle.load` runs it on every graph
before any session exists.

The runtime has no ``onnx`` package, so the ``ModelProto`` is read here in protobuf wire format,
through ``mmap``: only field headers are decoded, and length-delimited fields that cannot hold a
tensor (``raw_data``, packed ``float_data``, names, doc strings...) are skipped by offset, so a
700 MB graph costs a few milliseconds and its tensor payloads are never copied into Python.

Recent ONNX Runtime releases refuse absolute and escaping paths themselves (1.32 does, symlinks
included), but edgeser supports older ones (``onnxruntime>=1.17``, and the wheels of embedded
boards lag), and only this check makes external data hash-checked like every other file.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import threading
from pathlib import Path, PurePosixPath
from typing import Collection

from edgeser import protowire
from edgeser.bundle import hashing
from edgeser.errors import BundleError

__all__ = ["check_external_data", "external_data_locations"]

# Field numbers from onnx/onnx.proto (onnx 1.23; checked against the installed package's
# descriptors by tests/test_bundle_security.py). Only the paths that can lead to a TensorProto are
# walked; every other field is skipped by its wire type.
MODEL_GRAPH = 7                  # ModelProto.graph: GraphProto
MODEL_TRAINING_INFO = 20         # ModelProto.training_info: repeated TrainingInfoProto
MODEL_FUNCTIONS = 25             # ModelProto.functions: repeated FunctionProto
TRAINING_INITIALIZATION = 1      # TrainingInfoProto.initialization: GraphProto
TRAINING_ALGORITHM = 2           # TrainingInfoProto.algorithm: GraphProto
GRAPH_NODE = 1                   # GraphProto.node: repeated NodeProto
GRAPH_INITIALIZER = 5            # GraphProto.initializer: repeated TensorProto
GRAPH_SPARSE_INITIALIZER = 15    # GraphProto.sparse_initializer: repeated SparseTensorProto
NODE_ATTRIBUTE = 5               # NodeProto.attribute: repeated AttributeProto
FUNCTION_NODE = 7                # FunctionProto.node: repeated NodeProto
FUNCTION_ATTRIBUTE_PROTO = 11    # FunctionProto.attribute_proto: repeated AttributeProto
ATTRIBUTE_T = 5                  # AttributeProto.t: TensorProto
ATTRIBUTE_G = 6                  # AttributeProto.g: GraphProto
ATTRIBUTE_TENSORS = 10           # AttributeProto.tensors: repeated TensorProto
ATTRIBUTE_GRAPHS = 11            # AttributeProto.graphs: repeated GraphProto
ATTRIBUTE_SPARSE_TENSOR = 22     # AttributeProto.sparse_tensor: SparseTensorProto
ATTRIBUTE_SPARSE_TENSORS = 23    # AttributeProto.sparse_tensors: repeated SparseTensorProto
SPARSE_VALUES = 1                # SparseTensorProto.values: TensorProto
SPARSE_INDICES = 2               # SparseTensorProto.indices: TensorProto
TENSOR_EXTERNAL_DATA = 13        # TensorProto.external_data: repeated StringStringEntryProto
# TensorProto.data_location (enum DataLocation, EXTERNAL = 1) is not read: every "location" entry
# counts, whatever data_location says (the conservative reading). Kept for the record and the test.
TENSOR_DATA_LOCATION = 14
DATA_LOCATION_EXTERNAL = 1
ENTRY_KEY = 1                    # StringStringEntryProto.key: string
ENTRY_VALUE = 2                  # StringStringEntryProto.value: string
LOCATION_KEY = b"location"

# Message kinds of the walk, and for each the fields that lead to one of them.
_MODEL, _TRAINING, _GRAPH, _NODE, _FUNCTION, _ATTRIBUTE, _SPARSE, _TENSOR, _ENTRY = range(9)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {MODEL_GRAPH: _GRAPH, MODEL_TRAINING_INFO: _TRAINING, MODEL_FUNCTIONS: _FUNCTION},
    _TRAINING: {TRAINING_INITIALIZATION: _GRAPH, TRAINING_ALGORITHM: _GRAPH},
    _GRAPH: {GRAPH_NODE: _NODE, GRAPH_INITIALIZER: _TENSOR, GRAPH_SPARSE_INITIALIZER: _SPARSE},
    _NODE: {NODE_ATTRIBUTE: _ATTRIBUTE},
    _FUNCTION: {FUNCTION_NODE: _NODE, FUNCTION_ATTRIBUTE_PROTO: _ATTRIBUTE},
    _ATTRIBUTE: {
        ATTRIBUTE_T: _TENSOR, ATTRIBUTE_G: _GRAPH, ATTRIBUTE_TENSORS: _TENSOR,
        ATTRIBUTE_GRAPHS: _GRAPH, ATTRIBUTE_SPARSE_TENSOR: _SPARSE,
        ATTRIBUTE_SPARSE_TENSORS: _SPARSE,
    },
    _SPARSE: {SPARSE_VALUES: _TENSOR, SPARSE_INDICES: _TENSOR},
    _TENSOR: {TENSOR_EXTERNAL_DATA: _ENTRY},
    _ENTRY: {},
}

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = (
    protowire.VARINT, protowire.FIXED64, protowire.LEN, protowire.START_GROUP,
    protowire.END_GROUP, protowire.FIXED32)
_Malformed = protowire.WireError
_varint = protowire.varint


def _skip(buf, pos: int, end: int, wire: int, number: int) -> int:
    """The offset after a field's value (the tag already read); groups are skipped whole."""
    if wire == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire in (_FIXED64, _FIXED32):
        after = pos + (8 if wire == _FIXED64 else 4)
    elif wire == _LEN:
        length, pos = _varint(buf, pos, end)
        after = pos + length
    elif wire == _START_GROUP:  # proto2 groups only appear as unknown fields; skip them whole
        open_groups = [number]
        while open_groups:
            tag, pos = _varint(buf, pos, end)
            inner_wire, inner_number = tag & 7, tag >> 3
            if inner_wire == _END_GROUP:
                if inner_number != open_groups.pop():
                    raise _Malformed(f"mismatched end of group at byte {pos}")
            elif inner_wire == _START_GROUP:
                open_groups.append(inner_number)
            else:
                pos = _skip(buf, pos, end, inner_wire, inner_number)
        return pos
    elif wire == _END_GROUP:
        raise _Malformed(f"end of a group that never began at byte {pos}")
    else:
        raise _Malformed(f"invalid wire type {wire} at byte {pos}")
    if after > end:
        raise _Malformed(f"a field at byte {pos} runs past the end of its message")
    return after


def _walk(buf, size: int) -> list[str]:
    """Every external-data location in the ModelProto ``buf[:size]``, in file order of tensors."""
    found: list[str] = []
    pending = [(0, size, _MODEL)]  # a stack, not recursion: nesting depth costs no Python frames
    while pending:
        pos, end, kind = pending.pop()
        children = _CHILDREN[kind]
        key = value = None
        spans: list[tuple[int, int, int]] = []
        while pos < end:
            tag, pos = _varint(buf, pos, end)
            wire, number = tag & 7, tag >> 3
            if number == 0:
                raise _Malformed(f"field number 0 at byte {pos}")
            if wire != _LEN or (kind != _ENTRY and number not in children):
                # A known field with the wrong wire type is an unknown field to protobuf too.
                pos = _skip(buf, pos, end, wire, number)
                continue
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f"a field at byte {pos} runs past the end of its message")
            if kind == _ENTRY:  # the last key and value win, as protobuf merges them
                if number == ENTRY_KEY:
                    key = (pos, pos + length)
                elif number == ENTRY_VALUE:
                    value = (pos, pos + length)
            else:
                spans.append((pos, pos + length, children[number]))
            pos += length
        if kind == _ENTRY and key is not None and key[1] - key[0] == len(LOCATION_KEY):
            if bytes(buf[key[0]:key[1]]) == LOCATION_KEY:
                raw = bytes(buf[value[0]:value[1]]) if value is not None else b""
                found.append(raw.decode("utf-8", "surrogateescape"))
        pending.extend(reversed(spans))
    return found


def _bundle_error(root: Path, name: str, problem: str) -> BundleError:
    return BundleError(f"model bundle {root}: {name} {problem}.")


def _display_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _scan(path: Path, root: Path) -> tuple[list[str], list[int]]:
    """``(locations, stat key)`` of the model at ``path``. Raises _Malformed for bytes that are
    not protobuf wire format, BundleError when the file cannot be read or is not a regular file."""
    name = _display_name(path, root)
    try:
        # O_NONBLOCK: a FIFO in place of the graph must not hang the open; it is refused below.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _bundle_error(root, name, "is not a regular file")
            if st.st_size == 0:
                return [], hashing._stat_key(st)  # an empty ModelProto holds no tensors
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
                return _walk(buf, len(buf)), hashing._stat_key(st)
        finally:
            os.close(fd)
    except (OSError, ValueError) as err:  # ValueError: mmap of a file that shrank to nothing
        if isinstance(err, _Malformed):
            raise
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise _bundle_error(root, name, f"cannot be read ({why})") from None


def external_data_locations(
    path: str | os.PathLike, *, bundle_root: str | os.PathLike | None = None
) -> list[str]:
    """Every external-data ``location`` named by a tensor of the ONNX model at ``path``.

    Tensors are found in graph initializers and sparse initializers, node attributes (``t``,
    ``tensors``, ``sparse_tensor(s)``), subgraphs of attributes (``g``, ``graphs``) at any depth,
    model-local functions and training info. Every ``location`` entry counts, whatever the
    tensor's ``data_location`` says (the conservative reading). Duplicates are kept; order is
    that of the file. The file is mapped, not read: tensor payloads are skipped by offset.

    Raises BundleError (one sentence naming ``bundle_root``, default the file's directory, and the
    file) when the file cannot be read or is not protobuf wire format.
    """
    path = Path(path)
    root = Path(bundle_root) if bundle_root is not None else path.parent
    try:
        return _scan(path, root)[0]
    except _Malformed as err:
        problem = f"is not a valid ONNX model ({err})"
        raise _bundle_error(root, _display_name(path, root), problem) from None


# Locations per graph file, keyed by its resolved path and the (size, mtime, inode) key that the
# hash stamp trusts (edgeser.bundle.hashing): a process loading the same bundle again does not
# rescan it. Bounded: the oldest entry goes first.
_SCANNED: dict[tuple[str, tuple[int, ...]], tuple[str, ...]] = {}
_SCANNED_MAX = 32
_SCANNED_LOCK = threading.Lock()


def _locations_cached(path: Path, root: Path) -> tuple[str, ...]:
    """The locations in the graph at ``path``; () for bytes that are not protobuf at all.

    Why () and not an error: every malformation the walk stops at (a truncated varint, a length
    past the end of its message, wire type 6 or 7, field number 0, an unmatched end of group) makes
    protobuf's own parser fail too, so ONNX Runtime cannot read a single tensor of such a file and
    refuses it with its own error when the session is made (``load`` has always accepted a graph's
    bytes as long as their hash matches, e.g. placeholder graphs in tests)."""
    try:
        resolved = path.resolve()
        key = (str(resolved), tuple(hashing._stat_key(os.stat(resolved))))
    except (OSError, RuntimeError):
        key = None
    with _SCANNED_LOCK:
        cached = _SCANNED.get(key) if key is not None else None
    if cached is not None:
        return cached
    try:
        found, stat_key = _scan(path, root)
    except _Malformed:
        return ()  # not remembered: rare, and cheap to find again (the walk stops early)
    locations = tuple(found)
    if key is not None and tuple(stat_key) == key[1]:  # unchanged between stat and scan
        with _SCANNED_LOCK:
            while len(_SCANNED) >= _SCANNED_MAX:
                _SCANNED.pop(next(iter(_SCANNED)))
            _SCANNED[key] = locations
    return locations


def _location_problem(root: Path, real_root: Path, graph_dir: PurePosixPath, location: str,
                      listed: Collection[str]) -> str | None:
    """Why ONNX Runtime must not read ``location`` (named by a graph in ``graph_dir``), or None."""
    outside = "refers to external data outside the bundle"
    pure = PurePosixPath(location)
    if (
        location == ""
        or "\\" in location
        or "\x00" in location
        or re.match(r"[A-Za-z]:", location)  # a Windows drive (C:\x, C:x)
        or pure.is_absolute()                # also //server/share
        or ".." in pure.parts
    ):
        return outside if location else "refers to external data with an empty location"
    # ONNX Runtime joins the location to the directory of the graph's path as given (unresolved).
    name = (graph_dir / pure).as_posix()
    try:
        resolved = (root / name).resolve()
    except (OSError, RuntimeError):
        return outside
    if not resolved.is_relative_to(real_root):
        return outside
    if name not in listed:
        return "refers to external data not listed in the manifest's files"
    return None


def check_external_data(bundle_root: str | os.PathLike, graph_path: str,
                        listed_files: Collection[str]) -> None:
    """Refuse a graph whose tensors name external data ONNX Runtime must not read.

    ``graph_path``: the graph's file as the manifest names it (relative to ``bundle_root``);
    ``listed_files``: the names under the manifest's ``"files"``. Each external location must be a
    relative POSIX path without ``..``, not absolute, not a drive or UNC path, resolve (after
    symlinks) inside the bundle, and be listed (hence size- and hash-checked by ``load``).
    Raises BundleError, one sentence naming the bundle, the graph and the first bad location.
    """
    root = Path(bundle_root)
    graph = PurePosixPath(graph_path)
    locations = _locations_cached(root / graph, root)
    if not locations:
        return
    real_root = root.resolve()
    for location in dict.fromkeys(locations):
        problem = _location_problem(root, real_root, graph.parent, location, listed_files)
        if problem is not None:
            raise _bundle_error(root, graph.as_posix(), f"{problem} ({location!r})")
