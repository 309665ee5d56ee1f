"""Small building blocks shared by the model families."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
POOLINGS = ("last", "cls", "mean", "max", "attention")


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (`relu` or `gelu`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def length_mask(lengths: torch.Tensor, max_length: int, device: torch.device) -> torch.Tensor:
    """(batch, max_length) bool: True where a position holds a real token, False on padding."""
    return torch.arange(max_length, device=device)[None, :] < lengths.to(device)[:, None]


class MaskedPooling(nn.Module):
    """Turn step outputs (batch, time, size) into one vector per sequence, ignoring padding.

    `mean` and `max` over the real steps; `attention` weighs the steps by their score against
    a learned query; `cls` takes the first step (a [CLS] position).
    """

    def __init__(self, how: str, size: int) -> None:
        super().__init__()
        if how not in ("cls", "mean", "max", "attention"):
            raise ValueError(f"unknown pooling {how!r}; choose from cls, mean, max, attention")
        self.how = how
        self.query = nn.Parameter(torch.randn(size) / size ** 0.5) if how == "attention" else None

    def forward(self, outputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, size) from (batch, time, size); `mask` (batch, time) is True on real steps (None: all are)."""
        if self.how == "cls":
            return outputs[:, 0]
        if self.how == "mean":
            if mask is None:  # no padding: a plain mean
                return outputs.mean(dim=1)
            summed = (outputs * mask[..., None]).sum(dim=1)
            return summed / mask.sum(dim=1, keepdim=True).to(outputs.dtype)
        if self.how == "max":
            return (outputs if mask is None else outputs.masked_fill(~mask[..., None], float("-inf"))).max(dim=1).values
        scores = outputs @ self.query.to(outputs.dtype)  # (batch, time)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return (weights[..., None] * outputs).sum(dim=1)
