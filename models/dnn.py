"""A fully connected network with two hidden layers."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.layers import activation_layer


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> act -> (Dropout)] x 2 -> Linear (logits)."""

    def __init__(self, num_classes: int = 10, input_size: int | None = None, hidden_sizes: tuple[int, int] = (256, 128),
                 activation: str = "relu", batch_norm: bool = False, dropout: float = 0.0, in_channels: int = 1,
                 image_size: int | Sequence[int] = 28) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        input_size = input_size or in_channels * height * width  # the flattened image
        layers: list[nn.Module] = [nn.Flatten()]
        previous = input_size
        for width in hidden_sizes:
            layers.append(nn.Linear(previous, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers += [activation_layer(activation), nn.Dropout(dropout)]
            previous = width
        layers.append(nn.Linear(previous, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)  # (batch, num_classes)
