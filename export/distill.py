"""``edgeser distill``: a smaller student of a teacher checkpoint, trained on unlabelled audio to
reproduce the teacher's outputs, judged on held-out files, written as a checkpoint of the
teacher's own family that ``edgeser export`` takes unchanged.

teacher (loaded safely) -> student planned and initialised from teacher layers -> audio scanned
and split by speaker -> teacher outputs computed once and cached -> held-out fidelity before
training -> training (checkpoints, resume, time budget, Ctrl-C) -> held-out fidelity after ->
student directory written atomically with its distillation record in config.json.

Nothing is half written: the teacher cache is written in complete shards, checkpoints by rename,
the student as a temp directory renamed into place. A student below ``min_ccc`` is still written,
marked unfaithful; ``edgeser export`` carries that into the bundle's manifest.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeser import __version__
from edgeser import frontend as fe
from edgeser.atomic import atomic_file
from edgeser.errors import EdgeserError, ExportError
from edgeser.export import (checkpoint, distill_data, distill_eval, families, pipeline,
                            preprocessing, students, teacher_cache, training, weights)
from edgeser.export import source as sources
from edgeser.export.pipeline import Progress

DEFAULT_STEPS = 2000
DEFAULT_MAX_WINDOWS = 3000
DEFAULT_CHECKPOINT_EVERY = 100
# Peak learning rates (AdamW). The transformer starts as the teacher's own layers, a fine-tuning
# regime: on the full-size reference student 1e-4 left the loss near 3 after 200 steps where 1e-5
# reached 0.16. A front end trained alone after its narrowed layers were refitted by least squares
# moved fastest at 1e-4 (3e-5 slower, 3e-4 first undid the refit).
DEFAULT_LR = 1e-5
DEFAULT_FRONTEND_LR = 1e-4
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
PROBE_STEPS = 2
CONV_FIT_WINDOWS = 16  # full training windows for the narrowed conv's least-squares refit
DEVICES = ("auto", "cpu", "cuda")


class DistillError(ExportError):
    """Distillation cannot run with these inputs (one sentence)."""


class DistillInterrupted(EdgeserError):
    """Stopped by Ctrl-C at a safe point; the message says what was kept."""


@dataclass(frozen=True)
class DistillOptions:
    teacher: str
    audio: Path
    out: Path
    revision: str | None = None
    student_layers: int | None = None
    init_layers: tuple | None = None
    preset: str | None = None  # "tiny"
    ffn_dim: int | None = None
    hidden_size: int | None = None
    conv_dim: int | tuple | None = None  # every conv layer, or the first layers' widths
    pos_conv_kernel: int | None = None
    frontend_only: bool = False  # train the front end alone against the teacher's encoder input
    freeze_frontend: bool | None = None  # None: frozen when the student keeps the teacher's conv
    steps: int | None = None  # None: DEFAULT_STEPS, or what the time budget allows
    time_budget_s: float | None = None
    batch_size: int = 8
    lr: float | None = None  # None: DEFAULT_LR, or DEFAULT_FRONTEND_LR with frontend_only
    seed: int = 0
    temperature: float = 2.0
    match_hidden: float = 0.0
    augment: int = 0
    holdout: float = 0.2
    speaker_pattern: str | None = None
    min_ccc: float = 0.9
    max_windows: int = DEFAULT_MAX_WINDOWS
    window_s: float | None = None
    hop_s: float | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    resume: bool = False
    overwrite: bool = False
    cache_dir: Path | None = None
    device: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class HeldOut:
    """The held-out windows (prepared inputs), where they came from and the teacher's outputs."""

    windows: tuple
    refs: np.ndarray
    teacher_logits: np.ndarray
    teacher_embedding: np.ndarray
    files: tuple  # relative paths of the held-out files


@dataclass(frozen=True)
class DistillResult:
    student: Path
    record: dict
    faithful: bool
    warnings: tuple
    heldout: HeldOut = field(repr=False)


class DistillProgress(Progress):
    """The pipeline's progress protocol plus lines worth keeping and a live status."""

    def note(self, message: str) -> None:
        """A line for the user (warnings, checkpoints)."""

    def status(self, text: str) -> None:
        """Live detail for the current step (the loss)."""


def _note(progress, message: str) -> None:
    if hasattr(progress, "note"):
        progress.note(message)


def _status(progress, text: str) -> None:
    if hasattr(progress, "status"):
        progress.status(text)


# ---------------------------------------------------------------------------------------------
# Options and locations


