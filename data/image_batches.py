"""Mini-batches of images cut from one uint8 tensor (or file): normalise and augment whole batches at once."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from data.augment import (centre_crop, crop_and_flip, draw_views, random_erase, random_resized_crop, view_index,
                          view_parts, views_per_image)
from data.bundle import ImageSpec, Order
from data.disk_images import DiskImages
from data.sampling import epoch_generator, shard, shard_size


class ImageBatches:
    """Iterate `(inputs, targets)` over a split held as `images` (N, C, H, W) uint8 (or (N, H, W):
    one channel), in memory (moved to the device whole) or on disk (data.disk_images: each batch read
    from the memory-mapped file), and `labels` (N,).

    Shuffling is a seeded permutation per epoch (call `set_epoch`); augmentation (random crop with
    zero padding, horizontal flip; then random erasing) is done on the whole batch. Stored images larger
    than `spec.input_size` are cut to it: random resized crops (with `spec.augment`) or the centre.
    Inputs are float (B, C, H, W), normalised by `spec.mean` and `spec.std`: one number, or one per
    channel. `order` says whether to shuffle, and which share of the split this process serves.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, spec: ImageSpec = ImageSpec(),
                 order: Order = Order(), device: torch.device | str = "cpu") -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device)
        # images in memory move to the device whole; images on disk (data.disk_images) are read a batch at a time
        self.images = images if isinstance(images, DiskImages) else \
            (images.unsqueeze(1) if images.dim() == 3 else images).to(self.device)
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
        self.input_size = spec.input_size if spec.input_size and spec.input_size < self.images.size(-1) else 0

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

    def rows(self, indices: torch.Tensor | slice) -> torch.Tensor:
        """The stored uint8 images at `indices`, on the device."""
        images = self.images[indices]
        if isinstance(self.images, DiskImages):
            images = images.pin_memory() if self.device.type == "cuda" else images
            images = images.to(self.device, non_blocking=True)
        return images

    @property
    def view_count(self) -> int | None:
        """How many distinct inputs augmentation makes of one image: 1 without it, 2 * (2p + 1)^2
        crop and flip views with padding p; None with random erasing (no finite set)."""
        if self.random_erasing > 0 or (self.augment and self.input_size):
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
            images = self.rows(batch)
            views = torch.zeros(len(batch), dtype=torch.long, device=self.device)
            if self.input_size:  # cut from larger stored images: at random for training, else at the centre
                images = (random_resized_crop(images, self.input_size, generator) if self.augment
                          else centre_crop(images, self.input_size))
            elif self.augment:
                flip, top, left = draw_views(len(batch), self.crop_padding, generator, self.device)
                images = crop_and_flip(images, flip, top, left, self.crop_padding)
                views = view_index(flip, top, left, self.crop_padding)
            if self.random_erasing > 0:
                images = random_erase(images, self.random_erasing, generator)
            yield batch, views, (self.normalise(images), self.labels[batch])

    def view_batches(self, view: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Inputs of every example of the split (all processes'), in index order, all seen through one `view`."""
        for start in range(0, len(self.labels), batch_size):
            images = self.rows(slice(start, start + batch_size))
            if self.input_size:
                images = centre_crop(images, self.input_size)
            elif self.augment:
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
