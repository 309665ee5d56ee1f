"""Turn a run's settings into a DataBundle for each data set."""
from __future__ import annotations

import torch

from data.bundle import DataBundle, split_train_val
from data.fashion_mnist import CLASS_NAMES, MEAN, STD, load_fashion_mnist
from data.image_batches import ImageBatches


def fashion_mnist_bundle(data_dir: str, *, batch_size: int, eval_batch_size: int, val_size: int, seed: int,
                         augment: bool, channels_last: bool, device: torch.device, rank: int = 0,
                         world_size: int = 1, limit_train: int = 0) -> DataBundle:
    """FashionMNIST as whole-split tensors: train (augmented, shuffled), validation and test batches."""
    splits = load_fashion_mnist(data_dir)
    full_train, test = splits["train"], splits["test"]
    train_idx, val_idx = split_train_val(len(full_train.labels), val_size, seed, limit_train)
    common = dict(mean=MEAN, std=STD, device=device, rank=rank, world_size=world_size, channels_last=channels_last)
    return DataBundle(
        task="fashion_mnist",
        train=ImageBatches(full_train.images[train_idx], full_train.labels[train_idx], batch_size,
                           shuffle=True, augment=augment, seed=seed, **common),
        val=ImageBatches(full_train.images[val_idx], full_train.labels[val_idx], eval_batch_size, **common),
        test=ImageBatches(test.images, test.labels, eval_batch_size, **common),
        class_names=list(CLASS_NAMES),
        model_kwargs={"num_classes": len(CLASS_NAMES)},
        meta={"mean": MEAN, "std": STD, "image_size": 28},
        test_examples=test.images,
    )
