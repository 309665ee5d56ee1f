"""The one shape every data source returns (labelled examples by split, with their class names) and the
one seeded, stratified way the splits a source lacks are held out of its training examples."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from data import DataError, as_test_dataset
from data.bundle import class_names_of
from data.disk_images import in_memory, take

SPLITS = ("train", "val", "test")


@dataclass
class Examples:
    """Labelled examples of one split: `inputs` (uint8 (N, C, H, W) images, in memory or on disk, or a
    list of texts), `labels` (N,) int64 indices into the class names, and `digests`: each example's
    file content hash where the source read one file per example (None: the inputs are what is hashed)."""

    inputs: Any
    labels: torch.Tensor
    digests: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: torch.Tensor) -> Examples:
        """The examples at `indices`, in that order."""
        rows = indices.tolist()
        inputs = [self.inputs[i] for i in rows] if isinstance(self.inputs, list) else take(self.inputs, indices)
        digests = None if self.digests is None else [self.digests[i] for i in rows]
        return Examples(inputs, self.labels[indices], digests)

    def hashed(self) -> Iterator[bytes]:
        """What identifies each example: its file's hash, else its text or pixels."""
        if self.digests is not None:
            return (digest.encode() for digest in self.digests)
        if isinstance(self.inputs, list):
            return (text.encode() for text in self.inputs)
        return (image.numpy().tobytes() for image in in_memory(self.inputs))


@dataclass
class LabelledData:
    """What a source returns: its splits by name ("train", and "val" and "test" where it has its own),
    the class names its labels index, and notes on what it found and did."""

    splits: dict[str, Examples]
    class_names: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Holdout:
    """How the splits a source lacks are held out of its training examples, stratified by class: the
    test as `test_fraction` of each class (drawn with `seed`), the validation as `val_size` examples in
    all or, where 0, `val_fraction` of each class (drawn with `split_seed`, negative: `seed`); then at
    most `limit_train` training examples (0: all) are kept, drawn with `seed`."""

    seed: int = 0
    split_seed: int = -1
    val_fraction: float = 0.1
    val_size: int = 0
    test_fraction: float = 0.1
    limit_train: int = 0


def class_quotas(sizes: list[int], fraction: float, count: int) -> list[int]:
    """How many of each class (of `sizes` examples) to hold out: `count` in all, shared by the classes'
    sizes (largest remainders), or where 0 `fraction` of each (rounded; at least one of a class of two
    or more, never all of it)."""
    if not count:
        return [min(size - 1, max(1, round(fraction * size))) if size > 1 else 0 for size in sizes]
    total = sum(sizes)
    shares = [count * size / total for size in sizes]
    quotas = [int(share) for share in shares]
    by_remainder = sorted(range(len(sizes)), key=lambda c: quotas[c] - shares[c])
    for c in by_remainder[:count - sum(quotas)]:
        quotas[c] += 1
    return quotas


def stratified_split(labels: torch.Tensor, fraction: float, seed: int, count: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out), each in index order, of a seeded hold-out of each class's share
    (class_quotas: `count` in all, or where 0 `fraction` of each class)."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique().tolist()
    members = [(labels == label).nonzero().flatten() for label in classes]
    quotas = class_quotas([len(m) for m in members], fraction, count)
    held = [m[torch.randperm(len(m), generator=generator)][:quota] for m, quota in zip(members, quotas)]
    held_out = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[held_out] = False
    return keep.nonzero().flatten(), held_out


