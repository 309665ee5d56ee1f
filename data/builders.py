"""One builder per kind of data: labelled splits (data.examples) become a DataBundle of batches."""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from data.bundle import Batching, DataBundle, ImageSpec, TextSpec
from data.examples import Examples
from data.image_batches import ImageBatches
from data.text import TextBatches, delete_words
from data.tokenization import WordTokenizer, encode_all


def image_bundle(task: str, splits: dict[str, Examples], class_names: list[str], batching: Batching,
                 spec: ImageSpec, model_kwargs: dict[str, Any], meta: dict[str, Any]) -> DataBundle:
    """Image splits ("train", "val", "test") as batches: training batches augmented and shuffled,
    evaluation batches in order; `meta` (with the data set's "data_sha256") goes to the checkpoint."""
    evaluated = replace(spec, augment=False, random_erasing=0.0)

    def batches(part: Examples, size: int, spec: ImageSpec, shuffle: bool) -> ImageBatches:
        return ImageBatches(part.inputs, part.labels, size, spec, batching.order(shuffle), batching.device)

    return DataBundle(
        task=task,
        train=batches(splits["train"], batching.batch_size, spec, shuffle=True),
        val=batches(splits["val"], batching.eval_batch_size, evaluated, shuffle=False),
        test=batches(splits["test"], batching.eval_batch_size, evaluated, shuffle=False),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), **model_kwargs},
        meta={"mean": spec.mean, "std": spec.std, **meta},
        test_examples=splits["test"].inputs,
    )


def text_bundle(task: str, splits: dict[str, Examples], class_names: list[str], batching: Batching,
                spec: TextSpec, meta: dict[str, Any]) -> DataBundle:
    """Text splits ("train", "val", "test") as bucketed batches of token ids.

    `spec.tokenizer` (a checkpoint's, or a pretrained model's) turns texts into ids; without one, a word
    vocabulary is built from the training texts only. Texts are cut to `spec.max_length` tokens, so that
    one huge line cannot blow up the padded tensors; the notes say how many were. `spec.perturbed_copies`
    adds that many copies of each training text with words dropped at random (`delete_words`; the same
    copies for the same seed, whatever the tokenizer), for a teacher to label.
    """
    train = splits["train"]
    tokenizer = spec.tokenizer or WordTokenizer.build(train.inputs, spec.min_freq, spec.split_words)
    rng = random.Random(batching.seed)
    train_texts = train.inputs + [delete_words(text, rng) for _ in range(spec.perturbed_copies) for text in train.inputs]
    train_labels = train.labels.tolist() * (spec.perturbed_copies + 1)
    notes = []

    def batches(texts: list[str], labels: list[int], size: int, shuffle: bool, name: str) -> TextBatches:
        encoded, cut = encode_all(tokenizer, texts, spec.max_length)
        if cut:
            notes.append(f"note: cut {cut} {name} text(s) to --max-length {spec.max_length} tokens")
        return TextBatches(encoded, labels, size, batching.order(shuffle), batching.device, spec.bucket,
                           tokenizer.pad_id)

    def evaluated(name: str, what: str) -> TextBatches:
        return batches(splits[name].inputs, splits[name].labels.tolist(), batching.eval_batch_size, False, what)

    return DataBundle(
        task=task,
        train=batches(train_texts, train_labels, batching.batch_size, shuffle=True, name="training"),
        val=evaluated("val", "validation"),
        test=evaluated("test", "test"),
        class_names=list(class_names),
        model_kwargs={"num_classes": len(class_names), "vocab_size": tokenizer.vocab_size,
                      "padding_idx": tokenizer.pad_id},
        meta={"tokenizer": tokenizer.state(), "max_length": spec.max_length, **meta},
        test_examples=list(splits["test"].inputs),
        notes=notes,
    )