def parse_duration(text: str) -> float:
    """``90m``, ``2h``, ``1h30m``, ``45s`` or plain seconds -> seconds; DistillError otherwise."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise DistillError(f"--time-budget {text!r} is not a duration like 90m, 2h or 1h30m.")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not seconds > 0:
        raise DistillError(f"--time-budget {text!r} must be longer than zero.")
    return seconds


def learning_rate(o: DistillOptions) -> float:
    """The peak learning rate these options train with."""
    if o.lr is not None:
        return o.lr
    return DEFAULT_FRONTEND_LR if o.frontend_only else DEFAULT_LR


def _check_options(o: DistillOptions) -> None:
    checks = [
        (o.steps is None or o.steps >= 1, "--steps must be at least 1"),
        (o.batch_size >= 2, "--batch-size must be at least 2 (CCC needs a spread)"),
        (o.lr is None or (o.lr > 0 and math.isfinite(o.lr)), "--lr must be a positive number"),
        (o.temperature > 0 and math.isfinite(o.temperature), "--temperature must be positive"),
        (o.match_hidden >= 0 and math.isfinite(o.match_hidden), "--match-hidden must be 0 or more"),
        (o.augment >= 0, "--augment must be 0 or more copies"),
        (-1.0 <= o.min_ccc <= 1.0, "--min-ccc must be between -1 and 1"),
        (o.max_windows >= distill_data.MIN_TRAINING_WINDOWS,
         f"--max-windows must be at least {distill_data.MIN_TRAINING_WINDOWS}"),
        (o.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
        (o.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
        (o.threads is None or o.threads >= 1, "--threads must be at least 1"),
        (o.time_budget_s is None or o.time_budget_s > 0, "--time-budget must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise DistillError(message + ".")
    if not 0.0 < o.holdout < 1.0:
        raise DistillError(f"--holdout {o.holdout} must be a fraction between 0 and 1, e.g. 0.2.")


def work_dir(out: Path) -> Path:
    """Where checkpoints of the student for ``out`` live until it is written."""
    out = Path(out)
    return out.parent / f".{out.name}.distill"


def default_cache_root() -> Path:
    from edgeser.bundle import edgeser_home

    return edgeser_home() / "distill-cache"


# ---------------------------------------------------------------------------------------------
# Teacher and student


@dataclass
class _Teacher:
    source: object
    ckpt: object
    family: object
    built: object
    prep: object
    prefix: str
    shape: object
    label: str


def _load_teacher(o: DistillOptions) -> _Teacher:
    label = o.teacher
    try:
        src = sources.resolve(o.teacher, o.revision)
        ckpt = checkpoint.read(src.directory, label)
        prep = preprocessing.read(src.directory, label)
        family, built = families.build(ckpt.config, label, state_dict=ckpt.state_dict)
        weights.load(built, ckpt.state_dict, label)
    except ExportError as err:
        raise DistillError(f"the teacher cannot be loaded: {err}") from None
    prefix = families.BACKBONES[ckpt.config.get("model_type")]
    backbone = getattr(built.load_target, prefix)
    if getattr(backbone.config, "add_adapter", False):
        raise DistillError(f"{label}: a backbone with an adapter cannot be distilled.")
    return _Teacher(src, ckpt, family, built, prep, prefix, students.backbone_shape(backbone.config),
                    label)


def _build_student(teacher: _Teacher, plan: students.StudentPlan):
    import torch

    config = students.student_config(teacher.ckpt.config, plan)
    state = {}
    if teacher.family.name == "embedding":
        size = teacher.built.embedding_size
        narrowed = plan.shape.hidden_size != teacher.shape.hidden_size
        if "projection.weight" in teacher.ckpt.state_dict or narrowed:
            state["projection.weight"] = torch.empty(size, plan.shape.hidden_size)
    family, built = families.build(config, "student", task=teacher.built.task, state_dict=state)
    return config, built


# ---------------------------------------------------------------------------------------------
# Interruption


class _StopFlag:
    """First Ctrl-C: stop at the next safe point; a second one aborts at once."""

    def __init__(self, progress) -> None:
        self.requested = False
        self._progress = progress
        self._previous = None

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        _note(self._progress, "stopping at the next safe point (Ctrl-C again aborts at once; "
                              "the last checkpoint is kept either way)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _settings(o: DistillOptions, plan, frozen: bool, window_s: float, hop_s: float,
              cache_key: str) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint."""
    return {"student": plan.record(), "freeze_frontend": frozen, "batch_size": o.batch_size,
            "lr": learning_rate(o), "seed": o.seed, "temperature": o.temperature,
            "match_hidden": o.match_hidden, "frontend_only": o.frontend_only,
            "augment": o.augment, "holdout": o.holdout,
            "speaker_pattern": o.speaker_pattern, "max_windows": o.max_windows,
            "window_s": window_s, "hop_s": hop_s, "audio_and_teacher_cache": cache_key}


def _read_checkpoint(path: Path) -> dict:
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        raise DistillError(f"cannot resume: {path} is not a readable checkpoint ({err}); delete "
                           "it to start over.") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DistillError(f"cannot resume: {path} is not an edgeser distillation checkpoint; "
                           "delete it to start over.")
    return state


