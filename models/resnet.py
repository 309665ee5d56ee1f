"""A small pre-activation residual network for 28x28 grayscale images (ResNet-20 style)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import activation_layer


def blocks_per_stage(depth: int) -> int:
    """Residual blocks in each of the 3 stages of a network `depth` layers deep (6n + 2).

    Raises ValueError when `depth` is not of that form (8, 14, 20, 26, 32, ...)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a ResNet's depth must be 6n + 2 with n >= 1 (8, 14, 20, 26, 32, ...), got {depth}")
    return (depth - 2) // 6


class PreActBlock(nn.Module):
    """norm -> act -> conv -> norm -> act -> conv, added to the input (He et al. 2016, identity mappings).

    When the block halves the resolution and widens, the shortcut is the input subsampled and
    padded with zero channels (ResNet-20's parameter-free "option A"). A strided 1x1 convolution
    would cost 1-2% more parameters, and its channels-last gradient hangs oneDNN's AVX2 kernel
    on narrow layers (seen with torch 2.14.1 on an AMD EPYC, width 4)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.act1 = activation_layer(activation)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.act2 = activation_layer(activation)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        if out_channels < in_channels:
            raise ValueError(f"a block cannot narrow its input ({in_channels} -> {out_channels} channels)")
        self.stride, self.extra_channels = stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The input at the block's output resolution and width (subsampled, zero channels added)."""
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels)) if self.extra_channels else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(self.act2(self.norm2(self.conv1(self.act1(self.norm1(x))))))
        return residual + self.shortcut(x)


class ResNet(nn.Module):
    """3x3 stem -> 3 stages of pre-activation blocks (widths w, 2w, 4w; 28 -> 14 -> 7 pixels)
    -> norm -> act -> global average pool -> dropout -> Linear (logits).

    Depth 20 and width 16 give ResNet-20's 0.27M parameters. With `flip_average`, evaluation
    (eval mode) returns the mean of the logits of each image and its mirror image: test-time
    augmentation that travels with the model into checkpoints, predict.py and ONNX.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, width: int = 16,
                 depth: int = 20, activation: str = "relu", dropout: float = 0.0, flip_average: bool = False) -> None:
        super().__init__()
        del image_size  # any size works: the pooling is global
        count = blocks_per_stage(depth)
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        blocks, channels = [], width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(PreActBlock(channels, stage_width, stride, activation))
                channels = stage_width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), activation_layer(activation),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels, num_classes))
        self.flip_average = flip_average
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of (batch, channels, H, W) images, without test-time augmentation."""
        return self.head(self.blocks(self.stem(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.flip_average and not self.training:
            return (self.logits(images) + self.logits(images.flip(-1))) / 2
        return self.logits(images)  # (batch, num_classes)
