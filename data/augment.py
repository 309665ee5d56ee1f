"""Augmentation of whole batches of uint8 images on their device: crops and flips (with padding, or
random resized crops of larger stored images), random erasing, and the numbering of crop and flip
views that teacher tables are kept by. Random numbers are drawn on the host, from the generator given."""
from __future__ import annotations

import math

import torch


def draw_views(count: int, padding: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (flip, top, left) for `count` images: flip with probability 1/2, crop offsets in
    [0, 2 * padding] (all zero without padding)."""
    # drawn on the host (the same views on every device), sent without waiting for the device
    flip = (torch.rand(count, generator=generator) < 0.5).to(device, non_blocking=True)
    if padding == 0:
        zero = torch.zeros(count, dtype=torch.long, device=device)
        return flip, zero, zero
    top = torch.randint(0, 2 * padding + 1, (count,), generator=generator).to(device, non_blocking=True)
    left = torch.randint(0, 2 * padding + 1, (count,), generator=generator).to(device, non_blocking=True)
    return flip, top, left


def crop_and_flip(images: torch.Tensor, flip: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                  padding: int) -> torch.Tensor:
    """Mirror the (B, C, H, W) images where `flip`, then cut each at (`top`, `left`) of its zero-padded copy."""
    count, _, height, width = images.shape
    device = images.device
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if padding == 0:
        return images
    padded = torch.nn.functional.pad(images, (padding,) * 4).permute(0, 2, 3, 1)  # (B, H + 2p, W + 2p, C)
    rows = (top[:, None] + torch.arange(height, device=device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(width, device=device))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(count, device=device)[:, None, None], rows, cols].permute(0, 3, 1, 2)


MIN_AREA = 0.25  # random resized crops keep 25% to 100% of the stored image's area
RATIOS = (3 / 4, 4 / 3)  # and an aspect ratio (width / height) between these


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The centre `size` x `size` of each (B, C, H, W) image (offsets rounded as torchvision's CenterCrop)."""
    height, width = images.shape[-2:]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return images[..., top:top + size, left:left + size]


def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Each (B, C, H, W) uint8 image's random part (MIN_AREA to all of its area, aspect ratio in RATIOS,
    anywhere inside it), mirrored with probability 1/2, resized bilinearly to `size` x `size`: float
    pixel values in [0, 255]. One batched sampling on the device; the draws are made on the host."""
    count = len(images)
    area = torch.empty(count).uniform_(MIN_AREA, 1.0, generator=generator)
    ratio = torch.empty(count).uniform_(math.log(RATIOS[0]), math.log(RATIOS[1]), generator=generator).exp()
    width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # shares of the sides
    centre_x = (torch.rand(count, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(count, generator=generator) * 2 - 1) * (1 - height)
    mirror = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width * mirror, centre_x, height, centre_y
    grid = torch.nn.functional.affine_grid(theta.to(images.device, non_blocking=True),
                                           [count, images.size(1), size, size], align_corners=False)
    return torch.nn.functional.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def views_per_image(padding: int) -> int:
    """Number of distinct crop and flip views of an image with crop padding `padding`."""
    return 2 * (2 * padding + 1) ** 2


def view_index(flip: torch.Tensor, top: torch.Tensor, left: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image's view as one number in [0, views_per_image(padding))."""
    side = 2 * padding + 1
    return (flip.long() * side + top) * side + left


def view_parts(view: int, padding: int) -> tuple[bool, int, int]:
    """The (flip, top, left) of a view number (the inverse of `view_index`)."""
    side = 2 * padding + 1
    return bool(view // (side * side)), view // side % side, view % side


def mirror_view(view: int, padding: int) -> int:
    """The view that is `view` mirrored left to right: the other flip, the crop offset reflected."""
    flip, top, left = view_parts(view, padding)
    side = 2 * padding + 1
    return ((1 - flip) * side + top) * side + 2 * padding - left


def random_crop_and_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (after zero padding) and horizontally flip each image of a (B, C, H, W) batch."""
    return crop_and_flip(images, *draw_views(len(images), padding, generator, images.device), padding)


def random_erase(images: torch.Tensor, probability: float, generator: torch.Generator,
                 area: tuple[float, float] = (0.02, 0.4), aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020) of a (B, C, H, W) uint8 batch: each image, with
    `probability`, gets one rectangle of random noise covering a random fraction `area` of it,
    with height/width ratio in `aspect` (log-uniform); rectangles are cut to fit the image."""
    count, height, width = images.size(0), images.size(-2), images.size(-1)
    device = images.device
    erase = torch.rand(count, generator=generator) < probability
    fraction = torch.empty(count).uniform_(*area, generator=generator) * height * width
    ratio = torch.empty(count).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=generator).exp()
    box_h = (fraction * ratio).sqrt().round().clamp(1, height).long()
    box_w = (fraction / ratio).sqrt().round().clamp(1, width).long()
    top = (torch.rand(count, generator=generator) * (height - box_h + 1)).long()
    left = (torch.rand(count, generator=generator) * (width - box_w + 1)).long()
    rows, cols = torch.arange(height)[None, None, :, None], torch.arange(width)[None, None, None, :]
    box = (slice(None), None, None, None)  # each image's value, broadcast over its channels and pixels
    inside = ((rows >= top[box]) & (rows < (top + box_h)[box])
              & (cols >= left[box]) & (cols < (left + box_w)[box]) & erase[box])
    noise = torch.randint(0, 256, images.shape, generator=generator, dtype=torch.uint8)
    return torch.where(inside.to(device, non_blocking=True), noise.to(device, non_blocking=True), images)
