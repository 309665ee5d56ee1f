"""Model registry: `build_model(name, **kwargs)` for every network in this repository."""
from __future__ import annotations

from torch import nn

from models.cnn import ConvNet
from models.dnn import MLP
from models.rnn import RecurrentClassifier

MODELS: dict[str, type[nn.Module]] = {
    "cnn": ConvNet,
    "dnn": MLP,
    "rnn": RecurrentClassifier,
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
