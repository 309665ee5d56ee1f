"""The two built-in data sets, FashionMNIST and TREC, as DataBundles."""
from __future__ import annotations

import dataclasses
import random
from typing import Any

import torch

from data import DataError
from data.bundle import DataBundle, split_train_val
from data.fashion_mnist import CLASS_NAMES, MEAN, STD, load_fashion_mnist
from data.image_batches import ImageBatches
from data.text import TextBatches, delete_words
from data.tokenization import TextTokenizer, WordTokenizer, encode_all
from data.trec import COARSE_LABELS, Question, load_trec_files, load_trec_hub


Labelled = tuple[torch.Tensor, torch.Tensor]  # (images (N, C, H, W) or (N, H, W) uint8, labels (N,))


def image_bundle(task: str, train: Labelled, val: Labelled, test: Labelled, class_names: list[str], *,
                 mean: Any, std: Any, batch_size: int, eval_batch_size: int, seed: int, augment: bool,
                 channels_last: bool, device: torch.device, rank: int = 0, world_size: int = 1,
                 random_erasing: float = 0.0, crop_padding: int = 2, model_kwargs: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None) -> DataBundle:
    """Image splits as whole-split tensors: train (augmented, shuffled), validation and test batches."""
    common = dict(mean=mean, std=std, device=device, rank=rank, world_size=world_size, channels_last=channels_last)
    return DataBundle(
        task=task,
        train=ImageBatches(*train, batch_size, shuffle=True, augment=augment, crop_padding=crop_padding,
                           random_erasing=random_erasing, seed=seed, **common),
        val=ImageBatches(*val, eval_batch_size, **common),
        test=ImageBatches(*test, eval_batch_size, **common),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), **(model_kwargs or {})},
        meta={"mean": mean, "std": std, **(meta or {})},
        test_examples=test[0],
    )


def fashion_mnist_bundle(data_dir: str, *, val_size: int, seed: int, limit_train: int = 0,
                         split_seed: int | None = None, **batching: Any) -> DataBundle:
    """FashionMNIST (see image_bundle for `batching`). `split_seed` draws the validation examples
    (default: `seed`, which also orders the batches); `crop_padding` 0 makes `augment` a flip only."""
    splits = load_fashion_mnist(data_dir)
    full_train, test = splits["train"], splits["test"]
    train_idx, val_idx = split_train_val(len(full_train.labels), val_size, seed if split_seed is None else split_seed,
                                         limit_train)
    return image_bundle("fashion_mnist", (full_train.images[train_idx], full_train.labels[train_idx]),
                        (full_train.images[val_idx], full_train.labels[val_idx]), (test.images, test.labels),
                        CLASS_NAMES, mean=MEAN, std=STD, seed=seed, meta={"image_size": 28}, **batching)


def trec_bundle(data_dir: str, *, source: str, labels: str, batch_size: int, eval_batch_size: int, val_size: int,
                seed: int, min_freq: int, bucket: bool, device: torch.device, rank: int = 0, world_size: int = 1,
                limit_train: int = 0, max_length: int = 64, tokenizer: TextTokenizer | None = None,
                perturbed_copies: int = 0, split_seed: int | None = None) -> DataBundle:
    """TREC questions as bucketed batches of token ids; `labels` is "coarse" (6) or "fine" (50).

    `tokenizer` (a checkpoint's, or a pretrained model's) turns questions into ids; without one,
    a word vocabulary is built from the training part only. Questions are cut to `max_length`
    tokens, so that one huge line cannot blow up the padded tensors; the notes say how many were.
    `perturbed_copies` adds that many copies of each training question with words dropped at random
    (`delete_words`; the same copies for the same seed, whatever the tokenizer), for a teacher to
    label. `split_seed` draws the validation questions (default: `seed`).
    """
    splits = load_trec_hub() if source == "hub" else load_trec_files(data_dir)
    full_train, test = splits["train"], splits["test"]
    class_names = COARSE_LABELS if labels == "coarse" else sorted({q.fine for q in full_train})
    label_index = {name: i for i, name in enumerate(class_names)}

    def label_ids(questions: list[Question]) -> list[int]:
        unknown = sorted({getattr(q, labels) for q in questions} - set(label_index))
        if unknown:
            raise DataError(f"test labels {', '.join(unknown)} never occur in the training data")
        return [label_index[getattr(q, labels)] for q in questions]

    train_idx, val_idx = split_train_val(len(full_train), val_size, seed if split_seed is None else split_seed,
                                         limit_train)
    train_part = [full_train[i] for i in train_idx.tolist()]
    val_part = [full_train[i] for i in val_idx.tolist()]
    tokenizer = tokenizer or WordTokenizer.build((q.text for q in train_part), min_freq)
    rng = random.Random(seed)
    train_part += [dataclasses.replace(q, text=delete_words(q.text, rng))
                   for _ in range(perturbed_copies) for q in train_part]
    notes = []

    def batches(questions: list[Question], size: int, shuffle: bool, split: str) -> TextBatches:
        encoded, cut = encode_all(tokenizer, [q.text for q in questions], max_length)
        if cut:
            notes.append(f"note: cut {cut} {split} question(s) to --max-length {max_length} tokens")
        return TextBatches(encoded, label_ids(questions), size, shuffle=shuffle, bucket=bucket, seed=seed, rank=rank,
                           world_size=world_size, device=device, pad_id=tokenizer.pad_id)

    return DataBundle(
        task="trec",
        train=batches(train_part, batch_size, shuffle=True, split="training"),
        val=batches(val_part, eval_batch_size, shuffle=False, split="validation"),
        test=batches(test, eval_batch_size, shuffle=False, split="test"),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), "vocab_size": tokenizer.vocab_size,
                      "padding_idx": tokenizer.pad_id},
        meta={"tokenizer": tokenizer.state(), "max_length": max_length},
        test_examples=[q.text for q in test],
        notes=notes,
    )
