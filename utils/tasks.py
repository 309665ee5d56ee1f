"""Settings and data set-up shared by the scripts of each data set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data.bundle import DataBundle
from data.tasks import fashion_mnist_bundle
from utils.config import TrainConfig, default_data_dir, option
from utils.runtime import Runtime


@dataclass
class ImageConfig(TrainConfig):
    """Flags of the FashionMNIST scripts."""

    augment: bool = option(False, "random crop (2-pixel padding) and horizontal flip of training batches")
    channels_last: bool = option(False, "channels-last memory format (faster convolutions on CPU and GPU)")


def image_data(config: ImageConfig, runtime: Runtime, meta: dict[str, Any] | None = None) -> DataBundle:
    """FashionMNIST batches as `config` asks for them, sharded for this process."""
    return fashion_mnist_bundle(
        config.data_dir or default_data_dir(), batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size, val_size=config.val_size, seed=config.seed,
        augment=config.augment, channels_last=config.channels_last, device=runtime.device,
        rank=runtime.rank, world_size=runtime.world_size, limit_train=config.limit_train)
