"""Labelled images and texts as DataBundles, and the two built-in data sets, FashionMNIST and TREC."""
from __future__ import annotations

import random
from typing import Any

import torch

from data import DataError
from data.bundle import DataBundle, data_fingerprint, split_train_val
from data.fashion_mnist import CLASS_NAMES, MEAN, STD, load_fashion_mnist
from data.image_batches import ImageBatches
from data.text import TextBatches, delete_words
from data.tokenization import TextTokenizer, WordTokenizer, encode_all
from data.trec import COARSE_LABELS, Question, load_trec_files, load_trec_hub


Labelled = tuple[torch.Tensor, torch.Tensor]  # (images (N, C, H, W) or (N, H, W) uint8, labels (N,))
LabelledTexts = tuple[list[str], list[int]]  # (texts, label ids)


def image_bundle(task: str, train: Labelled, val: Labelled, test: Labelled, class_names: list[str], *,
                 mean: Any, std: Any, batch_size: int, eval_batch_size: int, seed: int, augment: bool,
                 channels_last: bool, device: torch.device, rank: int = 0, world_size: int = 1,
                 random_erasing: float = 0.0, crop_padding: int = 2, model_kwargs: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None) -> DataBundle:
    """Image splits as whole-split tensors: train (augmented, shuffled), validation and test batches."""
    common = dict(mean=mean, std=std, device=device, rank=rank, world_size=world_size, channels_last=channels_last)
    every = (train, val, test)
    fingerprint = (meta or {}).get("data_sha256") or data_fingerprint(  # the files' own where the source gave it
        (image.numpy().tobytes() for images, _ in every for image in images),
        (label for _, labels in every for label in labels.tolist()), list(class_names))
    return DataBundle(
        task=task,
        train=ImageBatches(*train, batch_size, shuffle=True, augment=augment, crop_padding=crop_padding,
                           random_erasing=random_erasing, seed=seed, **common),
        val=ImageBatches(*val, eval_batch_size, **common),
        test=ImageBatches(*test, eval_batch_size, **common),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), **(model_kwargs or {})},
        meta={"mean": mean, "std": std, **(meta or {}), "data_sha256": fingerprint},
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


def text_bundle(task: str, train: LabelledTexts, val: LabelledTexts, test: LabelledTexts, class_names: list[str], *,
                batch_size: int, eval_batch_size: int, seed: int, min_freq: int, bucket: bool, device: torch.device,
                rank: int = 0, world_size: int = 1, max_length: int = 64, tokenizer: TextTokenizer | None = None,
                perturbed_copies: int = 0, split_words: str = "spaces", meta: dict[str, Any] | None = None
                ) -> DataBundle:
    """Texts with label ids as bucketed batches of token ids.

    `tokenizer` (a checkpoint's, or a pretrained model's) turns texts into ids; without one, a word
    vocabulary is built from the training texts only (words split at spaces, or also at punctuation:
    `split_words`). Texts are cut to `max_length` tokens, so that one huge line cannot blow up the
    padded tensors; the notes say how many were. `perturbed_copies` adds that many copies of each
    training text with words dropped at random (`delete_words`; the same copies for the same seed,
    whatever the tokenizer), for a teacher to label.
    """
    fingerprint = data_fingerprint((text.encode() for part in (train, val, test) for text in part[0]),
                                   (label for part in (train, val, test) for label in part[1]), list(class_names))
    tokenizer = tokenizer or WordTokenizer.build(train[0], min_freq, split_words)
    rng = random.Random(seed)
    train_texts = train[0] + [delete_words(text, rng) for _ in range(perturbed_copies) for text in train[0]]
    train = (train_texts, train[1] * (perturbed_copies + 1))
    notes = []

    def batches(split: LabelledTexts, size: int, shuffle: bool, name: str) -> TextBatches:
        encoded, cut = encode_all(tokenizer, split[0], max_length)
        if cut:
            notes.append(f"note: cut {cut} {name} text(s) to --max-length {max_length} tokens")
        return TextBatches(encoded, split[1], size, shuffle=shuffle, bucket=bucket, seed=seed, rank=rank,
                           world_size=world_size, device=device, pad_id=tokenizer.pad_id)

    return DataBundle(
        task=task,
        train=batches(train, batch_size, shuffle=True, name="training"),
        val=batches(val, eval_batch_size, shuffle=False, name="validation"),
        test=batches(test, eval_batch_size, shuffle=False, name="test"),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), "vocab_size": tokenizer.vocab_size,
                      "padding_idx": tokenizer.pad_id},
        meta={"tokenizer": tokenizer.state(), "max_length": max_length, **(meta or {}), "data_sha256": fingerprint},
        test_examples=list(test[0]),
        notes=notes,
    )


def trec_bundle(data_dir: str, *, source: str, labels: str, val_size: int, seed: int, limit_train: int = 0,
                split_seed: int | None = None, **batching: Any) -> DataBundle:
    """TREC questions (see text_bundle for `batching`); `labels` is "coarse" (6) or "fine" (50).
    `split_seed` draws the validation questions (default: `seed`)."""
    splits = load_trec_hub() if source == "hub" else load_trec_files(data_dir)
    full_train, test = splits["train"], splits["test"]
    class_names = COARSE_LABELS if labels == "coarse" else sorted({q.fine for q in full_train})
    label_index = {name: i for i, name in enumerate(class_names)}

    def labelled(questions: list[Question]) -> LabelledTexts:
        unknown = sorted({getattr(q, labels) for q in questions} - set(label_index))
        if unknown:
            raise DataError(f"test labels {', '.join(unknown)} never occur in the training data")
        return [q.text for q in questions], [label_index[getattr(q, labels)] for q in questions]

    train_idx, val_idx = split_train_val(len(full_train), val_size, seed if split_seed is None else split_seed,
                                         limit_train)
    return text_bundle("trec", labelled([full_train[i] for i in train_idx.tolist()]),
                       labelled([full_train[i] for i in val_idx.tolist()]), labelled(test), class_names, seed=seed,
                       **batching)
