"""Loading checkpoint weights into the built module: every checkpoint weight consumed, every
module weight provided, shapes equal; otherwise an error naming the keys."""

from __future__ import annotations

import re

from edgeser.errors import ExportError

# Parameters only training uses: a checkpoint saved without them is complete for inference.
_TRAINING_ONLY = re.compile(r"(^|\.)masked_spec_embed$")
_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")
_SHOWN_KEYS = 6


def _names(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = len(keys) - _SHOWN_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def _dropped_layer(key: str, layers_kept: int | None) -> bool:
    match = _LAYER.search(key)
    return layers_kept is not None and match is not None and int(match.group(1)) >= layers_kept


def load(built, state_dict: dict, label: str, *, layers_kept: int | None = None) -> None:
    """Copy ``state_dict`` into ``built.load_target`` or raise ExportError naming bad keys.

    With ``layers_kept`` (pruning), weights of the dropped layers are the only ones allowed to
    go unused."""
    target = built.load_target
    expected = target.state_dict()
    provided = {built.key_map(k): v for k, v in state_dict.items()}
    unused = [k for k in provided if k not in expected and not _dropped_layer(k, layers_kept)]
    missing = [k for k in expected if k not in provided and not _TRAINING_ONLY.search(k)]
    mismatched = [
        f"{k} {tuple(provided[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected if k in provided and provided[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing ({_names(missing)})")
    if unused:
        problems.append(f"{len(unused)} checkpoint weights unused ({_names(unused)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ ({_names(mismatched)})")
    if problems:
        raise ExportError(
            f"{label}: the checkpoint does not match its {built.family} architecture: "
            + "; ".join(problems) + "."
        )
    target.load_state_dict({k: v for k, v in provided.items() if k in expected}, strict=False)
    target.eval()
    built.module.eval()
