"""Settings and data set-up shared by the scripts of each data set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from data.bundle import DataBundle
from data.tasks import fashion_mnist_bundle, trec_bundle
from data.text import PERTURBATIONS, SWAPS
from data.tokenization import SubwordTokenizer, TextTokenizer, tokenizer_from_meta
from utils.config import ConfigError, TrainConfig, default_data_dir, option
from utils.runtime import Runtime


@dataclass
class ImageConfig(TrainConfig):
    """Flags of the FashionMNIST scripts, with the recipe both image models share."""

    task: ClassVar[str] = "fashion_mnist"

    optimizer: str = "adamw"
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    augment: bool = option(True, "random crop (after --crop-padding) and horizontal flip of training batches")
    crop_padding: int = option(1, "with --augment: zero pixels added on each side before the random crop "
                               "(0: flip only; 1 beat 2 on validation for the MLP and tied it, slightly ahead, "
                               "for the CNN)", minimum=0, maximum=14, needs="augment", absent=2)
    channels_last: bool = option(False, "channels-last memory format (faster convolutions on CPU and GPU)")
    random_erasing: float = option(0.0, "probability of erasing a random rectangle of each training image "
                                   "(random erasing; 0 = off)", minimum=0, maximum=1)

    def augments_inputs(self) -> bool:
        """Crop, flip and erasing change the training images every epoch."""
        return self.augment or self.random_erasing > 0

    def cpu_bf16_helps(self) -> bool:
        # measured on 2-core Xeons with AMX (README, "bf16 on a CPU with native bf16"): the seed CNN 1.6x
        # and ResNet-14 1.6x as fast at the same validation accuracy; the recurrent models were slower in
        # bf16 (0.6-0.95x), so text configs keep the default
        return True


def image_data(config: ImageConfig, runtime: Runtime, meta: dict[str, Any] | None = None) -> DataBundle:
    """FashionMNIST batches as `config` asks for them, sharded for this process."""
    return fashion_mnist_bundle(
        config.data_dir or default_data_dir(), batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size, val_size=config.val_size, seed=config.seed,
        augment=config.augment, channels_last=config.channels_last, device=runtime.device,
        rank=runtime.rank, world_size=runtime.world_size, limit_train=config.limit_train,
        random_erasing=config.random_erasing, crop_padding=config.crop_padding, split_seed=config.split_seed_or_seed())


@dataclass
class TextConfig(TrainConfig):
    """Flags of the TREC scripts."""

    task: ClassVar[str] = "trec"
    data_flags: ClassVar[tuple[str, ...]] = (*TrainConfig.data_flags, "labels", "source", "min_freq", "bucket",
                                             "max_length", "perturbed_copies", "perturbation",
                                             "swap_neighbours")

    labels: str = option("coarse", "label set: 6 coarse classes or 50 fine ones", ["coarse", "fine"])
    source: str = option("files", "read the original .label files (downloaded if missing) or the hub",
                         ["files", "hub"])
    min_freq: int = option(2, "keep training words seen at least this often; the rest become <unk>, "
                           "which so gets trained too", minimum=1)
    bucket: bool = option(True, "batch questions of similar length together (less padding)")
    val_size: int = option(500, "training questions held out for validation (drawn by --split-seed)")

    perturbed_copies: int = option(0, "add this many copies of each training question, changed as --perturbation "
                                   "says; with --teacher, the teacher labels them too", minimum=0, maximum=100)
    perturbation: str = option("delete", "how --perturbed-copies change a question: delete: drop each word with "
                               "probability 0.15; mask-ngram: replace each word by [MASK] with probability 0.1, "
                               "then with probability 0.25 keep only a random run of 1-5 words; swap: replace "
                               "each word with probability 0.15 by one of its 8 nearest words in --swap-neighbours; "
                               "delete-swap: delete, then swap", list(PERTURBATIONS), needs="perturbed_copies")
    swap_neighbours: str = option("", "with --perturbation swap or delete-swap: the pretrained model (hub id, or a "
                                  "folder saved with save_pretrained, e.g. ../shared/models/all-MiniLM-L6-v2) whose "
                                  "input embeddings give each word's nearest words", needs="perturbed_copies")
    max_length: int = option(64, "keep at most this many tokens of a question (longer ones are cut, with a note)",
                             minimum=1, maximum=100_000)

    def check(self) -> None:
        """The swap perturbations need --swap-neighbours, and only they use it."""
        super().check()
        if self.perturbed_copies and (self.perturbation in SWAPS) != bool(self.swap_neighbours):
            raise ConfigError(f"--perturbation {self.perturbation} needs --swap-neighbours" if self.perturbation in SWAPS
                              else f"--swap-neighbours has no effect with --perturbation {self.perturbation}: "
                                   f"use {' or '.join(SWAPS)}")

    def tokenizer_source(self) -> str:
        """The pretrained model (hub id or folder) whose subword tokenizer reads the questions ('': a word
        vocabulary built from the training questions)."""
        return ""

    def pretrained_tokenizer(self) -> TextTokenizer | None:
        """The subword tokenizer of tokenizer_source() (None: a word vocabulary)."""
        source = self.tokenizer_source()
        return SubwordTokenizer.from_pretrained(source) if source else None


def text_data(config: TextConfig, runtime: Runtime, meta: dict[str, Any] | None = None) -> DataBundle:
    """TREC batches as `config` asks for them; a checkpoint's `meta` supplies its tokenizer."""
    return trec_bundle(
        config.data_dir or default_data_dir(), source=config.source, labels=config.labels,
        batch_size=config.batch_size, eval_batch_size=config.eval_batch_size, val_size=config.val_size,
        seed=config.seed, min_freq=config.min_freq, bucket=config.bucket, device=runtime.device,
        rank=runtime.rank, world_size=runtime.world_size, limit_train=config.limit_train,
        max_length=(meta or {}).get("max_length", config.max_length),
        tokenizer=tokenizer_from_meta(meta) if meta else config.pretrained_tokenizer(),
        perturbed_copies=config.perturbed_copies, perturbation=config.perturbation,
        swap_neighbours=config.swap_neighbours, split_seed=config.split_seed_or_seed())