def _check_resume(state: dict, path: Path, teacher: _Teacher, settings: dict) -> None:
    theirs = [list(x) for x in state.get("teacher_weights", [])]
    ours = [[w.name, w.sha256] for w in teacher.ckpt.weights]
    if theirs != ours:
        their = theirs[0][1][:12] if theirs else "unknown"
        raise DistillError(
            f"cannot resume: the checkpoint in {path.parent} was trained from another teacher "
            f"(weights sha256 {their}..., not {ours[0][1][:12]}... of {teacher.label}); pass that "
            "teacher, or delete the checkpoint to start over.")
    recorded = json.loads(state["settings"])
    differ = [f"{k} {recorded.get(k)!r} vs {v!r}" for k, v in settings.items()
              if recorded.get(k) != v and k != "audio_and_teacher_cache"]
    if not differ and recorded.get("audio_and_teacher_cache") != settings["audio_and_teacher_cache"]:
        differ = ["the audio files, their split or the windows changed"]
    if differ:
        raise DistillError(f"cannot resume: the checkpoint in {path.parent} was made with other "
                           f"settings ({'; '.join(differ)}); use the same options, or delete it "
                           "to start over.")


def _write_checkpoint(path: Path, payload: dict) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, binary=True) as out:
        torch.save(payload, out)


