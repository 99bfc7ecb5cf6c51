"""Tiny checkpoints faithful to the families users bring: the published configs' shape (conv
stack with 320-sample stride, stable layer norm, weight-normed positional conv) at small sizes,
saved as transformers or audeering save them, so exports run through the real loading code."""

from __future__ import annotations

import json
import os
from pathlib import Path

# shared/reference sits beside shared/data (EDGESER_TEST_DATA), default ../shared beside the checkout
_SHARED = (Path(os.environ["EDGESER_TEST_DATA"]).parent if os.environ.get("EDGESER_TEST_DATA")
           else Path(__file__).resolve().parents[1].parent / "shared")
REFERENCE_CONFIG = _SHARED / "reference" / "audeering-msp-dim" / "config.json"

# The published audeering config (../shared/reference), shrunk.
AUDEERING_CONFIG = {
    "architectures": ["Wav2Vec2ForSpeechClassification"], "model_type": "wav2vec2",
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "hidden_act": "gelu", "do_stable_layer_norm": True, "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu", "conv_dim": [16] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": True, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
    "layer_norm_eps": 1e-05, "final_dropout": 0.1, "hidden_dropout": 0.1,
    "attention_dropout": 0.1, "activation_dropout": 0.1, "feat_proj_dropout": 0.1,
    "hidden_dropout_prob": 0.1,
    "layerdrop": 0.1, "apply_spec_augment": True, "mask_time_prob": 0.05, "mask_time_length": 10,
    "id2label": {"0": "arousal", "1": "dominance", "2": "valence"},
    "label2id": {"arousal": 0, "dominance": 1, "valence": 2},
    "pooling_mode": "mean", "problem_type": "regression", "finetuning_task": "wav2vec2_reg",
    "classifier_proj_size": 256, "use_weighted_layer_sum": False, "vocab_size": None,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    "transformers_version": "4.17.0.dev0",
}
PREPROCESSOR = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
                "return_attention_mask": True, "sampling_rate": 16000}


def _small_backbone(model_type: str = "wav2vec2", layers: int = 2, stable: bool = True) -> dict:
    cfg = {k: v for k, v in AUDEERING_CONFIG.items()
           if k not in ("architectures", "id2label", "label2id", "problem_type", "finetuning_task",
                        "pooling_mode", "classifier_proj_size")}
    cfg.update(model_type=model_type, num_hidden_layers=layers)
    if model_type == "hubert":  # HubertConfig (transformers 5) refuses vocab_size null
        cfg["vocab_size"] = 32
    if not stable:  # base-style: group-norm conv stack, post-LN encoder (HuBERT base, wav2vec2 base)
        cfg.update(do_stable_layer_norm=False, feat_extract_norm="group")
    return cfg


def _randomise(module, seed: int) -> None:
    """Non-trivial weights everywhere (fresh heads are small), so parity checks mean something."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def _save(directory: Path, config: dict, state: dict, *, fmt: str, weight_norm: str) -> Path:
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if weight_norm == "legacy":
        state = {k.replace(".parametrizations.weight.original0", ".weight_g")
                  .replace(".parametrizations.weight.original1", ".weight_v"): v
                 for k, v in state.items()}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    if fmt in ("safetensors", "both"):
        save_file(state, str(directory / "model.safetensors"))
    if fmt in ("bin", "both"):
        torch.save(state, str(directory / "pytorch_model.bin"))
    return directory


def audeering(directory: Path, *, fmt: str = "safetensors", weight_norm: str = "parametrizations",
              layers: int = 2, seed: int = 0, model_type: str = "wav2vec2") -> Path:
    """audeering's Wav2Vec2ForSpeechClassification layout (backbone under ``wav2vec2.``, head
    ``classifier.dense`` / ``classifier.out_proj``)."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    config = dict(AUDEERING_CONFIG, num_hidden_layers=layers, model_type=model_type)
    if model_type == "hubert":  # HubertConfig (transformers 5) refuses vocab_size null
        config["vocab_size"] = 32
    backbone_cfg = _small_backbone(model_type, layers)
    if model_type == "wav2vec2":
        backbone = Wav2Vec2Model(Wav2Vec2Config(**backbone_cfg))
    else:
        backbone = HubertModel(HubertConfig(**backbone_cfg))
        config["architectures"] = ["HubertForSpeechClassification"]
    head = torch.nn.ModuleDict({"dense": torch.nn.Linear(32, 32), "out_proj": torch.nn.Linear(32, 3)})
    _randomise(backbone, seed)
    _randomise(head, seed + 1)
    prefix = model_type
    state = {f"{prefix}.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"classifier.{k}": v for k, v in head.state_dict().items()})
    return _save(directory, config, state, fmt=fmt, weight_norm=weight_norm)


def sequence_classifier(directory: Path, labels: list, *, model_type: str = "wav2vec2",
                        layers: int = 2, stable: bool = True, fmt: str = "safetensors",
                        seed: int = 0, weighted_layer_sum: bool = False) -> Path:
    """transformers' *ForSequenceClassification saved with save_pretrained (``weighted_layer_sum``:
    the head reads a learned softmax-weighted sum of all hidden states, as SUPERB models do)."""
    from transformers import (HubertConfig, HubertForSequenceClassification, Wav2Vec2Config,
                              Wav2Vec2ForSequenceClassification)

    cfg = _small_backbone(model_type, layers, stable)
    cfg.update(id2label={str(i): label for i, label in enumerate(labels)},
               label2id={label: i for i, label in enumerate(labels)},
               classifier_proj_size=24, problem_type="single_label_classification")
    if weighted_layer_sum:
        cfg["use_weighted_layer_sum"] = True
    if model_type == "wav2vec2":
        model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**cfg))
    else:
        model = HubertForSequenceClassification(HubertConfig(**cfg))
    _randomise(model, seed)
    model.save_pretrained(str(directory), safe_serialization=(fmt == "safetensors"))
    if fmt == "bin" and not (directory / "pytorch_model.bin").exists():
        import torch
        torch.save(model.state_dict(), str(directory / "pytorch_model.bin"))
        for f in directory.glob("*.safetensors"):
            f.unlink()
    return directory


