"""Students for distillation: the teacher's own architecture, smaller, initialised from the teacher.

A student keeps the teacher's family, head and checkpoint layout (so ``edgeser export`` takes it
unchanged) with fewer transformer layers, each initialised from a chosen teacher layer, and
optionally a narrower FFN, residual stream (hidden size) and conv front end. Narrowed matrices
are initialised by keeping the teacher's most important rows and columns (by weight magnitude),
never at random, so an untrained student is the teacher pruned, not noise:

- layers: student layer i is teacher layer ``layers[i]`` (default evenly spaced over the teacher);
- FFN: per layer, the intermediate neurons with the largest ``|fc1 row| * |fc2 column|``;
- hidden size: the residual dimensions most read and written by the kept layers, the same offsets
  in every positional-conv group (so the grouped positional conv slices exactly); attention keeps
  the most important heads of the teacher's head size (and, below one head, the most important
  dimensions of one head, with the query rescaled for the smaller head);
- conv front end: per conv layer, the filters of largest norm (``--conv-dim`` for every layer, or
  a list for the first layers); after training windows are cut, each conv layer whose input was
  narrowed is refitted by least squares to what the teacher's layer computes on them
  (:func:`reconstruct_conv`), since slicing alone leaves the next layer without the dropped
  channels' input;
- positional conv: a shorter kernel keeps the teacher's centre taps (same alignment: output frame
  t still reads the taps around t), so it starts as the teacher's convolution with its far taps
  dropped.

The ``tiny`` preset is for the smallest devices: 2 layers, hidden min(256, H/2), FFN 4x hidden,
conv front end min(256, C/2) channels. For the reference architecture (wav2vec2-large-robust,
12 layers, hidden 1024, conv 512) that is 3.3 M parameters (12.6 MiB FP32) against the
teacher's 165 M; a 4-layer student of it has 64.6 M (``benchmarks/distill.py`` measures their
INT8 bundles and speed).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass

from edgeser.errors import ExportError

PRESETS = ("tiny",)
TINY_LAYERS = 2
TINY_MAX_HIDDEN = 256
TINY_MAX_CONV = 256
RECORD_KEY = "edgeser_distillation"  # the distillation record in a student's config.json


@dataclass(frozen=True)
class Shape:
    """The sizes of a wav2vec2 / HuBERT backbone that a student may reduce."""

    layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: tuple
    pos_conv_groups: int
    pos_conv_kernel: int = 128

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class StudentPlan:
    """What the student is: its shape, which teacher layer initialises each of its layers, and
    the preset it came from (None when sized by options alone)."""

    shape: Shape
    init_layers: tuple
    preset: str | None
    teacher: Shape

    @property
    def keeps_conv(self) -> bool:
        """The student's conv front end is the teacher's (same widths): it can stay frozen."""
        return tuple(self.shape.conv_dim) == tuple(self.teacher.conv_dim)

    @property
    def keeps_encoder(self) -> bool:
        """The student's transformer is the teacher's size (layers, widths): only the front end
        (conv, projection, positional conv) differs."""
        s, t = self.shape, self.teacher
        return ((s.layers, s.hidden_size, s.num_attention_heads, s.intermediate_size)
                == (t.layers, t.hidden_size, t.num_attention_heads, t.intermediate_size))

    def describe(self) -> str:
        s, t = self.shape, self.teacher
        kept = ",".join(map(str, self.init_layers))
        parts = [f"{s.layers} of {t.layers} layers (teacher layers {kept})"]
        if s.hidden_size != t.hidden_size:
            parts.append(f"hidden {s.hidden_size} of {t.hidden_size}")
        if s.intermediate_size != t.intermediate_size:
            parts.append(f"FFN {s.intermediate_size} of {t.intermediate_size}")
        if not self.keeps_conv:
            widths = (str(s.conv_dim[0]) if len(set(s.conv_dim)) == 1
                      else ",".join(map(str, s.conv_dim)))
            parts.append(f"conv {widths} of {max(t.conv_dim)} channels")
        if s.pos_conv_kernel != t.pos_conv_kernel:
            parts.append(f"positional conv {s.pos_conv_kernel} of {t.pos_conv_kernel} taps")
        return (f"{self.preset} preset: " if self.preset else "") + ", ".join(parts)

    def record(self) -> dict:
        shape = asdict(self.shape)
        shape["conv_dim"] = list(self.shape.conv_dim)
        return {"preset": self.preset, "init_layers": list(self.init_layers), **shape}


def backbone_shape(backbone_config) -> Shape:
    """The :class:`Shape` of a transformers wav2vec2 / HuBERT config object."""
    c = backbone_config
    return Shape(int(c.num_hidden_layers), int(c.hidden_size), int(c.num_attention_heads),
                 int(c.intermediate_size), tuple(int(x) for x in c.conv_dim),
                 int(c.num_conv_pos_embedding_groups), int(c.num_conv_pos_embeddings))


def evenly_spaced(count: int, total: int) -> tuple:
    """``count`` teacher layer indices spread evenly over ``total`` (first and last included)."""
    if count == 1:
        return (total - 1,)
    return tuple(int(round(i * (total - 1) / (count - 1))) for i in range(count))


def parse_layers(text: str) -> tuple:
    """``"0,4,8,11"`` -> (0, 4, 8, 11); ExportError for anything else."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ExportError(f"--init-layers {text!r} is not a comma-separated list of layer numbers, "
                          "e.g. 0,4,8,11.") from None
    return values


