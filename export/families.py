"""Model families edgeser exports: one small spec each, registered in FAMILIES.

A spec recognises a checkpoint from its config, builds the module to export (whose weights load
one to one from the checkpoint) and says what the outputs mean. Nothing is guessed silently:
an architecture no spec claims is an error, never a generic head with random weights.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Callable

from edgeser.errors import ExportError

BACKBONES = {"wav2vec2": "wav2vec2", "hubert": "hubert"}  # model_type -> state-dict prefix


@dataclass
class Built:
    """A module ready to load weights into and export, and what its outputs mean."""

    family: str
    module: object  # torch.nn.Module: forward(input_values) -> (logits, embedding)
    load_target: object  # the module whose state-dict keys equal the checkpoint's
    task: str
    labels: list
    logits_kind: str  # regression | class-logits | similarity
    logits_meaning: str
    embedding_size: int
    embedding_meaning: str
    key_map: Callable[[str], str] = staticmethod(lambda key: key)  # checkpoint key -> module key


@dataclass(frozen=True)
class Family:
    name: str
    architectures: tuple
    description: str
    build: Callable[[dict, str], Built]


def _backbone_config(config: dict):
    from transformers import HubertConfig, Wav2Vec2Config

    model_type = config.get("model_type")
    if model_type not in BACKBONES:
        raise ExportError(
            f"backbone model_type {model_type!r} is not supported; edgeser exports "
            f"{', '.join(sorted(BACKBONES))} (XLS-R is wav2vec2)."
        )
    cls = Wav2Vec2Config if model_type == "wav2vec2" else HubertConfig
    fields = {k: v for k, v in config.items() if k not in ("architectures", "auto_map")}
    try:
        cfg = cls(**fields)
    except Exception as err:  # ValueError, TypeError, huggingface_hub's StrictDataclassError
        detail = " ".join(str(err).split()) or type(err).__name__
        raise ExportError(f"config.json is not a valid {model_type} configuration ({detail}).") from None
    cfg._attn_implementation = "eager"  # traces to plain ONNX ops on every exporter
    return cfg


def _backbone(cfg):
    from transformers import HubertModel, Wav2Vec2Model

    return (Wav2Vec2Model if cfg.model_type == "wav2vec2" else HubertModel)(cfg)


def labels_of(config: dict, count: int) -> list:
    id2label = config.get("id2label") or {}
    try:
        labels = [str(id2label.get(str(i), id2label.get(i))) for i in range(count)]
    except AttributeError:
        labels = []
    if len(labels) != count or any(label == "None" for label in labels):
        return [f"LABEL_{i}" for i in range(count)]
    return labels


def _is_laughter(labels: list) -> bool:
    return len(labels) == 2 and any(re.search(r"laugh", label, re.I) for label in labels)


def _refuse_prototypes(task: str | None, head: str) -> None:
    if task == "emotion-prototypes":
        raise ExportError(
            f"emotion-prototypes needs an embedding model (architectures Wav2Vec2Model or "
            f"HubertModel); this checkpoint has {head}."
        )


def _build_dimensional(config: dict, task: str | None) -> Built:
    from edgeser.export.modules import DimensionalModel

    _refuse_prototypes(task, "a regression head")
    cfg = _backbone_config(config)
    count = int(config.get("num_labels") or len(config.get("id2label") or {}) or 3)
    labels = labels_of(config, count)
    prefix = BACKBONES[cfg.model_type]
    module = DimensionalModel(prefix, _backbone(cfg), count)
    return Built(
        family="audeering-dimensional", module=module, load_target=module,
        task=task or "emotion-dimensional", labels=labels, logits_kind="regression",
        logits_meaning="regression values in label order, roughly 0..1 (values outside occur)",
        embedding_size=cfg.hidden_size,
        embedding_meaning="mean over time of the last transformer layer",
    )


def _build_sequence(config: dict, task: str | None) -> Built:
    from transformers import HubertForSequenceClassification, Wav2Vec2ForSequenceClassification

    from edgeser.export.modules import SequenceClassifier

    _refuse_prototypes(task, "a sequence-classification head")
    cfg = _backbone_config(config)
    cls = (Wav2Vec2ForSequenceClassification if cfg.model_type == "wav2vec2"
           else HubertForSequenceClassification)
    model = cls(cfg)
    labels = labels_of(config, cfg.num_labels)
    regression = config.get("problem_type") == "regression"
    if task is None:
        task = ("emotion-dimensional" if regression
                else "laughter" if _is_laughter(labels) else "emotion-categorical")
    return Built(
        family="sequence-classification", module=SequenceClassifier(model, BACKBONES[cfg.model_type]),
        load_target=model, task=task, labels=labels,
        logits_kind="regression" if regression else "class-logits",
        logits_meaning=("regression values in label order" if regression
                        else "class logits in label order; the runtime applies softmax"),
        embedding_size=cfg.classifier_proj_size,
        embedding_meaning="mean over time of the projector output (the classifier's input)",
    )


def _build_embedding(config: dict, task: str | None) -> Built:
    from edgeser.export.modules import EmbeddingModel

    if task not in (None, "emotion-prototypes"):
        raise ExportError(f"an embedding model can only be exported as emotion-prototypes, not {task}.")
    cfg = _backbone_config(config)
    prefix = BACKBONES[cfg.model_type]
    size = int(config.get("projection_size") or 0)
    projection = None
    if size:
        from torch import nn

        projection = nn.Linear(cfg.hidden_size, size)
    module = EmbeddingModel(prefix, _backbone(cfg), projection)

    def key_map(key: str) -> str:
        # save_pretrained of a bare backbone writes keys without the prefix
        if key.startswith((prefix + ".", "projection.")):
            return key
        return f"{prefix}.{key}"

    return Built(
        family="embedding", module=module, load_target=module, task="emotion-prototypes",
        labels=[], logits_kind="similarity",
        logits_meaning="cosine similarity of the embedding to each class prototype",
        embedding_size=size or cfg.hidden_size,
        embedding_meaning=("linear projection of the time-mean of the last layer" if size
                           else "mean over time of the last transformer layer"),
        key_map=key_map,
    )


FAMILIES = (
    Family("audeering-dimensional",
           ("Wav2Vec2ForSpeechClassification", "HubertForSpeechClassification"),
           "audeering-style regression head (dense, tanh, out_proj) on the time-mean",
           _build_dimensional),
    Family("sequence-classification",
           ("Wav2Vec2ForSequenceClassification", "HubertForSequenceClassification"),
           "transformers' sequence classifiers (projector, time-mean, classifier)",
           _build_sequence),
    Family("embedding", ("Wav2Vec2Model", "HubertModel"),
           "embedding backbones, optional 'projection' Linear; needs --prototypes",
           _build_embedding),
)


def find(config: dict, label: str) -> Family:
    architectures = config.get("architectures") or []
    for family in FAMILIES:
        if any(a in family.architectures for a in architectures):
            return family
    known = ", ".join(a for f in FAMILIES for a in f.architectures)
    named = ", ".join(map(str, architectures)) or "none"
    raise ExportError(
        f"{label}: architecture {named} is not supported (edgeser exports {known})."
    )


def build(config: dict, label: str, *, task: str | None = None, layers: int | None = None,
          state_dict: dict | None = None):
    """(family, Built) for a checkpoint config, with the first ``layers`` layers kept."""
    config = copy.deepcopy(config)
    projection = (state_dict or {}).get("projection.weight")
    if projection is not None:
        config["projection_size"] = int(projection.shape[0])
    in_checkpoint = int(config.get("num_hidden_layers", 0))
    if layers is not None:
        if not 1 <= layers <= in_checkpoint:
            raise ExportError(
                f"{label}: --layers {layers} is outside 1..{in_checkpoint}, the checkpoint's layers."
            )
        config["num_hidden_layers"] = layers
    family = find(config, label)
    return family, family.build(config, task)
