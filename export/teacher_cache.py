"""The teacher's outputs on the distillation windows, computed once and kept on disk.

A cache is a directory ``<cache root>/<key>/`` (default root ``$EDGESER_HOME/distill-cache``);
the key is the sha256 of everything that decides its content: the teacher's weights and config,
the checkpoint's preprocessing, the audio files (path, size, content sha256) and their split,
window and hop, silence gate, window budgets, augmentation copies, seed, and whether conv
features are kept.

It is written in shards, each a directory renamed into place when complete and covering whole
files, so an interrupted teacher pass resumes at the first file no shard covers and nothing is
ever half written; ``meta.json``, written last, marks the cache complete. Per window a shard
holds its reference (file, start, length, augmentation copy), the teacher's logits and
embedding, and what the student trains on: the teacher's conv features (float16) when the conv
front end is frozen, else the prepared input window (float32); held-out windows always keep
their prepared input (the student is evaluated end to end).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeser.atomic import atomic_text
from edgeser.errors import ExportError
from edgeser.export import distill_data as data

FORMAT = 1
SHARD_WINDOWS = 64
BATCH = 8
META = "meta.json"


class Interrupted(Exception):
    """The run was asked to stop (Ctrl-C) at a point where everything written is complete."""


@dataclass
class CacheSpec:
    teacher_weights: list
    teacher_config_sha256: str
    preprocessing: str
    files: list  # [rel, bytes, sha256, "train"|"heldout"] in corpus order
    window_s: float
    hop_s: float
    silence_dbfs: float
    train_fraction: float
    heldout_fraction: float
    augment: int
    seed: int
    features: bool

    def key(self) -> str:
        text = json.dumps({"format": FORMAT, **self.__dict__}, sort_keys=True)
        return data.digest(text)[:32]


@dataclass
class TeacherCache:
    directory: Path
    refs: np.ndarray  # [n, 4] int64: file, start, length, augmentation copy
    heldout: np.ndarray  # [n] bool
    logits: np.ndarray  # [n, outputs] float32
    embedding: np.ndarray  # [n, size] float32
    features: bool
    _shards: list = field(default_factory=list)  # (first window, count, dict of memmaps)

    def __len__(self) -> int:
        return len(self.refs)

    def _locate(self, i: int):
        for first, count, arrays in self._shards:
            if first <= i < first + count:
                return i - first, arrays
        raise IndexError(i)

    def _ragged(self, i: int, name: str) -> np.ndarray:
        local, arrays = self._locate(i)
        offsets = arrays[name + "_offsets"]
        start, stop = int(offsets[local]), int(offsets[local + 1])
        if start == stop:
            raise KeyError(f"window {i} keeps no {name}")
        return arrays[name][start:stop]

    def input(self, i: int) -> np.ndarray:
        """The prepared input window (float32 samples)."""
        return np.asarray(self._ragged(i, "inputs"), np.float32)

    def feature(self, i: int) -> np.ndarray:
        """The teacher's conv features ``[frames, channels]`` (float32 from float16)."""
        return np.asarray(self._ragged(i, "features"), np.float32)

    def training_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.heldout)

    def heldout_indices(self) -> np.ndarray:
        return np.flatnonzero(self.heldout)


def _shard_name(first_file: int, last_file: int) -> str:
    return f"shard-{first_file:06d}-{last_file:06d}"


def _completed_shards(directory: Path) -> list:
    shards = []
    for entry in sorted(directory.glob("shard-*-*")):
        parts = entry.name.split("-")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            shards.append((int(parts[1]), int(parts[2]), entry))
    return shards


def _ragged_arrays(parts: list, dtype, width: int | None):
    offsets = np.zeros(len(parts) + 1, np.int64)
    for k, part in enumerate(parts):
        offsets[k + 1] = offsets[k] + (0 if part is None else len(part))
    shape = (int(offsets[-1]),) if width is None else (int(offsets[-1]), width)
    flat = np.zeros(shape, dtype)
    for k, part in enumerate(parts):
        if part is not None:
            flat[offsets[k]:offsets[k + 1]] = part
    return flat, offsets


def _write_shard(directory: Path, name: str, rows: list) -> None:
    tmp = directory / f".{name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        refs = np.array([r["ref"] for r in rows], np.int64).reshape(-1, 4)
        arrays = {
            "refs": refs,
            "logits": np.stack([r["logits"] for r in rows]).astype(np.float32),
            "embedding": np.stack([r["embedding"] for r in rows]).astype(np.float32),
        }
        inputs = [r.get("input") for r in rows]
        arrays["inputs"], arrays["inputs_offsets"] = _ragged_arrays(inputs, np.float32, None)
        feats = [r.get("features") for r in rows]
        width = next((f.shape[1] for f in feats if f is not None), 1)
        arrays["features"], arrays["features_offsets"] = _ragged_arrays(feats, np.float16, width)
        for key, value in arrays.items():
            with open(tmp / f"{key}.npy", "wb") as out:
                np.save(out, value, allow_pickle=False)
                out.flush()
                os.fsync(out.fileno())
        if (directory / name).exists():  # another run with the same key finished it first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, directory / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(directory: Path) -> TeacherCache | None:
    """The complete cache in ``directory``, or None when it is absent or incomplete."""
    meta_path = directory / META
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        refs, logits, embedding, shards = [], [], [], []
        first = 0
        for name in meta["shards"]:
            arrays = {p.stem: np.load(p, mmap_mode="r", allow_pickle=False)
                      for p in (directory / name).glob("*.npy")}
            count = len(arrays["refs"])
            shards.append((first, count, arrays))
            refs.append(np.asarray(arrays["refs"]))
            logits.append(np.asarray(arrays["logits"]))
            embedding.append(np.asarray(arrays["embedding"]))
            first += count
        refs_all = np.concatenate(refs) if refs else np.zeros((0, 4), np.int64)
        heldout_files = np.array([f[3] == "heldout" for f in meta["spec"]["files"]], bool)
        empty = np.zeros((0, 0), np.float32)
        cache = TeacherCache(directory, refs_all, heldout_files[refs_all[:, 0]] if len(refs_all)
                             else np.zeros(0, bool),
                             np.concatenate(logits) if logits else empty,
                             np.concatenate(embedding) if embedding else empty,
                             bool(meta["spec"]["features"]), shards)
    except (OSError, ValueError, KeyError, IndexError, json.JSONDecodeError) as err:
        raise ExportError(f"the teacher cache {directory} is damaged ({err}); delete it and run "
                          "again.") from None
    if len(cache) != meta.get("windows"):
        raise ExportError(f"the teacher cache {directory} is damaged (window count); delete it "
                          "and run again.")
    return cache


