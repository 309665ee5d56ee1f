"""Labelled images and texts as DataBundles, and the two built-in data sets, FashionMNIST and TREC."""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import torch

from data import DataError
from data.bundle import Batching, DataBundle, ImageSpec, TextSpec, data_fingerprint, split_train_val
from data.fashion_mnist import CLASS_NAMES, MEAN, STD, load_fashion_mnist
from data.image_batches import ImageBatches
from data.text import TextBatches, delete_words
from data.tokenization import WordTokenizer, encode_all
from data.trec import COARSE_LABELS, Question, load_trec_files, load_trec_hub


Labelled = tuple[torch.Tensor, torch.Tensor]  # (images (N, C, H, W) or (N, H, W) uint8, labels (N,))
LabelledTexts = tuple[list[str], list[int]]  # (texts, label ids)


def image_bundle(task: str, splits: tuple[Labelled, Labelled, Labelled], class_names: list[str], batching: Batching,
                 spec: ImageSpec, model_kwargs: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
                 ) -> DataBundle:
    """Image splits (train, validation, test) as whole-split tensors: training batches augmented and
    shuffled, evaluation batches in order. `meta` may carry the files' own "data_sha256"."""
    train, val, test = splits
    evaluated = replace(spec, augment=False, random_erasing=0.0)
    fingerprint = (meta or {}).get("data_sha256") or data_fingerprint(  # the files' own where the source gave it
        (image.numpy().tobytes() for images, _ in splits for image in images),
        (label for _, labels in splits for label in labels.tolist()), list(class_names))
    return DataBundle(
        task=task,
        train=ImageBatches(*train, batching.batch_size, spec, batching.order(shuffle=True), batching.device),
        val=ImageBatches(*val, batching.eval_batch_size, evaluated, batching.order(shuffle=False), batching.device),
        test=ImageBatches(*test, batching.eval_batch_size, evaluated, batching.order(shuffle=False), batching.device),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), **(model_kwargs or {})},
        meta={"mean": spec.mean, "std": spec.std, **(meta or {}), "data_sha256": fingerprint},
        test_examples=test[0],
    )


def fashion_mnist_bundle(data_dir: str, batching: Batching, spec: ImageSpec, val_size: int, limit_train: int = 0,
                         split_seed: int | None = None) -> DataBundle:
    """FashionMNIST, normalised by its own mean and std. `split_seed` draws the validation examples
    (default: the batching seed, which also orders the batches)."""
    splits = load_fashion_mnist(data_dir)
    full_train, test = splits["train"], splits["test"]
    train_idx, val_idx = split_train_val(len(full_train.labels), val_size,
                                         batching.seed if split_seed is None else split_seed, limit_train)
    return image_bundle("fashion_mnist", ((full_train.images[train_idx], full_train.labels[train_idx]),
                                          (full_train.images[val_idx], full_train.labels[val_idx]),
                                          (test.images, test.labels)),
                        CLASS_NAMES, batching, replace(spec, mean=MEAN, std=STD), meta={"image_size": 28})


def text_bundle(task: str, splits: tuple[LabelledTexts, LabelledTexts, LabelledTexts], class_names: list[str],
                batching: Batching, spec: TextSpec, meta: dict[str, Any] | None = None) -> DataBundle:
    """Texts (train, validation, test) with label ids as bucketed batches of token ids.

    `spec.tokenizer` (a checkpoint's, or a pretrained model's) turns texts into ids; without one, a word
    vocabulary is built from the training texts only. Texts are cut to `spec.max_length` tokens, so that
    one huge line cannot blow up the padded tensors; the notes say how many were. `spec.perturbed_copies`
    adds that many copies of each training text with words dropped at random (`delete_words`; the same
    copies for the same seed, whatever the tokenizer), for a teacher to label.
    """
    train, val, test = splits
    fingerprint = data_fingerprint((text.encode() for part in splits for text in part[0]),
                                   (label for part in splits for label in part[1]), list(class_names))
    tokenizer = spec.tokenizer or WordTokenizer.build(train[0], spec.min_freq, spec.split_words)
    rng = random.Random(batching.seed)
    train_texts = train[0] + [delete_words(text, rng) for _ in range(spec.perturbed_copies) for text in train[0]]
    train = (train_texts, train[1] * (spec.perturbed_copies + 1))
    notes = []

    def batches(split: LabelledTexts, size: int, shuffle: bool, name: str) -> TextBatches:
        encoded, cut = encode_all(tokenizer, split[0], spec.max_length)
        if cut:
            notes.append(f"note: cut {cut} {name} text(s) to --max-length {spec.max_length} tokens")
        return TextBatches(encoded, split[1], size, batching.order(shuffle), batching.device, spec.bucket,
                           tokenizer.pad_id)

    return DataBundle(
        task=task,
        train=batches(train, batching.batch_size, shuffle=True, name="training"),
        val=batches(val, batching.eval_batch_size, shuffle=False, name="validation"),
        test=batches(test, batching.eval_batch_size, shuffle=False, name="test"),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), "vocab_size": tokenizer.vocab_size,
                      "padding_idx": tokenizer.pad_id},
        meta={"tokenizer": tokenizer.state(), "max_length": spec.max_length, **(meta or {}),
              "data_sha256": fingerprint},
        test_examples=list(test[0]),
        notes=notes,
    )


def trec_bundle(data_dir: str, batching: Batching, spec: TextSpec, val_size: int, labels: str = "coarse",
                source: str = "files", limit_train: int = 0, split_seed: int | None = None) -> DataBundle:
    """TREC questions; `labels` is "coarse" (6) or "fine" (50), `source` the original label files or the
    hub. `split_seed` draws the validation questions (default: the batching seed)."""
    splits = load_trec_hub() if source == "hub" else load_trec_files(data_dir)
    full_train, test = splits["train"], splits["test"]
    class_names = COARSE_LABELS if labels == "coarse" else sorted({q.fine for q in full_train})
    label_index = {name: i for i, name in enumerate(class_names)}

    def labelled(questions: list[Question]) -> LabelledTexts:
        unknown = sorted({getattr(q, labels) for q in questions} - set(label_index))
        if unknown:
            raise DataError(f"test labels {', '.join(unknown)} never occur in the training data")
        return [q.text for q in questions], [label_index[getattr(q, labels)] for q in questions]

    train_idx, val_idx = split_train_val(len(full_train), val_size,
                                         batching.seed if split_seed is None else split_seed, limit_train)
    return text_bundle("trec", (labelled([full_train[i] for i in train_idx.tolist()]),
                                labelled([full_train[i] for i in val_idx.tolist()]), labelled(test)),
                       class_names, batching, spec)
