"""ONNX export with one pinned exporter: torch.onnx's TorchScript-based path (``dynamo=False``).

It traces wav2vec2's weight-normed positional conv correctly once the weight norm is folded into
a plain weight, and emits opset 17 with dynamic batch and time axes. (The dynamo exporter needs
onnxscript and has changed between torch releases; one exporter keeps bundles reproducible.)
"""

from __future__ import annotations

from pathlib import Path

from edgeser.errors import ExportError
from edgeser.contract import EMBEDDING_NAME, INPUT_NAME, LOGITS_NAME, OPSET, OUTPUT_NAMES, SAMPLE_RATE_HZ


def fold_weight_norm(module) -> int:
    """Replace every weight-norm parametrisation by its computed weight; returns how many."""
    from torch.nn.utils import parametrize

    folded = 0
    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
            folded += 1
    return folded


def export(module, path: Path) -> None:
    """Write ``module`` (forward(input_values) -> (logits, embedding)) to ``path``."""
    import warnings

    import onnx
    import torch

    fold_weight_norm(module)
    example = torch.zeros(1, SAMPLE_RATE_HZ)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python values
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch", 1: "samples"}, LOGITS_NAME: {0: "batch"},
                          EMBEDDING_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph fails ONNX validation ({err}).") from None
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != OPSET:
        raise ExportError(f"the exporter wrote opset {opsets}, not {OPSET}.")
