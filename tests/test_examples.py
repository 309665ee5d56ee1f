"""The one shape of labelled examples and the one way splits are held out of them (data.examples)."""
import pytest
import torch

from data import DataError
from data.examples import (Examples, Holdout, LabelledData, class_quotas, data_fingerprint, labelled, split,
                           stratified_split, with_test_set)


def texts(labels: list[int], prefix: str = "t") -> Examples:
    return Examples([f"{prefix}{i}" for i in range(len(labels))], torch.tensor(labels))


def test_the_stratified_hold_out_takes_a_share_of_every_class():
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 2)
    keep, held = stratified_split(labels, 0.1, seed=0)
    assert sorted(labels[held].tolist()) == [0] * 5 + [1] + [2]
    assert len(keep) + len(held) == 62 and not set(keep.tolist()) & set(held.tolist())
    assert torch.equal(stratified_split(labels, 0.1, seed=0)[1], held)
    assert not torch.equal(stratified_split(labels, 0.1, seed=1)[1], held)  # the seed draws it


def test_a_hold_out_of_a_count_is_exactly_that_many_shared_by_class_size():
    labels = torch.tensor([0] * 86 + [1] * 1162 + [2] * 1250 + [3] * 1223 + [4] * 835 + [5] * 896)  # TREC's
    keep, held = stratified_split(labels, 0.0, seed=0, count=500)
    assert len(held) == 500 and len(keep) == len(labels) - 500
    counts = torch.bincount(labels[held], minlength=6).tolist()
    assert counts == [8, 106, 115, 112, 77, 82]  # floors of the shares, the 3 left to the largest remainders
    assert class_quotas([6000] * 10, 0.0, 5000) == [500] * 10


def test_split_holds_out_what_a_source_lacks_test_first_then_validation():
    data = LabelledData({"train": texts([0] * 40 + [1] * 40)}, ["a", "b"])
    parts = split(data, Holdout(seed=0, val_fraction=0.25, test_fraction=0.1))
    assert [len(parts[name]) for name in ("train", "val", "test")] == [54, 18, 8]
    assert torch.bincount(parts["test"].labels).tolist() == [4, 4] and "8 of the training examples" in data.notes[0]
    seen = [text for name in ("train", "val", "test") for text in parts[name].inputs]
    assert sorted(seen) == sorted(data.splits["train"].inputs)  # every example once
    again = split(LabelledData({"train": texts([0] * 40 + [1] * 40)}, ["a", "b"]),
                  Holdout(seed=1, split_seed=0, val_fraction=0.25, test_fraction=0.1))
    assert again["test"].inputs != parts["test"].inputs  # the seed draws the test...
    assert not set(again["val"].inputs) & set(again["test"].inputs)  # ...and --split-seed the validation


def test_split_keeps_a_sources_own_splits_and_limits_training_by_seed():
    own = {"train": texts([0, 1] * 30), "val": texts([0, 1], "v"), "test": texts([1, 0], "s")}
    parts = split(LabelledData(dict(own), ["a", "b"]), Holdout(seed=3, val_size=5, limit_train=10))
    assert parts["val"] is own["val"] and parts["test"] is own["test"]
    assert len(parts["train"]) == 10 and parts["train"].inputs != own["train"].inputs[:10]  # drawn, not the first
    with pytest.raises(DataError, match="--val-size 60 leaves no training examples"):
        split(LabelledData({"train": texts([0, 1] * 30), "test": texts([0])}, ["a", "b"]), Holdout(val_size=60))


def test_a_separate_test_set_is_mapped_to_the_training_classes():
    data = LabelledData({"train": texts([0, 1, 2])}, ["a", "b", "c"])
    test = LabelledData({"train": texts([0, 1], "x"), "test": texts([0], "y")}, ["c", "a"])
    joined = with_test_set(data, "t.csv", lambda spec: test)
    assert joined.splits["test"].inputs == ["x0", "x1", "y0"] and joined.splits["test"].labels.tolist() == [2, 0, 2]
    with pytest.raises(DataError, match="--test-dataset t.csv has classes the training data lacks: z"):
        with_test_set(data, "t.csv", lambda spec: LabelledData({"train": texts([0])}, ["z"]))
    assert with_test_set(data, "", lambda spec: test) is data


def test_the_fingerprint_is_of_the_examples_not_their_order_or_split():
    one = LabelledData({"train": texts([0, 1, 1]), "test": texts([0], "s")}, ["a", "b"])
    other = LabelledData({"train": Examples(["s0", "t2", "t0", "t1"], torch.tensor([0, 1, 0, 1]))}, ["a", "b"])
    assert data_fingerprint(one) == data_fingerprint(other)
    relabelled = LabelledData({"train": Examples(["s0", "t2", "t0", "t1"], torch.tensor([0, 1, 1, 1]))}, ["a", "b"])
    files = LabelledData({"train": Examples(["s0", "t2", "t0", "t1"], torch.tensor([0, 1, 0, 1]), list("wxyz"))},
                         ["a", "b"])
    assert len({data_fingerprint(d) for d in (one, relabelled, files)}) == 3


def test_labels_as_written_become_class_indices_and_an_unseen_one_is_one_error():
    data = labelled("--dataset x.csv", {"train": (["p", "q", "r"], ["b", "a", "b"]), "test": (["s"], ["a"])})
    assert data.class_names == ["a", "b"] and data.splits["train"].labels.tolist() == [1, 0, 1]
    assert labelled("TREC", {"train": (["p"], ["b"])}, ["b", "a"]).splits["train"].labels.tolist() == [0]
    with pytest.raises(DataError, match="^--dataset x.csv: the val split has labels the training split lacks: c$"):
        labelled("--dataset x.csv", {"train": (["p", "q"], ["a", "b"]), "val": (["s"], ["c"])})