def build(directory: Path, spec: CacheSpec, corpus, prep, teacher, device, *, progress,
          should_stop, total_estimate: int) -> TeacherCache:
    """Compute the teacher's outputs on every window and write the cache (resuming a partial
    one); raises :class:`Interrupted` between files when ``should_stop()``."""
    import torch

    existing = load(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    done_files = set()
    shards = _completed_shards(directory)
    for first, last, _ in shards:
        done_files.update(range(first, last + 1))
    spec_path = directory / "spec.json"
    with atomic_text(spec_path) as out:
        json.dump(spec.__dict__, out, indent=1)
    progress.start("teacher outputs (computed once, cached)", total=total_estimate)
    done_windows = 0
    for first, last, entry in shards:
        done_windows += len(np.load(entry / "refs.npy", mmap_mode="r"))
    progress.advance(done_windows)

    def run(batch: list):
        x = torch.from_numpy(np.stack(batch)).to(device)
        with torch.inference_mode():
            logits, embedding, _ = teacher.forward_audio(x)
            features = teacher.conv_features(x) if spec.features else None
        return (logits.float().cpu().numpy(), embedding.float().cpu().numpy(),
                None if features is None else features.float().cpu().numpy())

    rows: list = []
    shard_first = None
    for index, f in enumerate(corpus.files):
        if index in done_files:
            continue
        if should_stop():
            raise Interrupted()
        if shard_first is None:
            shard_first = index
        heldout = spec.files[index][3] == "heldout"
        try:
            samples = data.decode(f)
        except ExportError as err:  # opened at the scan, but does not decode: no windows
            if hasattr(progress, "note"):
                progress.note(f"warning: skipped {err}")
            samples = np.zeros(0, np.float32)
        windows = data.voiced_windows(samples, spec.window_s, spec.hop_s, spec.silence_dbfs)
        keep = data.keep_mask(len(windows), spec.heldout_fraction if heldout else spec.train_fraction,
                              spec.seed, index)
        prepared, file_rows = [], []
        for (start, length), kept in zip(windows, keep):
            if not kept:
                continue
            raw = samples[start:start + length]
            copies = 1 if heldout else 1 + spec.augment
            for copy in range(copies):
                x = raw if copy == 0 else data.augment(
                    raw, samples, start, np.random.default_rng([spec.seed, index, start, copy]))
                prepared.append(prep.window(x))
                file_rows.append({"ref": [index, start, length, copy]})
        for length, positions in _by_length(prepared).items():
            for k in range(0, len(positions), BATCH):
                chunk = positions[k:k + BATCH]
                logits, embedding, features = run([prepared[p] for p in chunk])
                for j, p in enumerate(chunk):
                    row = file_rows[p]
                    row["logits"], row["embedding"] = logits[j], embedding[j]
                    if heldout or not spec.features:
                        row["input"] = prepared[p]
                    else:
                        row["features"] = features[j].astype(np.float16)
                progress.advance(len(chunk))
        rows += file_rows
        if len(rows) >= SHARD_WINDOWS or index == len(corpus.files) - 1:
            if rows:
                _write_shard(directory, _shard_name(shard_first, index), rows)
            else:  # files without a voiced window still count as done
                _write_empty(directory, _shard_name(shard_first, index))
            rows, shard_first = [], None
    if rows:  # pragma: no cover - the last file always flushes
        _write_shard(directory, _shard_name(shard_first, len(corpus.files) - 1), rows)
    names = [entry.name for _, _, entry in _completed_shards(directory)
             if (entry / "refs.npy").is_file()]
    windows = sum(len(np.load(directory / n / "refs.npy", mmap_mode="r")) for n in names)
    with atomic_text(directory / META) as out:
        json.dump({"format": FORMAT, "spec": spec.__dict__, "shards": names, "windows": windows},
                  out, indent=1)
    cache = load(directory)
    assert cache is not None
    return cache


def _write_empty(directory: Path, name: str) -> None:
    """A shard of files that gave no voiced window: they count as done."""
    (directory / name).mkdir(exist_ok=True)


def _by_length(arrays: list) -> dict:
    groups: dict = {}
    for position, array in enumerate(arrays):
        groups.setdefault(len(array), []).append(position)
    return groups