def parse_widths(text: str):
    """``"256"`` -> 256; ``"256,256,256"`` -> (256, 256, 256); ExportError for anything else."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ExportError(f"--conv-dim {text!r} is not a width or a comma-separated list of "
                          "widths, e.g. 256 or 256,256,256.") from None
    return values[0] if len(values) == 1 else values


def _heads_for(hidden: int, teacher: Shape, what: str) -> int:
    head = teacher.head_size
    if hidden % teacher.pos_conv_groups:
        raise ExportError(f"{what} {hidden} must be a multiple of {teacher.pos_conv_groups}, the "
                          "teacher's positional-conv groups.")
    if hidden <= head:
        return 1
    if hidden % head:
        raise ExportError(f"{what} {hidden} must be a multiple of {head}, the teacher's attention "
                          "head size (or at most one head).")
    return hidden // head


def plan(teacher: Shape, *, layers: int | None = None, init_layers: tuple | None = None,
         ffn_dim: int | None = None, hidden_size: int | None = None,
         conv_dim: int | tuple | None = None, pos_conv_kernel: int | None = None,
         preset: str | None = None) -> StudentPlan:
    """The student for these options; one-sentence ExportError for a student that cannot be
    made from this teacher (larger than it, not smaller, layers out of range, odd sizes)."""
    if preset is not None and preset not in PRESETS:
        raise ExportError(f"--student {preset!r} is not a preset; the preset is tiny "
                          "(or size the student with --student-layers, --ffn-dim, --hidden-size).")
    if preset == "tiny":
        hidden_default = min(TINY_MAX_HIDDEN, teacher.hidden_size // 2)
        hidden_default -= hidden_default % teacher.pos_conv_groups
        hidden_size = hidden_size if hidden_size is not None else max(teacher.pos_conv_groups,
                                                                      hidden_default)
        layers = layers if layers is not None else (len(init_layers) if init_layers
                                                    else min(TINY_LAYERS, teacher.layers))
        ffn_dim = ffn_dim if ffn_dim is not None else min(teacher.intermediate_size, 4 * hidden_size)
        conv_dim = conv_dim if conv_dim is not None else max(1, min(TINY_MAX_CONV,
                                                                   max(teacher.conv_dim) // 2))
    if layers is None:
        layers = len(init_layers) if init_layers else max(1, round(teacher.layers / 3))
    hidden = hidden_size if hidden_size is not None else teacher.hidden_size
    ffn = ffn_dim if ffn_dim is not None else teacher.intermediate_size
    if conv_dim is None:
        conv = teacher.conv_dim
    elif isinstance(conv_dim, int):  # every conv layer
        conv = tuple(min(c, conv_dim) for c in teacher.conv_dim)
    else:  # the first layers, the rest kept
        if len(conv_dim) > len(teacher.conv_dim):
            raise ExportError(f"--conv-dim names {len(conv_dim)} conv layers; the teacher has "
                              f"{len(teacher.conv_dim)}.")
        conv = tuple(conv_dim) + tuple(teacher.conv_dim[len(conv_dim):])
    kernel = pos_conv_kernel if pos_conv_kernel is not None else teacher.pos_conv_kernel
    for name, value in (("--student-layers", layers), ("--hidden-size", hidden),
                        ("--ffn-dim", ffn), ("--conv-dim", min(conv)),
                        ("--pos-conv-kernel", kernel)):
        if value < 1:
            raise ExportError(f"{name} must be at least 1, not {value}.")
    larger = [f"{name} {mine} > {theirs}" for name, mine, theirs in (
        ("layers", layers, teacher.layers), ("hidden size", hidden, teacher.hidden_size),
        ("FFN", ffn, teacher.intermediate_size),
        ("conv channels", conv_dim if isinstance(conv_dim, int) else max(conv),
         max(teacher.conv_dim)),
        ("positional conv taps", kernel, teacher.pos_conv_kernel)) if mine > theirs]
    if larger:
        raise ExportError(f"the student is larger than the teacher ({'; '.join(larger)}).")
    if init_layers is None:
        init_layers = evenly_spaced(layers, teacher.layers)
    init_layers = tuple(init_layers)
    if len(init_layers) != layers:
        raise ExportError(f"--init-layers names {len(init_layers)} teacher layers for a student of "
                          f"{layers} layers.")
    if any(not 0 <= i < teacher.layers for i in init_layers):
        raise ExportError(f"--init-layers {','.join(map(str, init_layers))}: the teacher's layers "
                          f"are 0..{teacher.layers - 1}.")
    if list(init_layers) != sorted(set(init_layers)):
        raise ExportError(f"--init-layers {','.join(map(str, init_layers))} must be distinct and "
                          "in increasing order.")
    heads = teacher.num_attention_heads if hidden == teacher.hidden_size else _heads_for(
        hidden, teacher, "--hidden-size")
    shape = Shape(layers, hidden, heads, ffn, conv, teacher.pos_conv_groups, kernel)
    if shape == teacher:
        raise ExportError(f"the student is not smaller than the teacher ({teacher.layers} layers, "
                          "same widths); choose fewer --student-layers or a narrower student.")
    return StudentPlan(shape, init_layers, preset, teacher)


def student_config(teacher_config: dict, student: StudentPlan) -> dict:
    """The student's config.json: the teacher's, with the reduced sizes (no record yet)."""
    config = copy.deepcopy(teacher_config)
    config.pop(RECORD_KEY, None)
    s = student.shape
    config.update(num_hidden_layers=s.layers, hidden_size=s.hidden_size,
                  num_attention_heads=s.num_attention_heads, intermediate_size=s.intermediate_size,
                  conv_dim=list(s.conv_dim), num_conv_pos_embeddings=s.pos_conv_kernel)
    return config


# ---------------------------------------------------------------------------------------------
# Initialisation from the teacher's weights


def _top(scores, count: int):
    """Indices of the ``count`` largest scores, in increasing index order."""
    import torch

    if count >= scores.numel():
        return torch.arange(scores.numel())
    return torch.sort(torch.topk(scores, count).indices).values


@dataclass
class _Selection:
    conv: list  # per conv layer, kept output channels
    residual: object  # kept residual dims (R)
    group_offsets: object  # kept offsets inside each positional-conv group (J)
    attention: list  # per student layer, kept attention dims
    ffn: list  # per student layer, kept FFN neurons
    query_scale: float


def _select(t: dict, prefix: str, student: StudentPlan) -> _Selection:
    import torch

    s, tt = student.shape, student.teacher

    def w(name):
        return t[f"{prefix}.{name}"].detach().float()

    conv = []
    for index, width in enumerate(s.conv_dim):
        weight = w(f"feature_extractor.conv_layers.{index}.conv.weight")
        conv.append(_top(weight.flatten(1).norm(dim=1), width))

    groups = tt.pos_conv_groups
    per_group = tt.hidden_size // groups
    importance = torch.zeros(tt.hidden_size)
    for layer in student.init_layers:
        base = f"encoder.layers.{layer}."
        for m in ("q_proj", "k_proj", "v_proj"):
            importance += w(base + f"attention.{m}.weight").abs().sum(0)
        importance += w(base + "attention.out_proj.weight").abs().sum(1)
        importance += w(base + "feed_forward.intermediate_dense.weight").abs().sum(0)
        importance += w(base + "feed_forward.output_dense.weight").abs().sum(1)
    offsets = _top(importance.view(groups, per_group).sum(0), s.hidden_size // groups)
    residual = (torch.arange(groups)[:, None] * per_group + offsets[None, :]).flatten()

    head, heads_kept = tt.head_size, s.num_attention_heads
    head_kept = s.hidden_size // heads_kept
    attention, ffn = [], []
    for layer in student.init_layers:
        base = f"encoder.layers.{layer}."
        q, k, v = (w(base + f"attention.{m}_proj.weight").abs() for m in "qkv")
        out = w(base + "attention.out_proj.weight").abs()
        per_dim = q.sum(1) + k.sum(1) + v.sum(1) + out.sum(0)  # [hidden]
        chosen_heads = _top(per_dim.view(tt.num_attention_heads, head).sum(1), heads_kept)
        dims = [h * head + _top(per_dim[h * head:(h + 1) * head], head_kept)
                for h in chosen_heads.tolist()]
        attention.append(torch.cat(dims))
        fc1 = w(base + "feed_forward.intermediate_dense.weight")
        fc2 = w(base + "feed_forward.output_dense.weight")
        ffn.append(_top(fc1.norm(dim=1) * fc2.norm(dim=0), s.intermediate_size))
    return _Selection(conv, residual, offsets, attention, ffn, math.sqrt(head_kept / head))


def residual_dims(teacher_state: dict, prefix: str, student: StudentPlan):
    """The teacher's residual dimensions a narrowed student keeps (its hidden size's worth)."""
    return _select(teacher_state, prefix, student).residual


_LAYER_KEY = re.compile(r"^(?P<pre>.*\.encoder\.layers\.)(?P<i>\d+)(?P<post>\..*)$")
_CONV_KEY = re.compile(r"\.feature_extractor\.conv_layers\.(\d+)\.")


def _index(tensor, dims: dict):
    """``tensor`` restricted along each axis in ``dims`` (axis -> indices)."""
    for axis, indices in dims.items():
        if indices is not None:
            tensor = tensor.index_select(axis, indices)
    return tensor


def initialise(teacher_state: dict, student_target, prefix: str, student: StudentPlan,
               head_family: str) -> None:
    """Fill ``student_target`` (the student's module, checkpoint key names) from the teacher's
    state dict (same key names, teacher sizes), as described in the module docstring."""
    import torch

    sel = _select(teacher_state, prefix, student)
    s = student.shape
    expected = student_target.state_dict()
    full_conv = student.keeps_conv
    out_conv = None if full_conv else sel.conv
    R = None if s.hidden_size == student.teacher.hidden_size else sel.residual
    values = {}
    head_rows = None
    if head_family == "audeering-dimensional" and R is not None:
        out_proj = teacher_state["classifier.out_proj.weight"].float().abs().sum(0)
        dense = teacher_state["classifier.dense.weight"].float().norm(dim=1)
        head_rows = _top(out_proj + 1e-6 * dense / (dense.max() + 1e-12), s.hidden_size)
    for key, target in expected.items():
        source_key, layer = key, None
        match = _LAYER_KEY.match(key)
        if match:
            layer = int(match["i"])
            source_key = f"{match['pre']}{student.init_layers[layer]}{match['post']}"
        local = key[len(prefix) + 1:] if key.startswith(prefix + ".") else key
        if local == "projection.weight" and source_key not in teacher_state:
            # an embedding teacher without projection, narrowed: embed into the teacher's space
            value = torch.zeros(target.shape)
            value[sel.residual, torch.arange(s.hidden_size)] = 1.0
            values[key] = value
            continue
        if local == "projection.bias" and source_key not in teacher_state:
            values[key] = torch.zeros(target.shape)
            continue
        value = teacher_state[source_key].detach().float()
        conv = _CONV_KEY.search(key)
        if local == "layer_weights":
            value = value[torch.tensor([0] + [i + 1 for i in student.init_layers])]
        elif conv:
            index = int(conv.group(1))
            if out_conv is not None:
                rows = out_conv[index]
                cols = out_conv[index - 1] if index > 0 else None
                value = _index(value, {0: rows, 1: cols} if value.dim() == 3 else {0: rows})
        elif local.startswith("feature_projection.layer_norm."):
            value = _index(value, {0: None if out_conv is None else out_conv[-1]})
        elif local == "feature_projection.projection.weight":
            value = _index(value, {0: R, 1: None if out_conv is None else out_conv[-1]})
        elif local in ("feature_projection.projection.bias", "masked_spec_embed",
                       "encoder.pos_conv_embed.conv.bias") or local.startswith("encoder.layer_norm."):
            value = _index(value, {0: R})
        elif local.startswith("encoder.pos_conv_embed.conv.parametrizations.weight.original"):
            base = f"{prefix}.encoder.pos_conv_embed.conv.parametrizations.weight."
            effective = torch._weight_norm(teacher_state[base + "original1"].float(),
                                           teacher_state[base + "original0"].float(), 2)
            effective = _index(effective, {0: R, 1: None if R is None else sel.group_offsets})
            taps = s.pos_conv_kernel
            first = student.teacher.pos_conv_kernel // 2 - taps // 2  # the centre taps
            effective = effective[:, :, first:first + taps]
            # weight norm over dims 0 and 1 (dim=2): g = |W| per tap, v = W gives W exactly
            value = (effective if local.endswith("original1")
                     else effective.norm(dim=(0, 1), keepdim=True))
        elif match:
            a = None if (s.hidden_size == student.teacher.hidden_size) else sel.attention[layer]
            f = (None if s.intermediate_size == student.teacher.intermediate_size
                 else sel.ffn[layer])
            post = match["post"][1:]
            if re.match(r"attention\.[qkv]_proj\.weight$", post):
                value = _index(value, {0: a, 1: R})
            elif re.match(r"attention\.[qkv]_proj\.bias$", post):
                value = _index(value, {0: a})
            elif post == "attention.out_proj.weight":
                value = _index(value, {0: R, 1: a})
            elif post == "feed_forward.intermediate_dense.weight":
                value = _index(value, {0: f, 1: R})
            elif post == "feed_forward.intermediate_dense.bias":
                value = _index(value, {0: f})
            elif post == "feed_forward.output_dense.weight":
                value = _index(value, {0: R, 1: f})
            else:  # biases and layer norms of the residual stream
                value = _index(value, {0: R})
            if post.startswith("attention.q_proj") and a is not None and sel.query_scale != 1.0:
                value = value * sel.query_scale
        elif local == "classifier.dense.weight" and head_family == "audeering-dimensional":
            value = _index(value, {0: head_rows, 1: R})
        elif local == "classifier.dense.bias" and head_family == "audeering-dimensional":
            value = _index(value, {0: head_rows})
        elif local == "classifier.out_proj.weight" and head_family == "audeering-dimensional":
            value = _index(value, {1: head_rows})
        elif local in ("projector.weight", "projection.weight"):
            value = _index(value, {1: R})
        if tuple(value.shape) != tuple(target.shape):  # pragma: no cover - a family not covered
            raise ExportError(f"cannot initialise the student's {key}: the teacher's "
                              f"{tuple(value.shape)} does not reduce to {tuple(target.shape)}.")
        values[key] = value.to(target.dtype)
    student_target.load_state_dict(values, strict=True)


def conv_kept(teacher_state: dict, prefix: str, student: StudentPlan) -> list:
    """Per conv layer, the teacher's output channels the student keeps."""
    return _select(teacher_state, prefix, student).conv


def _patches(x, kernel: int, stride: int):
    """``[batch, channels, time]`` -> ``[batch * frames, channels * kernel]`` (conv1d's view)."""
    p = x.unfold(2, kernel, stride)  # [batch, channels, frames, kernel]
    return p.permute(0, 2, 1, 3).reshape(-1, p.shape[1] * kernel)


def reconstruct_conv(teacher_layers, student_layers, windows, kept: list,
                     ridge: float = 1e-4) -> list:
    """Refit the student's conv layers after its first narrowed one, layer by layer, so each
    reproduces on ``windows`` (``[batch, samples]``, prepared) what the teacher's layer computes
    before its activation, on the channels the student keeps: the per-frame normalised conv
    output where the layer has a layer norm (the student's norm over fewer channels then gives
    nearly the same values), the conv output otherwise. Least squares over the conv's input
    patches, taken from the student's own (already refitted) layers, so errors upstream are
    compensated downstream. Slicing alone leaves a narrowed stack far from the teacher (the next
    layer loses the dropped channels' input); this is channel pruning with reconstruction.
    Returns the relative residual per refitted layer."""
    import torch

    residuals = []
    with torch.no_grad():
        x_t = windows[:, None, :]
        x_s = x_t
        for index, (t_layer, s_layer) in enumerate(zip(teacher_layers, student_layers)):
            t_conv, s_conv = t_layer.conv, s_layer.conv
            if s_conv.in_channels != t_conv.in_channels:
                target = t_conv(x_t)  # [batch, channels, frames]
                norm = getattr(t_layer, "layer_norm", None)
                if norm is not None:
                    mean = target.mean(1, keepdim=True)
                    var = target.var(1, unbiased=False, keepdim=True)
                    target = (target - mean) / torch.sqrt(var + norm.eps)
                target = target[:, kept[index], :].transpose(1, 2).reshape(-1, len(kept[index]))
                k, stride = s_conv.kernel_size[0], s_conv.stride[0]
                patches = _patches(x_s, k, stride).double()
                ones = torch.ones(patches.shape[0], 1, dtype=patches.dtype)
                design = torch.cat([patches, ones], 1) if s_conv.bias is not None else patches
                gram = design.T @ design
                gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
                solution = torch.linalg.solve(gram, design.T @ target.double())
                fitted = design @ solution
                residuals.append(float(((fitted - target) ** 2).mean() / (target ** 2).mean()))
                w = solution[:patches.shape[1]].T.reshape(s_conv.out_channels, s_conv.in_channels, k)
                s_conv.weight.copy_(w.to(s_conv.weight.dtype))
                if s_conv.bias is not None:
                    s_conv.bias.copy_(solution[-1].to(s_conv.bias.dtype))
            x_t, x_s = t_layer(x_t), s_layer(x_s)
    return residuals


def parameter_count(module) -> int:
    return int(sum(p.numel() for p in module.state_dict().values()))
