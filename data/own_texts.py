"""A user's texts as a DataBundle: a CSV/TSV/JSON/JSONL file or a Hugging Face dataset, its splits (its
own, or stratified hold-outs), class names, and batches of token ids. Plain values in (TextSource):
where the texts are and how to read them; what it found and did is in the bundle's notes."""
from __future__ import annotations

from dataclasses import dataclass, replace

from data import DataError
from data.builders import text_bundle
from data.bundle import Batching, DataBundle, TextSpec
from data.examples import Holdout, LabelledData, data_fingerprint, labelled, split, summary, with_test_set
from data.hf_datasets import find_columns, load_splits
from data.text_files import canonical_label, is_text_file, read_text_file


@dataclass(frozen=True)
class TextSource:
    """A user's texts: the data set (a file, a save_to_disk folder or a hub id) and an optional separate
    test set, the columns of texts and labels (empty: found) and a hub configuration."""

    dataset: str
    test_dataset: str = ""
    text_column: str = ""
    label_column: str = ""
    dataset_config: str = ""


def read_file_texts(path: str, source: TextSource) -> LabelledData:
    """The texts and labels of one file, as its training split; skipped rows are noted (an error when
    none is left)."""
    examples, skipped = read_text_file(path, source.text_column or "text", source.label_column or "label")
    notes = []
    if skipped:
        lines = ", ".join(str(line) for line in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        notes.append(f"note: skipped {len(skipped)} row(s) of {path} with an empty text or a missing label "
                     f"(line {lines})")
    if not examples:
        raise DataError(f"--dataset {path}: no row with both a text and a label")
    return labelled(f"--dataset {path}", {"train": ([example.text for example in examples],
                                                    [example.label for example in examples])}, None, notes)


def read_hub_texts(spec: str, source: TextSource) -> LabelledData:
    """The splits of a Hugging Face dataset; its class names are its ClassLabel's where it has one."""
    splits = load_splits(spec, source.dataset_config)
    text_column, label_column, names = find_columns(splits["train"], spec, "text", source.text_column,
                                                    source.label_column)
    found, notes = {}, []
    for name, part in splits.items():
        texts, labels = part[text_column], part[label_column]
        labels = [label if names else canonical_label(label) for label in labels]
        kept = [i for i, (text, label) in enumerate(zip(texts, labels))
                if isinstance(text, str) and text.strip() and label is not None and (names is None or label >= 0)]
        if len(kept) < len(texts):
            notes.append(f"note: skipped {len(texts) - len(kept)} {name} example(s) with an empty text or a "
                         "missing label")
        found[name] = ([texts[i] for i in kept], [names[labels[i]] if names else labels[i] for i in kept])
    return labelled(f"--dataset {spec}", found, names, notes)


def read_texts(source: TextSource) -> LabelledData:
    """The texts of `source`, with the examples of its separate test set as the test split."""
    def read(spec: str) -> LabelledData:
        return read_file_texts(spec, source) if is_text_file(spec) else read_hub_texts(spec, source)

    return with_test_set(read(source.dataset), source.test_dataset, read)


def own_text_bundle(source: TextSource, holdout: Holdout, batching: Batching, spec: TextSpec) -> DataBundle:
    """The texts of `source` as batches, split as `holdout` says (a word vocabulary, without
    `spec.tokenizer`, splits words at punctuation: raw text is not tokenized like TREC's files)."""
    data = read_texts(source)
    rows, labels = len(data.splits["train"]), data.splits["train"].labels
    if len(data.class_names) > max(100, rows // 2):  # nearly a class per row: a wrong label column
        raise DataError(f"--dataset {source.dataset}: its label column has {len(data.class_names):,} distinct "
                        f"values among {rows:,} rows, a class for almost every text: name the label column with "
                        "--label-column")
    if len(labels.unique()) < 2:
        raise DataError(f"--dataset {source.dataset}: its training texts have only one label; a classifier "
                        "needs two or more")
    fingerprint = data_fingerprint(data)
    splits = split(data, holdout, "texts")
    data.notes.append(summary(source.dataset, data.class_names, splits, "texts"))
    bundle = text_bundle("text", splits, data.class_names, batching,
                         replace(spec, split_words="punctuation"),  # raw text: words end at punctuation
                         {"dataset": source.dataset, "data_sha256": fingerprint})
    bundle.notes = data.notes + bundle.notes
    return bundle
