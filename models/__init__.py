"""Model registry: `build_model(name, **kwargs)` for every network in this repository."""
from __future__ import annotations

from torch import nn

from models.cnn import ConvNet
from models.dnn import MLP
from models.resnet import ResNet
from models.rnn import RecurrentClassifier
from models.timm_net import TimmClassifier
from models.transformer import PretrainedClassifier, TransformerClassifier

MODELS: dict[str, type[nn.Module]] = {
    "cnn": ConvNet,
    "dnn": MLP,
    "resnet": ResNet,
    "rnn": RecurrentClassifier,
    "transformer": TransformerClassifier,
    "pretrained": PretrainedClassifier,
    "timm": TimmClassifier,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Construct the registered model `name` with `kwargs`; every model returns logits.

    Raises ValueError listing the valid names when `name` is unknown.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_groups(model: nn.Module, encoder_lr_scale: float = 1.0) -> list[dict]:
    """The trainable parameters in optimizer groups: those of `model.encoder` (if it has one) with
    their learning rate scaled by `encoder_lr_scale`, then all the others (the head) at full rate."""
    encoder = getattr(model, "encoder", None)
    encoder_ids = {id(p) for p in encoder.parameters()} if isinstance(encoder, nn.Module) else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in encoder_ids], "lr_scale": encoder_lr_scale},
              {"params": [p for p in trainable if id(p) not in encoder_ids], "lr_scale": 1.0}]
    return [group for group in groups if group["params"]]
