"""The data of a run as its flags ask: the built-in data set or the user's, read and batched for this
process, with the tokenizer a new text run reads its texts with."""
from __future__ import annotations

import functools
from typing import Any

from data.builtin import fashion_mnist_bundle, trec_bundle
from data.bundle import DataBundle
from data.own_images import image_folder_bundle
from data.own_texts import own_text_bundle
from data.tokenization import TextTokenizer, tokenizer_from_meta
from utils.config import default_data_dir
from utils.data_flags import FASHION_MNIST, TEACHERS_TOKENIZER, TREC, ImageConfig, TextConfig
from utils.image_cache import decoded_split
from utils.errors import ConfigError
from utils.pretrained import load_subword_tokenizer
from utils.pretrained_images import image_preprocessing
from utils.runtime import Runtime, main_process_first
from utils.storage.checkpoint import load_checkpoint_of_task


def pretrained_reading(config: ImageConfig) -> dict[str, Any]:
    """How the --pretrained network reads images (its preprocessing), at --image-size where given."""
    reading = image_preprocessing(config.pretrained_source())
    if config.dataset == FASHION_MNIST:
        raise ConfigError("--pretrained fine-tunes on your images: give --dataset (a folder of class folders or a "
                          "Hugging Face dataset); `python bench/pretrained_images.py write --out DIR` writes "
                          "FashionMNIST as such a folder")
    if config.channels and config.channels != reading["channels"]:
        raise ConfigError(f"--channels {config.channels}: the network {config.pretrained_source()} reads "
                          f"{reading['channels']}-channel images; leave --channels out")
    return {**reading, "image_size": config.image_size or reading["image_size"]}


def image_data(config: ImageConfig, runtime: Runtime, meta: dict[str, Any] | None = None) -> DataBundle:
    """The images of --dataset (FashionMNIST, or a folder) as batches `config` asks for, sharded for this
    process; `meta` (a checkpoint's) says how they are read, else a --pretrained network's preprocessing."""
    if meta is None and config.pretrained_source():
        meta = pretrained_reading(config)
    if config.dataset != FASHION_MNIST:  # decoded once into the disk cache, which every process then reads
        decode = functools.partial(decoded_split, progress=config.progress and runtime.is_main)
        return main_process_first(runtime, lambda: image_folder_bundle(
            config.image_source(), config.holdout(), config.batching(runtime), config.image_spec(), decode,
            meta))
    return fashion_mnist_bundle(config.data_dir or default_data_dir(), config.batching(runtime), config.image_spec(),
                                config.holdout())


def text_tokenizer(config: TextConfig) -> TextTokenizer | None:
    """The tokenizer a new run reads its texts with (None: a word vocabulary built from its training texts)."""
    source = config.tokenizer_source()
    if source == TEACHERS_TOKENIZER:
        return tokenizer_from_meta(load_checkpoint_of_task(config.teacher, config.task, "--teacher")["meta"])
    return load_subword_tokenizer(source) if source else None


def text_data(config: TextConfig, runtime: Runtime, meta: dict[str, Any] | None = None) -> DataBundle:
    """The texts of --dataset (TREC, a file or a Hugging Face dataset) as batches `config` asks for; a
    checkpoint's `meta` supplies its tokenizer."""
    tokenizer = tokenizer_from_meta(meta) if meta else text_tokenizer(config)
    spec = config.text_spec(tokenizer, (meta or {}).get("max_length", config.max_length))
    if config.dataset != TREC:
        return own_text_bundle(config.text_source(), config.holdout(), config.batching(runtime), spec)
    return trec_bundle(config.data_dir or default_data_dir(), config.batching(runtime), spec, config.holdout(),
                       config.labels, config.source)