def limited(count: int, limit: int, seed: int) -> torch.Tensor:
    """Indices (in order) of at most `limit` of `count` training examples, drawn with `seed`: a file
    sorted by class gives every class its share, not the first classes all of it."""
    if not limit or limit >= count:
        return torch.arange(count)
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def split(data: LabelledData, holdout: Holdout, unit: str = "examples") -> dict[str, Examples]:
    """{"train", "val", "test"}: the source's own splits, the missing test then validation split held
    out of its training examples as `holdout` says (a note says how many for the test), and the
    training split limited to `holdout.limit_train`."""
    train, parts = data.splits["train"], dict(data.splits)
    if holdout.val_size and "val" not in parts and holdout.val_size >= len(train):
        raise DataError(f"--val-size {holdout.val_size} leaves no training examples out of {len(train)}: "
                        "give a smaller --val-size")
    for part in ("test", "val"):
        if part not in parts:
            test = part == "test"
            seed = holdout.seed if test or holdout.split_seed < 0 else holdout.split_seed
            kept, held = stratified_split(train.labels, holdout.test_fraction if test else holdout.val_fraction, seed,
                                          0 if test else holdout.val_size)
            parts[part], train = train.take(held), train.take(kept)
            if test:
                data.notes.append(f"note: {len(held):,} of the training {unit} held out for the test "
                                  f"(--test-fraction {holdout.test_fraction:g}, stratified, seed {holdout.seed})")
    limit = holdout.limit_train
    parts["train"] = train.take(limited(len(train), limit, holdout.seed)) if 0 < limit < len(train) else train
    return {name: parts[name] for name in SPLITS}


def labelled(name: str, splits: dict[str, tuple[Any, list[str]]], class_names: list[str] | None = None,
             notes: list[str] | None = None) -> LabelledData:
    """Inputs (a list of texts, or images as one tensor) and their labels as written, by split, as
    LabelledData of `class_names` (None: the training split's labels, class_names_of); a label of another
    split that the training split lacks is a DataError naming the data set (`name`)."""
    class_names = list(class_names or class_names_of(splits["train"][1]))
    ids = {label: i for i, label in enumerate(class_names)}
    for split_name, (_, labels) in splits.items():
        unknown = sorted(set(labels) - set(ids))
        if unknown:
            raise DataError(f"{name}: the {split_name} split has labels the training split lacks: "
                            f"{', '.join(unknown[:5])}")
    return LabelledData({split_name: Examples(inputs, torch.tensor([ids[label] for label in labels], dtype=torch.long))
                         for split_name, (inputs, labels) in splits.items()}, class_names, notes or [])


def with_test_set(data: LabelledData, spec: str, read: Callable[[str], LabelledData]) -> LabelledData:
    """`data` whose test split is every example of the separate --test-dataset `spec` (none: `data`),
    read by `read`, its labels turned into `data`'s class indices; a class the training data lacks, or
    an error reading it, is a DataError naming --test-dataset."""
    if not spec:
        return data
    try:
        test = read(spec)
    except DataError as error:
        raise as_test_dataset(error) from error
    unknown = sorted(set(test.class_names) - set(data.class_names))
    if unknown:
        raise DataError(f"--test-dataset {spec} has classes the training data lacks: {', '.join(unknown[:5])}")
    index = torch.tensor([data.class_names.index(name) for name in test.class_names], dtype=torch.long)
    parts = [test.splits[name] for name in SPLITS if name in test.splits]
    joined = Examples([text for part in parts for text in part.inputs] if isinstance(parts[0].inputs, list)
                      else torch.cat([in_memory(part.inputs) for part in parts]),
                      index[torch.cat([part.labels for part in parts])],
                      None if any(part.digests is None for part in parts)
                      else [digest for part in parts for digest in part.digests])
    return LabelledData({**data.splits, "test": joined}, data.class_names, data.notes + test.notes)


def data_fingerprint(data: LabelledData) -> str:
    """A hash of a data set as a set of labelled examples (whatever their order or split; each its file's
    hash, else its text or pixels) and its class names: two runs with the same fingerprint saw the same data."""
    parts = data.splits.values()
    rows = sorted(hashlib.sha256(example + f"|{label}".encode()).digest()
                  for part in parts for example, label in zip(part.hashed(), part.labels.tolist()))
    digest = hashlib.sha256("\n".join(data.class_names).encode())
    for row in rows:
        digest.update(row)
    return digest.hexdigest()


def summary(name: str, class_names: list[str], splits: dict[str, Examples], unit: str, shape: str = "") -> str:
    """One line on a data set's classes and splits, e.g. 'data: x.csv: 6 classes, 4,360 training / 546
    validation / 546 test texts; smallest class 69 training texts'."""
    counts = torch.bincount(splits["train"].labels, minlength=len(class_names))
    return (f"data: {name}: {len(class_names)} classes, {len(splits['train']):,} training / {len(splits['val']):,} "
            f"validation / {len(splits['test']):,} test {unit}{shape}; smallest class {int(counts.min())} training "
            f"{unit}")
