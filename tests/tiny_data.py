"""Tiny data sets in the real file formats: FashionMNIST's IDX files and TREC's label files, whose
classes a model can learn in a few steps."""
from __future__ import annotations

import gzip
import os

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000 08 ndim, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def separable_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is written in their brightness pattern: class k lights up row band k."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4:2 * label + 7, 4:24] = 220
    return images, labels


def write_fashion_mnist(data_dir: str, train_count: int = 300, test_count: int = 100, compress: bool = True) -> str:
    """Write the four IDX files under data_dir/FashionMNIST/raw; returns data_dir."""
    raw = os.path.join(data_dir, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for prefix, count, seed in (("train", train_count, 0), ("t10k", test_count, 1)):
        images, labels = separable_images(count, seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            content = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if compress:
                with gzip.open(os.path.join(raw, name + ".gz"), "wb") as f:
                    f.write(content)
            else:
                with open(os.path.join(raw, name), "wb") as f:
                    f.write(content)
    return data_dir


TREC_TEMPLATES = {  # coarse label -> (fine label, question templates); words say the class
    "ABBR": ("exp", ["What does {w} stand for ?", "What is the abbreviation {w} ?"]),
    "DESC": ("def", ["What is a {w} ?", "How does {w} work ?"]),
    "ENTY": ("animal", ["What animal is {w} ?", "Which animal eats {w} ?"]),
    "HUM": ("ind", ["Who invented {w} ?", "Who was {w} ?"]),
    "LOC": ("city", ["Where is {w} ?", "Which city has {w} ?"]),
    "NUM": ("date", ["When was {w} born ?", "How many {w} are there ?"]),
}


def trec_lines(count: int, seed: int) -> list[str]:
    """TREC-format lines `COARSE:fine question`, separable by their first words."""
    rng = np.random.default_rng(seed)
    words = ["paris", "nasa", "lincoln", "tiger", "river", "moon", "radio", "tea"]
    lines = []
    for i in range(count):
        coarse = list(TREC_TEMPLATES)[i % 6]
        fine, templates = TREC_TEMPLATES[coarse]
        question = templates[rng.integers(len(templates))].format(w=words[rng.integers(len(words))])
        lines.append(f"{coarse}:{fine} {question}")
    return lines


def write_trec(data_dir: str, train_count: int = 240, test_count: int = 60) -> str:
    """Write train_5500.label (with one Latin-1 byte, like the real file) and TREC_10.label."""
    folder = os.path.join(data_dir, "TREC")
    os.makedirs(folder, exist_ok=True)
    train = trec_lines(train_count, 0)
    train[1] = "LOC:city Which city is a sister\xf0city of Paris ?"
    with open(os.path.join(folder, "train_5500.label"), "w", encoding="latin-1") as f:
        f.write("\n".join(train) + "\n")
    with open(os.path.join(folder, "TREC_10.label"), "w", encoding="latin-1") as f:
        f.write("\n".join(trec_lines(test_count, 1)) + "\n")
    return data_dir