# ---------------------------------------------------------------------------------------------
# Writing the student


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _publish_student(out: Path, overwrite: bool, write) -> None:
    """Write the student into a temp directory beside ``out`` with ``write(dir)`` and rename it
    into place (an existing ``out`` is replaced only with ``overwrite``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        write(tmp)
        for entry in tmp.iterdir():
            with open(entry, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if os.path.lexists(out):
            if not overwrite:
                raise DistillError(f"--out {out} already exists (pass --force to replace it).")
            old = out.with_name(f".{out.name}.old-{secrets.token_hex(6)}")
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sha256(path: Path) -> str:
    return sources.sha256_file(path)


# ---------------------------------------------------------------------------------------------
# The run


def _forward_numpy(net, device):
    import torch

    def forward(batch: np.ndarray):
        with torch.inference_mode():
            logits, embedding, _ = net.forward_audio(torch.from_numpy(
                np.ascontiguousarray(batch, np.float32)).to(device))
        return logits.float().cpu().numpy(), embedding.float().cpu().numpy()

    return forward


_FRONTEND = re.compile(r"(^|\.)(feature_extractor|feature_projection|encoder\.pos_conv_embed)\.")


def _in_frontend(name: str) -> bool:
    """A parameter of the front end: conv, feature projection or positional conv."""
    return _FRONTEND.search(name) is not None


def _evaluate(student, device, heldout: HeldOut, kind, labels, laughter) -> dict:
    from edgeser.export import parity

    student.module.eval()
    outputs = parity.run(_forward_numpy(student, device), heldout.windows)
    return distill_eval.fidelity(kind, labels, heldout.teacher_logits, heldout.teacher_embedding,
                                 outputs.logits, outputs.embedding, heldout.refs,
                                 laughter=laughter)


def _versions() -> dict:
    import torch
    import transformers

    return {"edgeser": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


class _Run:
    """One distillation, phase by phase; the phases share what they computed as attributes."""

    def __init__(self, options: DistillOptions, progress) -> None:
        self.o = options
        self.progress = progress
        self.started = time.monotonic()
        self.out = Path(options.out)
        self.ckpt_path = work_dir(self.out) / CHECKPOINT
        self.warnings: list = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        _note(self.progress, f"warning: {message}")

    # -- 1. inputs, checked before anything is written ------------------------------------------

    def check_destination(self) -> None:
        o, out = self.o, self.out
        if os.path.lexists(out) and not o.overwrite:
            raise DistillError(f"--out {out} already exists (pass --force to replace it).")
        if o.resume and not self.ckpt_path.is_file():
            raise DistillError(f"nothing to resume: there is no checkpoint in {work_dir(out)}.")
        if not o.resume and self.ckpt_path.is_file():
            raise DistillError(f"a previous run of this student left a checkpoint in "
                               f"{work_dir(out)}; pass --resume to continue it, or delete that "
                               "folder to start over.")

    def load_teacher_and_plan(self) -> None:
        o = self.o
        self.progress.start("loading the teacher")
        teacher = self.teacher = _load_teacher(o)
        layers = o.student_layers
        if o.frontend_only and layers is None and o.init_layers is None:
            layers = teacher.shape.layers  # the teacher's transformer, whole
        plan = self.plan = students.plan(
            teacher.shape, layers=layers, init_layers=o.init_layers, ffn_dim=o.ffn_dim,
            hidden_size=o.hidden_size, conv_dim=o.conv_dim, pos_conv_kernel=o.pos_conv_kernel,
            preset=o.preset)
        if o.frontend_only:
            if not plan.keeps_encoder:
                raise DistillError("--frontend-only keeps the teacher's transformer: the student "
                                   "must have its layers and widths (narrow only --conv-dim or "
                                   "--pos-conv-kernel).")
            if o.freeze_frontend:
                raise DistillError("--frontend-only trains the front end; it cannot also be "
                                   "frozen (--freeze-frontend).")
            if o.match_hidden > 0:
                raise DistillError("--frontend-only matches the first layer's input; "
                                   "--match-hidden does not apply.")
        self.frozen = (plan.keeps_conv and not o.frontend_only if o.freeze_frontend is None
                       else o.freeze_frontend)
        if self.frozen and not plan.keeps_conv:
            raise DistillError("--freeze-frontend needs the teacher's conv width; this student "
                               "narrows the conv front end (--conv-dim or the tiny preset).")
        built = teacher.built
        self.task, self.kind, self.labels = built.task, built.logits_kind, list(built.labels)
        self.laughter = None
        if self.task == "laughter":
            positive = next((x for x in self.labels if "laugh" in x.lower()), self.labels[-1])
            self.laughter = {"positive_label": positive,
                             "threshold": pipeline.DEFAULT_OPERATING_POINTS["default"]}
        window_s, hop_s = pipeline.WINDOWS_S.get(self.task, pipeline.DEFAULT_WINDOW_S)
        window_s, hop_s = o.window_s or window_s, o.hop_s or hop_s
        try:  # whole model frames, as the bundle will store them
            self.window_s = fe.seconds_to_samples(window_s, "window") / fe.TARGET_RATE_HZ
            self.hop_s = fe.seconds_to_samples(hop_s, "hop") / fe.TARGET_RATE_HZ
        except fe.FrontendError as err:
            raise DistillError(f"--window/--hop: {err}.") from None
        if self.hop_s > self.window_s:
            raise DistillError(f"--hop {self.hop_s:g} must not be longer than the window "
                               f"({self.window_s:g} s).")

    def scan_audio(self) -> None:
        o = self.o
        self.progress.start("scanning the audio")
        try:
            corpus = self.corpus = distill_data.scan(o.audio, o.speaker_pattern)
            self.train_files, self.heldout_files = distill_data.split(corpus, o.holdout, o.seed)
        except ExportError as err:
            raise DistillError(str(err)) from None
        for rel, reason in corpus.skipped[:3]:
            self.warn(f"skipped {rel}: {reason}")
        if len(corpus.skipped) > 3:
            self.warn(f"skipped {len(corpus.skipped) - 3} more unreadable audio files")
        estimate = [distill_data.estimated_windows(f, self.window_s, self.hop_s)
                    for f in corpus.files]
        train_est = sum(estimate[i] for i in self.train_files)
        held_est = sum(estimate[i] for i in self.heldout_files)
        self.too_little = (f"--audio {o.audio}: too little audio for distillation with a "
                           f"held-out split: {len(corpus.files)} files, {corpus.seconds:.1f} s")
        if (train_est < distill_data.MIN_TRAINING_WINDOWS
                or held_est < distill_data.MIN_HELDOUT_WINDOWS):
            raise DistillError(
                f"{self.too_little} give about {train_est} training and {held_est} held-out "
                f"windows of {self.window_s:g} s; at least {distill_data.MIN_TRAINING_WINDOWS} "
                f"and {distill_data.MIN_HELDOUT_WINDOWS} are needed.")
        train_fraction = min(1.0, o.max_windows / train_est)
        held_fraction = min(1.0, distill_data.MAX_HELDOUT_WINDOWS / held_est)
        self.windows_estimate = int(train_est * train_fraction * (1 + o.augment)
                                    + held_est * held_fraction)
        split_of = {i: "train" for i in self.train_files}
        split_of.update({i: "heldout" for i in self.heldout_files})
        teacher = self.teacher
        self.spec = teacher_cache.CacheSpec(
            teacher_weights=[[w.name, w.sha256] for w in teacher.ckpt.weights],
            teacher_config_sha256=distill_data.digest(json.dumps(teacher.ckpt.config,
                                                                 sort_keys=True)),
            preprocessing=teacher.prep.normalization_mode,
            files=[[*fp, split_of[i]] for i, fp in enumerate(
                distill_data.fingerprint(corpus, range(len(corpus.files))))],
            window_s=self.window_s, hop_s=self.hop_s, silence_dbfs=pipeline.SILENCE_DBFS,
            train_fraction=train_fraction, heldout_fraction=held_fraction, augment=o.augment,
            seed=o.seed, features=self.frozen)
        self.settings = _settings(o, self.plan, self.frozen, self.window_s, self.hop_s,
                                  self.spec.key())

    def check_resume(self) -> None:
        self.resumed = None
        if self.o.resume:
            self.resumed = _read_checkpoint(self.ckpt_path)
            _check_resume(self.resumed, self.ckpt_path, self.teacher, self.settings)

    def build_student(self) -> None:
        import torch

        o, teacher = self.o, self.teacher
        self.student_config, self.student = _build_student(teacher, self.plan)
        students.initialise(teacher.built.load_target.state_dict(), self.student.load_target,
                            teacher.prefix, self.plan, teacher.family.name)
        if o.threads:
            torch.set_num_threads(o.threads)
        wanted = o.device == "cuda" or (o.device == "auto" and torch.cuda.is_available())
        if wanted and not torch.cuda.is_available():
            raise DistillError("--device cuda: no CUDA device is available to torch.")
        self.device = torch.device("cuda" if wanted else "cpu")
        self.teacher_net = training.Net(teacher.built, teacher.prefix, self.device)
        self.teacher_net.module.eval()
        self.student_net = training.Net(self.student, teacher.prefix, self.device)

    # -- 2. the teacher's outputs ---------------------------------------------------------------

    def teacher_pass(self, stop) -> None:
        cache_dir = Path(self.o.cache_dir or default_cache_root()) / self.spec.key()
        started = time.monotonic()
        try:
            cache = self.cache = teacher_cache.build(
                cache_dir, self.spec, self.corpus, self.teacher.prep, self.teacher_net,
                self.device, progress=self.progress, should_stop=stop,
                total_estimate=self.windows_estimate)
        except teacher_cache.Interrupted:
            raise DistillInterrupted(
                f"interrupted during the teacher pass; the finished part is cached in "
                f"{cache_dir} and the same command continues from it.") from None
        self.teacher_pass_s = time.monotonic() - started
        self.train_idx, held_idx = cache.training_indices(), cache.heldout_indices()
        self.clean_train = int(np.sum(cache.refs[self.train_idx, 3] == 0))
        if (self.clean_train < distill_data.MIN_TRAINING_WINDOWS
                or len(held_idx) < distill_data.MIN_HELDOUT_WINDOWS):
            raise DistillError(
                f"{self.too_little}, of which {self.clean_train} training and {len(held_idx)} "
                f"held-out windows are not silent; at least {distill_data.MIN_TRAINING_WINDOWS} "
                f"and {distill_data.MIN_HELDOUT_WINDOWS} are needed.")
        self.heldout = HeldOut(tuple(cache.input(i) for i in held_idx), cache.refs[held_idx],
                               np.asarray(cache.logits[held_idx], np.float64),
                               np.asarray(cache.embedding[held_idx], np.float64),
                               tuple(self.corpus.files[i].rel for i in self.heldout_files))
        spread = self.spread = distill_eval.teacher_spread(
            self.kind, self.labels, self.heldout.teacher_logits, self.heldout.teacher_embedding,
            self.heldout.refs[:, 0])
        if spread["near_constant"]:
            stds = ", ".join(f"{k} std {spread['outputs'][k]['std']:.2g}"
                             for k in spread["near_constant"])
            self.warn(f"the teacher's outputs barely move on the held-out audio ({stds}); "
                      "agreement with a near-constant teacher proves nothing about the student.")

    def evaluate(self) -> dict:
        return _evaluate(self.student_net, self.device, self.heldout, self.kind, self.labels,
                         self.laughter)

    # -- 3. training ----------------------------------------------------------------------------

    def reconstruct_conv(self) -> dict:
        """Least-squares refit of the narrowed conv stack on full training windows."""
        import torch

        cache = self.cache
        full = [i for i in self.train_idx if len(cache.input(i)) == round(self.window_s
                                                                          * fe.TARGET_RATE_HZ)]
        chosen = full[:: max(1, len(full) // CONV_FIT_WINDOWS)][:CONV_FIT_WINDOWS]
        if not chosen:
            return {"windows": 0, "residuals": []}
        windows = torch.from_numpy(np.stack([cache.input(i) for i in chosen])).to(self.device)
        teacher = self.teacher_net.backbone.feature_extractor.conv_layers
        student = self.student_net.backbone.feature_extractor.conv_layers
        kept = students.conv_kept(self.teacher.built.load_target.state_dict(),
                                  self.teacher.prefix, self.plan)
        residuals = students.reconstruct_conv(teacher, student, windows, kept)
        return {"windows": len(chosen), "residuals": [round(r, 6) for r in residuals]}

    def train(self, stop) -> None:
        import torch

        o, plan, cache, device = self.o, self.plan, self.cache, self.device
        target, frozen, train_idx = self.student.load_target, self.frozen, self.train_idx
        frontend_only = o.frontend_only

        def trains(name: str) -> bool:
            if frozen and ".feature_extractor." in f".{name}":
                return False
            return _in_frontend(name) if frontend_only else True

        trainable = []
        for name, p in target.named_parameters():
            if trains(name):
                trainable.append(p)
            else:
                p.requires_grad_(False)
        lr = learning_rate(o)
        optimizer = training.optimiser(trainable, lr)
        if self.resumed is not None:
            r = self.resumed
            target.load_state_dict(r["student"], strict=True)
            optimizer.load_state_dict(r["optimizer"])
            step, self.before = int(r["step"]), json.loads(r["before"])
            self.eval_s, self.trained_s = float(r["eval_s"]), float(r["trained_s"])
            self.conv_fit = json.loads(r["conv_fit"])
            self.losses = list(json.loads(r["losses"]))
            planned = int(o.steps or r["planned_steps"])
            _note(self.progress, f"resuming at step {step} of {planned} from {self.ckpt_path}")
        else:
            self.conv_fit = None
            if not plan.keeps_conv:
                self.progress.start("refitting the narrowed conv layers")
                self.conv_fit = self.reconstruct_conv()
            self.progress.start("held-out fidelity before training",
                                total=len(self.heldout.windows))
            eval_started = time.monotonic()
            self.before = self.evaluate()
            self.eval_s = time.monotonic() - eval_started
            step, self.trained_s, self.losses, planned = 0, 0.0, [], None
        losses = self.losses
        regression_var = None
        if self.kind == "regression":
            regression_var = torch.from_numpy(np.asarray(
                cache.logits[train_idx], np.float64).var(0).astype(np.float32)).to(device)
        residual = None
        if plan.shape.hidden_size != plan.teacher.hidden_size:
            residual = students.residual_dims(self.teacher.built.load_target.state_dict(),
                                              self.teacher.prefix, plan)
        student_layers = list(range(plan.shape.layers)) if o.match_hidden > 0 else None
        teacher_layers = list(plan.init_layers) if o.match_hidden > 0 else None
        student_run = (self.student_net.forward_features if frozen
                       else self.student_net.forward_audio)
        teacher_run = (self.teacher_net.forward_features if frozen
                       else self.teacher_net.forward_audio)

        def frontend_step_loss(idx, arrays):
            total = 0.0
            for positions in training.by_length(arrays).values():
                x = torch.from_numpy(np.stack([arrays[p] for p in positions])).to(device)
                with torch.no_grad():
                    wanted = self.teacher_net.encoder_input(x)
                total = total + training.frontend_loss(
                    self.student_net.encoder_input(x), wanted) * len(positions)
            return total / len(idx)

        def train_step(k: int, update: bool = True) -> float:
            idx = train_idx[training.batch_indices(o.seed, k, len(train_idx), o.batch_size)]
            torch.manual_seed(training.step_seed(o.seed, k))
            arrays = [cache.feature(i) if frozen else cache.input(i) for i in idx]
            # The modules' inference mode (gradients still flow): no dropout, LayerDrop or
            # SpecAugment, none of which the teacher's targets saw.
            target.eval()
            if frontend_only:
                loss = frontend_step_loss(idx, arrays)
                return apply_update(loss, k, update)
            pieces = []
            for positions in training.by_length(arrays).values():
                x = torch.from_numpy(np.stack([arrays[p] for p in positions])).to(device)
                s_logits, s_embedding, s_hidden = student_run(x, student_layers)
                t_hidden = None
                if student_layers:
                    with torch.no_grad():
                        _, _, t_hidden = teacher_run(x, teacher_layers)
                pieces.append((positions, s_logits, s_embedding, s_hidden, t_hidden))
            order = np.concatenate([p[0] for p in pieces])
            inverse = torch.from_numpy(np.argsort(order, kind="stable")).to(device)
            s_logits = torch.cat([p[1] for p in pieces])[inverse]
            s_embedding = torch.cat([p[2] for p in pieces])[inverse]
            t_logits = torch.from_numpy(np.asarray(cache.logits[idx], np.float32)).to(device)
            t_embedding = torch.from_numpy(np.asarray(cache.embedding[idx], np.float32)).to(device)
            loss = training.output_loss(self.kind, s_logits, s_embedding, t_logits, t_embedding,
                                        temperature=o.temperature, target_var=regression_var)
            if student_layers:
                hidden = sum(training.hidden_loss(p[3], p[4], residual) * len(p[0])
                             for p in pieces)
                loss = loss + o.match_hidden * hidden / len(idx)
            return apply_update(loss, k, update)

        def apply_update(loss, k: int, update: bool) -> float:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            value = float(loss.detach())
            if update:
                if not math.isfinite(value):
                    raise DistillError(f"training diverged at step {k} (loss {value}); the last "
                                       f"checkpoint is kept in {work_dir(self.out)}; lower --lr.")
                torch.nn.utils.clip_grad_norm_(trainable, training.CLIP_NORM)
                for group in optimizer.param_groups:
                    group["lr"] = training.learning_rate(k, planned, lr)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return value

        def save(k: int) -> None:
            _write_checkpoint(self.ckpt_path, {
                "format": CHECKPOINT_FORMAT,
                "teacher_weights": [[w.name, w.sha256] for w in self.teacher.ckpt.weights],
                "settings": json.dumps(self.settings, sort_keys=True), "step": k,
                "planned_steps": planned,
                "student": {n: t.detach().cpu().clone() for n, t in target.state_dict().items()},
                "optimizer": optimizer.state_dict(), "before": json.dumps(self.before),
                "eval_s": self.eval_s, "trained_s": self.trained_s, "losses": json.dumps(losses),
                "conv_fit": json.dumps(self.conv_fit)})

        def over_budget(step_s: float) -> bool:
            if o.time_budget_s is None:
                return False
            elapsed = time.monotonic() - self.started
            return elapsed + step_s + 1.2 * self.eval_s > o.time_budget_s

        step_s = 0.0
        if planned is None:
            # With a time budget the schedule (warm-up, decay) must end inside it: planned is
            # what the budget allows, capped by --steps. Planning --steps and letting the budget
            # cut it would stop training early in the warm-up at a tiny learning rate.
            if o.time_budget_s is not None:
                probe_started = time.monotonic()
                for k in range(PROBE_STEPS):  # timing only: no update
                    train_step(k, update=False)
                step_s = (time.monotonic() - probe_started) / PROBE_STEPS * 1.05
                left = o.time_budget_s - (time.monotonic() - self.started) - 1.2 * self.eval_s
                planned = max(1, int(left / step_s))
                if o.steps is not None and o.steps < planned:
                    planned = o.steps
                else:
                    _note(self.progress, f"the time budget allows about {planned} steps "
                                         f"({step_s:.2f} s each)")
            else:
                planned = o.steps if o.steps is not None else DEFAULT_STEPS
        stopped_by = "steps"
        self.progress.start("training", total=planned)
        self.progress.advance(min(step, planned))
        last_saved = step
        while step < planned:
            if stop():
                stopped_by = "interrupt"
                break
            if over_budget(step_s):
                stopped_by = "time budget"
                break
            t = time.monotonic()
            losses.append(train_step(step))
            elapsed = time.monotonic() - t
            self.trained_s += elapsed
            step_s = elapsed if step_s == 0 else 0.9 * step_s + 0.1 * elapsed
            step += 1
            self.progress.advance(1)
            _status(self.progress, f"loss {np.mean(losses[-20:]):.4f}")
            if step % o.checkpoint_every == 0 or step == planned:
                save(step)
                last_saved = step
        if stopped_by == "interrupt":
            if step != last_saved or not self.ckpt_path.is_file():
                save(step)
            raise DistillInterrupted(
                f"interrupted at step {step} of {planned}; the checkpoint in "
                f"{work_dir(self.out)} keeps it: run the same command with --resume to continue.")
        if step != last_saved:
            save(step)
        if stopped_by == "time budget":
            self.warn(f"the time budget stopped training at step {step} of {planned}.")
        self.step, self.planned, self.stopped_by = step, planned, stopped_by

    # -- 4. held-out verdict and the student ----------------------------------------------------

    def record(self, after: dict, failures: list) -> dict:
        import torch

        o, teacher, plan, corpus = self.o, self.teacher, self.plan, self.corpus
        src, losses = teacher.source, self.losses
        train_idx, held = self.train_idx, self.heldout

        def seconds(indices) -> float:
            return round(float(sum(corpus.files[i].seconds for i in indices)), 3)

        def speakers(indices) -> int:
            return len({corpus.files[i].group for i in indices})

        return {
            "format": 1,
            "tool": f"edgeser distill {__version__}",
            "teacher": {
                "model": o.teacher if src.kind == "hub" else str(src.directory),
                "kind": src.kind, "revision": src.revision, "commit": src.commit,
                "family": teacher.family.name,
                "architecture": ", ".join(teacher.ckpt.config.get("architectures") or []),
                "task": self.task, "labels": self.labels, "layers": plan.teacher.layers,
                "hidden_size": plan.teacher.hidden_size,
                "parameters": students.parameter_count(teacher.built.load_target),
                "weights": [{"file": w.name, "sha256": w.sha256} for w in teacher.ckpt.weights]},
            "student": {**plan.record(), "layers_kept": list(plan.init_layers),
                        "description": plan.describe(),
                        "parameters": students.parameter_count(self.student.load_target),
                        "frozen_frontend": self.frozen, "conv_refit": self.conv_fit,
                        "weights": None},
            "audio": {
                "folder": str(Path(o.audio).resolve()), "files": len(corpus.files),
                "seconds": round(corpus.seconds, 3), "skipped_files": len(corpus.skipped),
                "split": corpus.grouping, "holdout": o.holdout,
                "training": {"files": len(self.train_files), "seconds": seconds(self.train_files),
                             "speakers": speakers(self.train_files), "windows": self.clean_train,
                             "augmented_windows": int(len(train_idx) - self.clean_train)},
                "heldout": {"files": len(self.heldout_files),
                            "seconds": seconds(self.heldout_files),
                            "speakers": speakers(self.heldout_files),
                            "windows": int(len(held.windows))}},
            "windows": {"window_s": self.window_s, "hop_s": self.hop_s,
                        "silence_dbfs": pipeline.SILENCE_DBFS,
                        "preprocessing": teacher.prep.normalization_mode},
            "settings": {"steps": self.planned, "batch_size": o.batch_size, "lr": learning_rate(o),
                         "seed": o.seed,
                         "loss": ("front end only: MSE of the first layer's input / teacher "
                                  "mean square" if o.frontend_only else
                                  {"regression": "1 - CCC + MSE / teacher variance",
                                   "class-logits": f"KL at temperature {o.temperature:g}",
                                   "similarity": "1 - cosine of embeddings"}[self.kind]),
                         "frontend_only": o.frontend_only,
                         "temperature": o.temperature, "match_hidden": o.match_hidden,
                         "augment": o.augment, "time_budget_s": o.time_budget_s,
                         "max_windows": o.max_windows, "device": self.device.type,
                         "threads": torch.get_num_threads()},
            "training": {"steps_done": self.step, "stopped_by": self.stopped_by,
                         "wall_s": round(self.trained_s, 3),
                         "teacher_pass_s": round(self.teacher_pass_s, 3),
                         "loss_first": float(np.mean(losses[:20])) if losses else None,
                         "loss_last": float(np.mean(losses[-20:])) if losses else None,
                         "resumed": self.resumed is not None},
            "heldout": {**after, "before_training": self.before, "teacher_spread": self.spread},
            "min_ccc": o.min_ccc, "faithful": not failures, "failures": failures,
            "teacher_near_constant": self.spread["near_constant"],
            "tools": _versions(),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }

    def write_student(self, record: dict) -> None:
        from safetensors.torch import save_file

        self.progress.start("writing the student")
        state = {name: t.detach().cpu().contiguous().clone()
                 for name, t in self.student.load_target.state_dict().items()}
        teacher = self.teacher

        def write(directory: Path) -> None:
            save_file(state, str(directory / "model.safetensors"))
            record["student"]["weights"] = [{"file": "model.safetensors",
                                            "sha256": _sha256(directory / "model.safetensors")}]
            config = dict(self.student_config)
            config[students.RECORD_KEY] = record
            (directory / "config.json").write_text(json.dumps(config, indent=2, allow_nan=False),
                                                   encoding="utf-8")
            prep_file = Path(teacher.source.directory) / preprocessing.CONFIG_FILE
            if prep_file.is_file():
                shutil.copyfile(prep_file, directory / preprocessing.CONFIG_FILE)
            else:  # what the teacher's feature extractor does by default, stated
                (directory / preprocessing.CONFIG_FILE).write_text(json.dumps({
                    "do_normalize": teacher.prep.do_normalize,
                    "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                    "padding_side": "right", "padding_value": 0.0,
                    "return_attention_mask": True, "sampling_rate": fe.TARGET_RATE_HZ},
                    indent=2))

        _publish_student(self.out, self.o.overwrite, write)
        shutil.rmtree(work_dir(self.out), ignore_errors=True)


def distill(options: DistillOptions, progress: Progress | None = None) -> DistillResult:
    """Distil a student; DistillError (one sentence) for bad inputs, DistillInterrupted when
    Ctrl-C stopped it (the last checkpoint kept)."""
    _check_options(options)
    run = _Run(options, progress or DistillProgress())
    run.check_destination()
    run.load_teacher_and_plan()
    run.scan_audio()
    run.check_resume()
    run.build_student()
    with _StopFlag(run.progress) as stop:
        run.teacher_pass(stop)
        run.train(stop)
        run.progress.start("held-out fidelity after training", total=len(run.heldout.windows))
        after = run.evaluate()
        failures = distill_eval.verdict(after, options.min_ccc)
        if failures:
            run.warn(f"the student is not faithful to its teacher on held-out audio "
                     f"({'; '.join(failures)}); it is written marked unfaithful.")
        record = run.record(after, failures)
        run.write_student(record)
    return DistillResult(run.out, record, not failures, tuple(run.warnings), run.heldout)


def heldout(options: DistillOptions, progress: Progress | None = None) -> HeldOut:
    """The held-out windows of these options and the teacher's outputs on them, from the teacher
    cache (computing what is missing), without training: to judge a student written earlier on
    the audio its run held out."""
    _check_options(options)
    run = _Run(options, progress or DistillProgress())
    run.load_teacher_and_plan()
    run.scan_audio()
    run.build_student()
    run.teacher_pass(lambda: False)
    return run.heldout


__all__ = ["DistillOptions", "DistillResult", "DistillError", "DistillInterrupted",
           "DistillProgress", "HeldOut", "distill", "heldout", "parse_duration", "work_dir",
           "default_cache_root"]
