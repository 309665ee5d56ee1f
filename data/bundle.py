"""What a training run needs from a data set, independent of which data set it is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
