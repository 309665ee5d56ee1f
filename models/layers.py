"""Small building blocks shared by the model families."""
from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (`relu` or `gelu`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
