"""IDX reading, locating and the batches built from FashionMNIST."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch

from tiny_data import idx_bytes, separable_images, write_fashion_mnist
from data import DataError
from data.fashion_mnist import load_fashion_mnist, parse_idx
from data.bundle import ImageSpec, Order
from data.augment import random_crop_and_flip, random_erase
from data.image_batches import ImageBatches, normalise


def test_idx_round_trip_gzip_and_plain(tmp_path):
    images, labels = separable_images(30, seed=3)
    for compress in (True, False):
        data_dir = write_fashion_mnist(str(tmp_path / f"d{compress}"), 30, 10, compress=compress)
        splits = load_fashion_mnist(data_dir, allow_download=False).splits
        assert splits["train"].inputs.dtype == torch.uint8
        assert splits["train"].inputs.shape == (30, 1, 28, 28)
        assert splits["test"].labels.shape == (10,)
        expected, expected_labels = separable_images(30, seed=0)
        assert np.array_equal(splits["train"].inputs[:, 0].numpy(), expected)
        assert np.array_equal(splits["train"].labels.numpy(), expected_labels)


def corrupt(data_dir: str, name: str, content: bytes) -> str:
    path = os.path.join(data_dir, "FashionMNIST", "raw", name)
    with gzip.open(path, "wb") as f:
        f.write(content)
    return path


def test_wrong_magic_number_names_the_file(fashion_dir):
    images, _ = separable_images(300, 0)
    bad = bytearray(idx_bytes(images))
    bad[2] = 0x0D  # float instead of unsigned byte
    corrupt(fashion_dir, "train-images-idx3-ubyte.gz", bytes(bad))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: wrong magic number"):
        load_fashion_mnist(fashion_dir, allow_download=False)


def test_truncated_data_names_the_file(fashion_dir):
    images, _ = separable_images(300, 0)
    corrupt(fashion_dir, "train-images-idx3-ubyte.gz", idx_bytes(images)[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: header says shape"):
        load_fashion_mnist(fashion_dir, allow_download=False)


def test_truncated_gzip_names_the_file(fashion_dir):
    path = os.path.join(fashion_dir, "FashionMNIST", "raw", "t10k-labels-idx1-ubyte.gz")
    content = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(content[: len(content) // 2])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: cannot read"):
        load_fashion_mnist(fashion_dir, allow_download=False)


def test_too_short_header():
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00\x00", "x.idx", ndim=3)


def test_image_and_label_counts_must_agree(fashion_dir):
    _, labels = separable_images(299, 0)
    corrupt(fashion_dir, "train-labels-idx1-ubyte.gz", idx_bytes(labels))
    with pytest.raises(DataError, match="300 images but .* 299 labels"):
        load_fashion_mnist(fashion_dir, allow_download=False)


def test_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_fashion_mnist(str(tmp_path), allow_download=False)


def test_batches_cover_the_split_once_and_are_normalised():
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    labels = torch.arange(50) % 10
    batches = ImageBatches(images, labels, 16, ImageSpec(0.5, 0.25), Order(shuffle=True, seed=1))
    seen = torch.cat([targets for _, targets in batches])
    assert len(batches) == 4 and sorted(seen.tolist()) == sorted(labels.tolist())
    inputs, _ = next(iter(ImageBatches(images, labels, 50, ImageSpec(0.5, 0.25))))
    assert inputs.shape == (50, 1, 28, 28)
    assert torch.allclose(inputs[:, 0], (images.float() / 255 - 0.5) / 0.25)


def test_shuffle_depends_on_seed_and_epoch_only():
    images = torch.zeros(40, 28, 28, dtype=torch.uint8)
    labels = torch.arange(40)
    def order(seed, epoch):
        batches = ImageBatches(images, labels, 8, ImageSpec(0, 1), Order(shuffle=True, seed=seed))
        batches.set_epoch(epoch)
        return torch.cat([t for _, t in batches]).tolist()
    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)


def test_crop_and_flip_keep_content_and_shape():
    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    images[..., 10:18, 0:4] = 200  # a bar at the left edge
    out = random_crop_and_flip(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    on_right = out[..., 20:].sum(dim=(1, 2, 3)) > 0
    assert 0 < on_right.sum() < 64  # some, not all, were flipped
    assert (out.sum(dim=(1, 2, 3)) <= images.sum(dim=(1, 2, 3))).all()  # a crop never adds pixels
    unchanged = random_crop_and_flip(images, 0, torch.Generator().manual_seed(0))
    assert all(torch.equal(u, images[0]) or torch.equal(u, images[0].flip(-1)) for u in unchanged)


def test_the_channels_of_an_image_are_cropped_flipped_and_erased_together():
    gray = torch.randint(1, 80, (32, 1, 12, 10), dtype=torch.uint8)
    colour = torch.cat([gray, gray * 2, gray * 3], dim=1)  # three channels that can be told apart
    cropped = random_crop_and_flip(colour, 2, torch.Generator().manual_seed(3))
    for channel in range(3):  # the same views are drawn whatever the number of channels
        alone = random_crop_and_flip(colour[:, channel:channel + 1], 2, torch.Generator().manual_seed(3))
        assert torch.equal(cropped[:, channel:channel + 1], alone)
    erased = random_erase(colour, 1.0, torch.Generator().manual_seed(3))
    changed = erased != colour  # (B, 3, H, W); noise equals the pixel it replaces 1 time in 256
    union = changed.any(1)
    assert union.flatten(1).any(1).all()
    for channel in range(3):
        assert (changed[:, channel] == union).float().mean() > 0.97  # one rectangle through every channel


def test_crop_padding_flag_reaches_the_training_batches(fashion_dir):
    from train_dnn import DNNConfig
    from utils.runtime import Runtime
    from utils.data_setup import image_data

    runtime = Runtime(torch.device("cpu"), "fp32")
    for padding in (0, 3):
        config = DNNConfig(data_dir=fashion_dir, augment=True, crop_padding=padding, val_size=50)
        train = image_data(config, runtime).train
        assert train.augment and train.crop_padding == padding
        inputs, _ = next(iter(train))
        originals = normalise(train.images[train.example_order()[:len(inputs)]], train.mean, train.std)
        mirrored_only = all(torch.equal(x, o) or torch.equal(x, o.flip(-1)) for x, o in zip(inputs, originals))
        assert mirrored_only == (padding == 0)


def test_random_erasing_erases_one_rectangle_in_about_p_of_the_images():
    images = torch.zeros(2000, 1, 28, 28, dtype=torch.uint8)
    erased = random_erase(images, 0.5, torch.Generator().manual_seed(0))
    changed = (erased != 0).flatten(1).any(1)
    assert 0.45 < changed.float().mean() < 0.55
    for image in erased[changed][:200, 0]:
        rows, cols = (image != 0).any(1).nonzero(), (image != 0).any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height * width <= 0.45 * 28 * 28  # one box of at most ~40% of the image
    unchanged = random_erase(images[:10], 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(unchanged, images[:10])
