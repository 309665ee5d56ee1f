"""Mini-batches of images cut from one uint8 tensor: normalise and augment whole batches at once."""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

from data.bundle import ImageSpec, Order
from data.sampling import epoch_generator, shard, shard_size


class ImageBatches:
    """Iterate `(inputs, targets)` over a split held as `images` (N, C, H, W) uint8 (or (N, H, W):
    one channel) and `labels` (N,).

    Shuffling is a seeded permutation per epoch (call `set_epoch`); augmentation (random crop with
    zero padding, horizontal flip; then random erasing) is done on the whole batch. Inputs are
    float (B, C, H, W), normalised by `spec.mean` and `spec.std`: one number, or one per channel. `order`
    says whether to shuffle, and which share of the split this process serves.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, spec: ImageSpec = ImageSpec(),
                 order: Order = Order(), device: torch.device | str = "cpu") -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device)
        self.images = (images.unsqueeze(1) if images.dim() == 3 else images).to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.mean, self.std = per_channel(spec.mean), per_channel(spec.std)
        if len(self.mean) not in (1, self.images.size(1)) or len(self.std) != len(self.mean):
            raise ValueError(f"{len(self.mean)} means and {len(self.std)} stds for {self.images.size(1)} channels")
        self.shuffle, self.augment, self.crop_padding = order.shuffle, spec.augment, spec.crop_padding
        self.random_erasing = spec.random_erasing
        self.seed, self.epoch = order.seed, 0
        self.rank, self.world_size = order.rank, order.world_size
        self.channels_last = spec.channels_last

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration uses."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        count = len(self.labels)
        if self.shuffle:
            order = torch.randperm(count, generator=epoch_generator(self.seed, self.epoch))
        else:
            order = torch.arange(count)
        return shard(order, self.rank, self.world_size, equal=self.shuffle)

    def example_order(self) -> torch.Tensor:
        """Indices of the examples this process serves, in the order served."""
        return self._indices()

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    @property
    def num_examples(self) -> int:
        """How many examples this process sees per epoch (counted, not drawn)."""
        return shard_size(len(self.labels), self.rank, self.world_size, equal=self.shuffle)

    @property
    def changes_every_epoch(self) -> bool:
        """Whether augmentation (crop, flip, erasing) makes each epoch's inputs different."""
        return self.augment or self.random_erasing > 0

    @property
    def view_count(self) -> int | None:
        """How many distinct inputs augmentation makes of one image: 1 without it, 2 * (2p + 1)^2
        crop and flip views with padding p; None with random erasing (no finite set)."""
        if self.random_erasing > 0:
            return None
        return views_per_image(self.crop_padding) if self.augment else 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _, _, (inputs, targets) in self.batches_with_views():
            yield inputs, targets

    def batches_with_indices(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        """Like iterating, but each batch comes with the indices of its examples in this split."""
        for indices, _, batch in self.batches_with_views():
            yield indices, batch

    def batches_with_views(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        """Like `batches_with_indices`, and each example's view (see `view_index`; 0 without augmentation)."""
        indices = self._indices().to(self.device, non_blocking=True)
        generator = epoch_generator(self.seed + 1, self.epoch)
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start:start + self.batch_size]
            images = self.images[batch]
            views = torch.zeros(len(batch), dtype=torch.long, device=self.device)
            if self.augment:
                flip, top, left = draw_views(len(batch), self.crop_padding, generator, self.device)
                images = crop_and_flip(images, flip, top, left, self.crop_padding)
                views = view_index(flip, top, left, self.crop_padding)
            if self.random_erasing > 0:
                images = random_erase(images, self.random_erasing, generator)
            yield batch, views, (self.normalise(images), self.labels[batch])

    def view_batches(self, view: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Inputs of every example of the split (all processes'), in index order, all seen through one `view`."""
        for start in range(0, len(self.labels), batch_size):
            images = self.images[start:start + batch_size]
            if self.augment:
                flip, top, left = (torch.full((len(images),), part, device=self.device)
                                   for part in view_parts(view, self.crop_padding))
                images = crop_and_flip(images, flip, top, left, self.crop_padding)
            yield self.normalise(images)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """A (B, C, H, W) uint8 batch as the model's float inputs."""
        inputs = normalise(images, self.mean, self.std)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs


def per_channel(value: float | Sequence[float]) -> tuple[float, ...]:
    """A normalisation constant as one float per channel (a single one serves every channel)."""
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, C, H, W) uint8 images as floats in [0, 1], less `mean`, over `std` (per channel)."""
    inputs = images.float().div_(255.0)
    if len(mean) == 1:  # Python scalars: the arithmetic of one-channel data sets stays as it was
        return inputs.sub_(mean[0]).div_(std[0])
    shape = (1, len(mean), 1, 1)
    return inputs.sub_(torch.tensor(mean, device=images.device).view(shape)).div_(
        torch.tensor(std, device=images.device).view(shape))


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
