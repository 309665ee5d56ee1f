"""What a training run needs from a data set, independent of which data set it is."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from data import DataError


@dataclass
class DataBundle:
    """Batches for each split plus what models, checkpoints and reports need to know."""

    task: str  # "fashion_mnist", "trec", or "image" / "text" for other data: how predict.py and reports read inputs
    train: Any  # has set_epoch(epoch) and yields (inputs, targets)
    val: Any
    test: Any
    class_names: list[str]
    model_kwargs: dict[str, Any]  # data-dependent model arguments, e.g. num_classes, vocab_size
    meta: dict[str, Any] = field(default_factory=dict)  # plain types for the checkpoint (normalisation, vocab)
    test_examples: Any = None  # the test inputs as a person sees them: uint8 images or question strings
    notes: list[str] = field(default_factory=list)  # what the caller should tell the user (e.g. truncation)


@dataclass(frozen=True)
class Batching:
    """How any data set becomes batches: their sizes, the seed that orders (and augments) them, the
    device they live on, and which share of them this process takes (`rank` of `world_size`)."""

    batch_size: int
    eval_batch_size: int
    seed: int = 0
    device: Any = "cpu"  # a torch.device or its name
    rank: int = 0
    world_size: int = 1

    def order(self, shuffle: bool) -> "Order":
        """Which examples this process serves: shuffled (training) or in order (evaluation)."""
        return Order(shuffle, self.seed, self.rank, self.world_size)


@dataclass(frozen=True)
class Order:
    """Which examples of a split a process serves, and in what order: all of them in order, or (with
    `shuffle`) a permutation drawn anew each epoch from (seed, epoch); process `rank` of `world_size`
    takes every world_size-th of them."""

    shuffle: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1


@dataclass(frozen=True)
class ImageSpec:
    """What image batches need besides the images: normalisation, training augmentation, and the side
    of the inputs cut from larger stored images."""

    mean: Any = 0.0  # a float, or one per channel
    std: Any = 1.0
    augment: bool = False  # random crop (after `crop_padding` pixels) and horizontal flip
    crop_padding: int = 2
    random_erasing: float = 0.0
    channels_last: bool = False
    input_size: int = 0  # 0: the images as stored; else a centre crop of that side (with `augment`: random crops)


@dataclass(frozen=True)
class TextSpec:
    """What text batches need besides the texts: the tokenizer (None: a word vocabulary built from the
    training texts, words seen `min_freq` times, split at spaces or also at punctuation: `split_words`),
    the most tokens a text keeps, bucketing by length, and perturbed copies for a teacher to label."""

    tokenizer: Any = None
    min_freq: int = 2
    split_words: str = "spaces"
    max_length: int = 64
    bucket: bool = True
    perturbed_copies: int = 0


TASK_KINDS = {"fashion_mnist": "image", "trec": "text", "image": "image", "text": "text"}


def kind_of(task: str) -> str:
    """The kind of data ("image" or "text") of a task as checkpoints name it."""
    return TASK_KINDS.get(task, task)


def class_names_of(labels: list[str]) -> list[str]:
    """The distinct labels in order: numerically when every label is a whole number, else alphabetically."""
    distinct = set(labels)
    numeric = all(label.lstrip("-").isdigit() for label in distinct)
    return sorted(distinct, key=int) if numeric else sorted(distinct)


def data_fingerprint(examples: Iterable[bytes], labels: Iterable[int], class_names: list[str]) -> str:
    """A hash of a data set as a set of labelled examples (whatever their order or split) and its class
    names: two runs with the same fingerprint saw the same data."""
    rows = sorted(hashlib.sha256(bytes(example) + f"|{label}".encode()).digest()
                  for example, label in zip(examples, labels))
    digest = hashlib.sha256("\n".join(class_names).encode())
    for row in rows:
        digest.update(row)
    return digest.hexdigest()


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out) of a seeded, stratified hold-out: `fraction` of each class's examples
    (rounded, at least one of a class with two or more), each part in index order."""
    generator = torch.Generator().manual_seed(seed)
    held = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        held.append(members[:count])
    held_out = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[held_out] = False
    return keep.nonzero().flatten(), held_out


def hold_out_missing(labels: torch.Tensor, missing: Iterable[str], fractions: dict[str, float], seed: int,
                     split_seed: int) -> dict[str, torch.Tensor]:
    """Indices into a training split of labels `labels` of each part: "train", and the `missing` ones of
    "test" and "val", held out in that order by stratified_split, `fractions[part]` of each class; the
    test with `seed`, the validation examples with `split_seed` (a negative one: `seed`)."""
    parts, rest = {}, torch.arange(len(labels))
    for part in ("test", "val"):
        if part in missing:
            keep, held = stratified_split(labels[rest], fractions[part], seed if part == "test" or split_seed < 0
                                          else split_seed)
            parts[part], rest = rest[held], rest[keep]
    return {"train": rest, **parts}


def limited(count: int, limit: int, seed: int) -> torch.Tensor:
    """Indices (in order) of at most `limit` of `count` training examples, drawn with `seed`: a file
    sorted by class gives every class its share, not the first classes all of it."""
    if limit >= count:
        return torch.arange(count)
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def split_train_val(count: int, val_size: int, seed: int, limit_train: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation examples: a seeded permutation, val first."""
    if val_size >= count:
        raise DataError(f"--val-size {val_size} leaves no training examples out of {count}: give a smaller --val-size")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    val, train = order[:val_size], order[val_size:]
    if limit_train:
        train = train[:limit_train]
    return train.sort().values, val.sort().values
