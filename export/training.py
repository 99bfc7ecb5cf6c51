"""Training a student on the teacher's outputs: the forward passes, the losses, the schedule and
the checkpoints.

Losses (what the bundle outputs decides):
- regression (audeering dimensional, sequence regression): per output ``1 - CCC`` over the batch
  plus the MSE divided by the teacher output's variance on the training audio, averaged;
- class logits (categorical, laughter): ``T^2 * KL(softmax(t/T) || softmax(s/T))``, temperature T;
- embedding models (prototypes): ``1 - cosine`` between student and teacher embeddings;
- front end only (``--frontend-only``): the MSE between what the student's and the teacher's
  front ends (conv, feature projection, positional conv) hand the first transformer layer,
  divided by the teacher's mean square; the transformer and head stay the teacher's;
- optional hidden-state matching (``--match-hidden W``): W times the MSE between each student
  layer's output and its teacher layer's (restricted to the student's residual dimensions when
  narrowed), divided by the teacher's mean square.

Each step draws its batch and seeds dropout from (seed, step) alone, and the learning rate is a
function of the step, so a run resumed from a checkpoint continues exactly as the uninterrupted
run would have (on the same machine and thread count). AdamW, linear warm-up over the first 5%
of steps, cosine decay to a tenth, gradients clipped to norm 1.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

WARMUP_FRACTION = 0.05
FINAL_LR_FRACTION = 0.1
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0


class _Reached(Exception):
    """Raised by a hook to stop a forward pass once the wanted tensor is captured."""


class _Injected(nn.Module):
    """Stands in for the conv front end: returns the conv features it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.value = None

    def forward(self, input_values):  # noqa: ARG002 - the features are already computed
        return self.value


class Net:
    """A teacher or student: the family's export module, runnable from prepared audio or from
    the conv front end's features (``[batch, frames, channels]``), optionally capturing the
    outputs of some transformer layers."""

    def __init__(self, built, prefix: str, device) -> None:
        self.built = built
        self.module = built.module
        self.backbone = getattr(built.load_target, prefix)
        self.device = device
        self.module.to(device)

    @property
    def conv(self):
        return self.backbone.feature_extractor

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).transpose(1, 2)

    @contextmanager
    def _capturing(self, layers):
        captured: dict = {}
        handles = []
        if layers:
            for index in layers:
                def hook(_module, _inputs, output, index=index):
                    captured[index] = output[0] if isinstance(output, tuple) else output
                handles.append(self.backbone.encoder.layers[index].register_forward_hook(hook))
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    def forward_audio(self, x: torch.Tensor, layers=None):
        with self._capturing(layers) as captured:
            if self.built.family == "embedding":  # prototypes come at export: no logits yet
                embedding = self.module.embed(x)
                logits = embedding.new_zeros(embedding.shape[0], 0)
            else:
                logits, embedding = self.module(x)
        return logits, embedding, [captured[i] for i in layers or ()]

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the front end (conv, feature projection, positional conv) hands the first
        transformer layer, ``[batch, frames, hidden]``; the transformer itself is not run."""
        captured = {}

        def hook(_module, args, kwargs):
            captured["x"] = args[0] if args else kwargs["hidden_states"]
            raise _Reached

        handle = self.backbone.encoder.layers[0].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            self.module(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        return captured["x"]

    def forward_features(self, features: torch.Tensor, layers=None):
        conv = self.backbone.feature_extractor
        injected = _Injected()
        injected.value = features.transpose(1, 2)
        self.backbone.feature_extractor = injected
        try:
            return self.forward_audio(features.new_zeros(features.shape[0], 1), layers)
        finally:
            self.backbone.feature_extractor = conv


# ---------------------------------------------------------------------------------------------
# Losses


def ccc(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CCC per column of ``[batch, outputs]`` tensors (population moments)."""
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0, unbiased=False), y.var(0, unbiased=False)
    cov = ((x - mx) * (y - my)).mean(0)
    return 2 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)


def output_loss(kind: str, student_logits, student_embedding, teacher_logits, teacher_embedding, *,
                temperature: float, target_var: torch.Tensor | None) -> torch.Tensor:
    if kind == "regression":
        loss = 1.0 - ccc(student_logits, teacher_logits)
        var = target_var if target_var is not None else teacher_logits.var(0, unbiased=False)
        loss = loss + ((student_logits - teacher_logits) ** 2).mean(0) / var.clamp_min(1e-8)
        return loss.mean()
    if kind == "class-logits":
        t = temperature
        target = torch.log_softmax(teacher_logits / t, dim=-1)
        log_student = torch.log_softmax(student_logits / t, dim=-1)
        kl = (target.exp() * (target - log_student)).sum(-1).mean()
        return kl * t * t
    cosine = nn.functional.cosine_similarity(student_embedding, teacher_embedding, dim=-1)
    return (1.0 - cosine).mean()


def frontend_loss(student_input: torch.Tensor, teacher_input: torch.Tensor) -> torch.Tensor:
    """MSE between the encoder inputs of student and teacher over the teacher's mean square."""
    scale = (teacher_input ** 2).mean().clamp_min(1e-8)
    return ((student_input - teacher_input) ** 2).mean() / scale


def hidden_loss(student_hidden: list, teacher_hidden: list, residual) -> torch.Tensor:
    total = 0.0
    for s, t in zip(student_hidden, teacher_hidden):
        if residual is not None:
            t = t.index_select(-1, residual.to(t.device))
        total = total + ((s - t) ** 2).mean() / (t ** 2).mean().clamp_min(1e-8)
    return total / max(1, len(student_hidden))


# ---------------------------------------------------------------------------------------------
# Schedule and sampling


def learning_rate(step: int, total: int, base: float) -> float:
    warmup = max(1, int(WARMUP_FRACTION * total))
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return base * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def batch_indices(seed: int, step: int, population: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([seed, step, 29])
    return np.sort(rng.choice(population, size=min(size, population), replace=False))


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 12345) % (2**63 - 1)


def by_length(arrays: list) -> dict:
    """Positions of ``arrays`` grouped by length (equal lengths batch together)."""
    groups: dict = {}
    for position, array in enumerate(arrays):
        groups.setdefault(len(array), []).append(position)
    return groups


def optimiser(parameters, lr: float):
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=WEIGHT_DECAY)