def embedding_model(directory: Path, *, projection: int = 8, seed: int = 0) -> Path:
    """A contrastive embedding model: wav2vec2 backbone plus a ``projection`` Linear."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = _small_backbone()
    backbone = Wav2Vec2Model(Wav2Vec2Config(**cfg))
    head = torch.nn.Linear(32, projection)
    _randomise(backbone, seed)
    _randomise(head, seed + 1)
    state = {f"wav2vec2.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"projection.{k}": v for k, v in head.state_dict().items()})
    config = dict(cfg, architectures=["Wav2Vec2Model"])
    return _save(directory, config, state, fmt="safetensors", weight_norm="parametrizations")


def hub_cache(hf_home: Path, model_id: str, source_dir: Path, *, commit: str = "a" * 40,
              revision: str = "main") -> Path:
    """Lay ``source_dir`` out as huggingface_hub's cache does: blobs named by sha256 (LFS) or
    git sha, snapshot symlinks, refs/<revision> -> commit."""
    import hashlib

    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in source_dir.iterdir():
        data = f.read_bytes()
        large = f.suffix in (".safetensors", ".bin")
        name = hashlib.sha256(data).hexdigest() if large else hashlib.sha1(data).hexdigest()
        blob = repo / "blobs" / name
        blob.write_bytes(data)
        link = snapshot / f.name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snapshot), link)
    return snapshot


def audeering_trained_like(directory: Path, seed: int = 0) -> Path:
    """An audeering-layout checkpoint whose outputs vary across speech the way a trained model's
    do: transformers' own initialisation for the backbone, and a head fitted to the backbone's
    three leading principal directions on generated speech. Random heads give outputs that
    barely vary between windows, where CCC measures noise; this one gives fidelity metrics
    meaning (used by the quantization tests)."""
    import numpy as np
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from edgeser.export import eval_audio

    torch.manual_seed(seed)
    backbone = Wav2Vec2Model(Wav2Vec2Config(**_small_backbone())).eval()
    windows = eval_audio.default(3.0, 1.0, 24, purpose="calibration").windows
    with torch.no_grad():
        pooled = torch.stack([backbone(torch.from_numpy(w)[None]).last_hidden_state.mean(1)[0]
                              for w in windows]).numpy().astype(np.float64)
    mean = pooled.mean(axis=0)
    _, singular, basis = np.linalg.svd(pooled - mean, full_matrices=False)
    spread = singular[:3] / np.sqrt(len(pooled))
    dense = np.zeros((32, 32))
    dense[:3] = 0.8 * basis[:3] / spread[:, None]  # unit-variance inputs to tanh
    out_proj = np.zeros((3, 32))
    out_proj[[0, 1, 2], [0, 1, 2]] = 0.2
    state = {f"wav2vec2.{k}": v for k, v in backbone.state_dict().items()}
    state.update({
        "classifier.dense.weight": torch.tensor(dense, dtype=torch.float32),
        "classifier.dense.bias": torch.tensor(-(dense @ mean), dtype=torch.float32),
        "classifier.out_proj.weight": torch.tensor(out_proj, dtype=torch.float32),
        "classifier.out_proj.bias": torch.full((3,), 0.5),
    })
    return _save(directory, dict(AUDEERING_CONFIG), state, fmt="safetensors",
                 weight_norm="parametrizations")
