"""The torch modules that are exported: each maps normalised 16 kHz samples to
``(logits, embedding)``, the bundle's ONNX contract."""

from __future__ import annotations

import torch
from torch import nn


class RegressionHead(nn.Module):
    """audeering's head: dense -> tanh -> out_proj (its dropouts are inactive at inference)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.tanh(self.dense(pooled)))


class DimensionalModel(nn.Module):
    """audeering's Wav2Vec2ForSpeechClassification: head on the plain time-mean of the last
    layer (no mask), returning the pooled vector as the embedding. Attribute names equal the
    checkpoint's key prefixes, so its state dict loads one to one."""

    def __init__(self, backbone_attr: str, backbone: nn.Module, num_labels: int):
        super().__init__()
        self.backbone_attr = backbone_attr
        setattr(self, backbone_attr, backbone)
        self.classifier = RegressionHead(backbone.config.hidden_size, num_labels)

    def forward(self, input_values: torch.Tensor):
        hidden = getattr(self, self.backbone_attr)(input_values).last_hidden_state
        pooled = hidden.mean(dim=1)
        return self.classifier(pooled), pooled


class SequenceClassifier(nn.Module):
    """transformers' *ForSequenceClassification, unchanged, with its pooled vector exposed.

    Recomputes its forward (projector -> mean over time -> classifier, as transformers does
    without an attention mask) so the pooled vector is an output too; a test checks the logits
    against transformers' own forward."""

    def __init__(self, model: nn.Module, backbone_attr: str):
        super().__init__()
        self.model = model
        self.backbone_attr = backbone_attr

    def forward(self, input_values: torch.Tensor):
        m = self.model
        weighted = getattr(m.config, "use_weighted_layer_sum", False)
        out = getattr(m, self.backbone_attr)(input_values, output_hidden_states=weighted)
        if weighted:
            stacked = torch.stack(out.hidden_states, dim=1)
            weights = nn.functional.softmax(m.layer_weights, dim=-1)
            hidden = (stacked * weights.view(-1, 1, 1)).sum(dim=1)
        else:
            hidden = out.last_hidden_state
        pooled = m.projector(hidden).mean(dim=1)
        return m.classifier(pooled), pooled


class EmbeddingModel(nn.Module):
    """A contrastive embedding model: backbone, time-mean, optional linear projection; scored by
    cosine similarity to per-class prototypes (set after they are computed)."""

    def __init__(self, backbone_attr: str, backbone: nn.Module, projection: nn.Linear | None):
        super().__init__()
        self.backbone_attr = backbone_attr
        setattr(self, backbone_attr, backbone)
        self.projection = projection
        self.register_buffer("prototypes", torch.zeros(0), persistent=False)

    def embed(self, input_values: torch.Tensor) -> torch.Tensor:
        pooled = getattr(self, self.backbone_attr)(input_values).last_hidden_state.mean(dim=1)
        return self.projection(pooled) if self.projection is not None else pooled

    def forward(self, input_values: torch.Tensor):
        embedding = self.embed(input_values)
        unit = embedding / embedding.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return unit @ self.prototypes.t(), embedding
