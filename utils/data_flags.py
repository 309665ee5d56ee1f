"""The flags that the scripts of each kind of data share: ImageConfig (train_cnn.py, train_dnn.py) and
TextConfig (train_rnn.py, train_transformer.py), and what they turn into for the data layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from data.bundle import ImageSpec, TextSpec
from data.own_images import ImageSource
from data.own_texts import TextSource
from data.tokenization import TextTokenizer
from utils.config import TrainConfig, option
from utils.errors import ConfigError

FASHION_MNIST, TREC = "fashion_mnist", "trec"  # the built-in data sets' --dataset names
TEACHERS_TOKENIZER = "teacher"  # --tokenizer value: read the texts as the --teacher checkpoint does


@dataclass
class ImageConfig(TrainConfig):
    """Flags of the image scripts, with the recipe both image models share."""

    task: ClassVar[str] = FASHION_MNIST
    own_data_flags: ClassVar[tuple[str, ...]] = (*TrainConfig.own_data_flags, "channels", "image_size",
                                                 "max_image_memory_gb", "skip_bad_files")
    # measured on 2-core Xeons with AMX (README, "bf16 on a CPU with native bf16"): the seed CNN and
    # ResNet-14 1.6x as fast at the same validation accuracy
    cpu_bf16_min_batch: ClassVar[int | None] = 0

    optimizer: str = "adamw"
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    temperature: float = option(1.0, "with --teacher: temperature T that softens both models' outputs (1: best "
                                "on validation for the image students of label-smoothed teachers)", above=0,
                                needs="teacher")
    activation: str = option("relu", "activation function", ["relu", "gelu"])
    batch_norm: bool = option(False, "batch normalisation after each hidden layer")
    augment: bool = option(True, "random crop (after --crop-padding) and horizontal flip of training batches")
    crop_padding: int = option(1, "with --augment: zero pixels added on each side before the random crop "
                               "(0: flip only; 1 beat 2 on validation for the MLP and tied it, slightly ahead, "
                               "for the CNN)", minimum=0, maximum=14, needs="augment")
    channels_last: bool = option(False, "channels-last memory format (faster convolutions on CPU and GPU)")
    random_erasing: float = option(0.0, "probability of erasing a random rectangle of each training image "
                                   "(random erasing; 0 = off)", minimum=0, maximum=1)
    dataset: str = option(FASHION_MNIST, "the images: 'fashion_mnist', or a folder of class folders "
                          "(DIR/<class>/*, or DIR/train/<class>/* with optional val/ and test/)")
    channels: int = option(0, "with --dataset DIR: 1 (gray) or 3 (RGB); 0: 1 when every image is gray, else 3",
                           minimum=0, maximum=3)
    image_size: int = option(0, "with --dataset DIR: the side every image is fitted into (with --pretrained: "
                             "cropped to); 0: the images' own size when they share it, else 32 (with --pretrained: "
                             "the network's input size)", minimum=0, maximum=1024)
    max_image_memory_gb: float = option(8.0, "with --dataset DIR: hold decoded images up to this many GiB in memory; "
                                        "larger sets are read from the memory-mapped cache on disk (a Hugging Face "
                                        "dataset's images must fit)", above=0, role="same_numbers")
    skip_bad_files: bool = option(False, "with --dataset DIR: leave out image files that cannot be decoded "
                                  "(counted in a note) instead of stopping")

    def image_source(self) -> ImageSource:
        """Where --dataset's images are and how to read them."""
        return ImageSource(self.dataset, self.test_dataset, self.channels, self.image_size, self.max_image_memory_gb,
                           self.skip_bad_files)

    def image_spec(self, mean: Any = 0.0, std: Any = 1.0) -> ImageSpec:
        """The augmentation and memory format these flags ask for, with a data set's normalisation."""
        return ImageSpec(mean, std, self.augment, self.crop_padding, self.random_erasing, self.channels_last)

    def check(self) -> None:
        """Images have 1 or 3 channels."""
        super().check()
        if self.channels not in (0, 1, 3):
            raise ConfigError(f"--channels must be 1 (gray), 3 (RGB) or 0 (automatic), got {self.channels}")


@dataclass
class TextConfig(TrainConfig):
    """Flags of the text scripts."""

    task: ClassVar[str] = TREC
    builtin_only_flags: ClassVar[tuple[str, ...]] = (*TrainConfig.builtin_only_flags, "labels", "source")
    own_data_flags: ClassVar[tuple[str, ...]] = (*TrainConfig.own_data_flags, "text_column", "label_column",
                                                 "dataset_config")

    dataset: str = option(TREC, "the texts: 'trec'; a .csv/.tsv/.json/.jsonl file; a Hugging Face dataset "
                          "(a hub id such as fancyzhx/ag_news, or a folder written by save_to_disk)")
    text_column: str = option("", "with your own --dataset: the column of the texts (default: 'text', or a "
                              "dataset's only text column)")
    label_column: str = option("", "with your own --dataset: the column of the labels (default: 'label', or a "
                               "dataset's class-label column)")
    dataset_config: str = option("", "with a hub --dataset: its configuration name")
    labels: str = option("coarse", "label set: 6 coarse classes or 50 fine ones", ["coarse", "fine"])
    source: str = option("files", "read the original .label files (downloaded if missing) or the hub",
                         ["files", "hub"], role="where")
    min_freq: int = option(2, "keep training words seen at least this often; the rest become <unk>, "
                           "which so gets trained too", minimum=1, ignored_with="tokenizer_source")
    bucket: bool = option(True, "batch questions of similar length together (less padding)")
    val_size: int = option(500, "training questions held out for validation, stratified (drawn by --split-seed)",
                           minimum=1)
    perturbed_copies: int = option(0, "add this many copies of each training question with each word dropped "
                                   "with probability 0.15; with --teacher, the teacher labels them too",
                                   minimum=0, maximum=100)
    max_length: int = option(64, "keep at most this many tokens of a question (longer ones are cut, with a note)",
                             minimum=1, maximum=100_000)

    def tokenizer_source(self) -> str:
        """The pretrained model (hub id or folder) whose subword tokenizer reads the questions, 'teacher'
        for the --teacher checkpoint's tokenizer, or '' for a word vocabulary built from the training questions."""
        return ""

    def text_source(self) -> TextSource:
        """Where --dataset's texts are and how to read them."""
        return TextSource(self.dataset, self.test_dataset, self.text_column, self.label_column, self.dataset_config)

    def text_spec(self, tokenizer: TextTokenizer | None, max_length: int, split_words: str = "spaces") -> TextSpec:
        """How these flags encode and batch texts, with the tokenizer (None: a word vocabulary) and length."""
        return TextSpec(tokenizer, self.min_freq, split_words, max_length, self.bucket, self.perturbed_copies)

    def check(self) -> None:
        """The teacher's tokenizer needs a teacher."""
        super().check()
        if self.tokenizer_source() == TEACHERS_TOKENIZER and not self.teacher:
            raise ConfigError(f"--tokenizer {TEACHERS_TOKENIZER} reads the texts as the --teacher does: add --teacher")
