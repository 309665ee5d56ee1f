"""A user's texts as a DataBundle: a CSV/TSV/JSON/JSONL file or a Hugging Face dataset, its splits (its
own, or stratified hold-outs), class names, and batches of token ids. Plain values in (TextSource):
where the texts are and how to read them; what it found and did is in the bundle's notes."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import torch

from data import DataError, as_test_dataset
from data.builtin import text_bundle
from data.bundle import Batching, DataBundle, TextSpec, class_names_of, hold_out_missing, limited
from data.hf_datasets import find_columns, load_splits
from data.text_files import canonical_label, is_text_file, read_text_file

Split = tuple[list[str], list[str]]  # (texts, labels as written)


@dataclass(frozen=True)
class TextSource:
    """A user's texts: the data set (a file, a save_to_disk folder or a hub id) and an optional separate
    test set, the columns of texts and labels (empty: found), a hub configuration, and the stratified
    shares held out where the data set has no validation or test split (the validation part drawn with
    `split_seed`, negative: the batching seed), and at most `limit_train` training texts (0: all), drawn
    with the batching seed."""

    dataset: str
    test_dataset: str = ""
    text_column: str = ""
    label_column: str = ""
    dataset_config: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = -1
    limit_train: int = 0


def file_split(path: str, source: TextSource, notes: list[str]) -> Split:
    """The texts and labels of one file; skipped rows are noted (an error when none is left)."""
    examples, skipped = read_text_file(path, source.text_column or "text", source.label_column or "label")
    if skipped:
        lines = ", ".join(str(line) for line in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        notes.append(f"note: skipped {len(skipped)} row(s) of {path} with an empty text or a missing label "
                     f"(line {lines})")
    if not examples:
        raise DataError(f"--dataset {path}: no row with both a text and a label")
    return [example.text for example in examples], [example.label for example in examples]


def hub_splits(spec: str, source: TextSource, notes: list[str]) -> tuple[dict[str, Split], list[str] | None]:
    """The splits of a Hugging Face dataset, and its class names when its labels are a ClassLabel."""
    splits = load_splits(spec, source.dataset_config)
    text_column, label_column, names = find_columns(splits["train"], spec, "text", source.text_column,
                                                    source.label_column)
    found = {}
    for split, part in splits.items():
        texts, labels = part[text_column], part[label_column]
        labels = [label if names else canonical_label(label) for label in labels]
        kept = [i for i, (text, label) in enumerate(zip(texts, labels))
                if isinstance(text, str) and text.strip() and label is not None and (names is None or label >= 0)]
        if len(kept) < len(texts):
            notes.append(f"note: skipped {len(texts) - len(kept)} {split} example(s) with an empty text or a "
                         "missing label")
        found[split] = ([texts[i] for i in kept], [names[labels[i]] if names else labels[i] for i in kept])
    return found, names


def subset(split: Split, indices: list[int]) -> Split:
    """The examples of `split` at `indices`."""
    return [split[0][i] for i in indices], [split[1][i] for i in indices]


def own_text_bundle(source: TextSource, batching: Batching, spec: TextSpec) -> DataBundle:
    """The texts of `source` as batches (a word vocabulary, without `spec.tokenizer`, splits words at
    punctuation: raw text is not tokenized like TREC's files)."""
    notes: list[str] = []
    if is_text_file(source.dataset):
        splits, names = {"train": file_split(source.dataset, source, notes)}, None
    else:
        splits, names = hub_splits(source.dataset, source, notes)
    if source.test_dataset:
        try:
            splits["test"] = (file_split(source.test_dataset, source, notes) if is_text_file(source.test_dataset)
                              else hub_splits(source.test_dataset, source, notes)[0]["train"])
        except DataError as error:
            raise as_test_dataset(error) from error
    class_names = names or class_names_of(splits["train"][1])
    rows = len(splits["train"][1])
    if len(class_names) > max(100, rows // 2):  # nearly a class per row: a wrong label column
        raise DataError(f"--dataset {source.dataset}: its label column has {len(class_names):,} distinct values "
                        f"among {rows:,} rows, a class for almost every text: name the label column with "
                        "--label-column")
    if len(set(splits["train"][1])) < 2:
        raise DataError(f"--dataset {source.dataset}: its training texts have only one label; a classifier "
                        "needs two or more")
    for split, (_, labels) in splits.items():
        unknown = sorted(set(labels) - set(class_names))
        if unknown:
            raise DataError(f"--dataset {source.dataset}: the {split} split has labels the training split lacks: "
                            f"{', '.join(unknown[:5])}")
    train, ids = splits["train"], {name: i for i, name in enumerate(class_names)}
    parts = hold_out_missing(torch.tensor([ids[label] for label in train[1]]), {"test", "val"} - set(splits),
                             {"test": source.test_fraction, "val": source.val_fraction}, batching.seed,
                             source.split_seed)
    splits.update({part: subset(train, index.tolist()) for part, index in parts.items() if part != "train"})
    train = subset(train, parts["train"].tolist())
    if "test" in parts:
        notes.append(f"note: {len(parts['test']):,} of the training texts held out for the test "
                     f"(--test-fraction {source.test_fraction:g}, stratified, seed {batching.seed})")
    if source.limit_train:
        train = subset(train, limited(len(train[1]), source.limit_train, batching.seed).tolist())

    def as_ids(split: Split) -> tuple[list[str], list[int]]:
        return list(split[0]), [ids[label] for label in split[1]]
    counts = Counter(train[1])
    notes.append(f"data: {source.dataset}: {len(class_names)} classes, {len(train[0]):,} training / "
                 f"{len(splits['val'][0]):,} validation / {len(splits['test'][0]):,} test texts; smallest class "
                 f"{min(counts.get(name, 0) for name in class_names)} training texts")
    bundle = text_bundle("text", (as_ids(train), as_ids(splits["val"]), as_ids(splits["test"])), class_names,
                         batching, replace(spec, split_words="punctuation"),  # raw text: words end at punctuation
                         meta={"dataset": source.dataset})
    bundle.notes = notes + bundle.notes
    return bundle
