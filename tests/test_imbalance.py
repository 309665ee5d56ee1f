"""Imbalanced classes: balanced class weights in the loss, macro-F1 beside accuracy, and the best epoch
picked on it."""
from __future__ import annotations

import json
import os

import pytest
import torch

import train_dnn
from conftest import image_args
from utils.report.metrics import classification_report, confusion_matrix
from utils.train.evaluation import macro_f1
from utils.train.losses import balanced_class_weights, distillation_loss


def test_balanced_weights_make_every_class_weigh_the_same():
    labels = torch.tensor([0] * 8 + [1] * 2 + [3] * 2)  # class 2 has no example
    weights = balanced_class_weights(labels, 4)
    assert weights.tolist() == pytest.approx([12 / (4 * 8), 12 / (4 * 2), 0.0, 12 / (4 * 2)])
    totals = [weights[c] * (labels == c).sum() for c in (0, 1, 3)]
    assert all(total == pytest.approx(totals[0]) for total in totals)
    logits, targets = torch.randn(12, 4), labels
    weighted = distillation_loss(logits, targets, None, 0.0, 1.0, class_weights=weights)
    expected = torch.nn.functional.cross_entropy(logits, targets, weight=weights)
    assert weighted.item() == pytest.approx(expected.item())


def test_macro_f1_matches_the_classification_report():
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    predicted = torch.tensor([0, 1, 0, 1, 2, 2, 2, 0, 2, 2])  # class 3 never predicted: F1 0
    tallies = [*torch.bincount(targets[predicted == targets], minlength=4).tolist(),
               *torch.bincount(predicted, minlength=4).tolist(), *torch.bincount(targets, minlength=4).tolist()]
    report = classification_report(confusion_matrix(targets, predicted, 4), ["a", "b", "c", "d"])
    assert macro_f1(tallies) == pytest.approx(report["macro avg"]["f1"], abs=1e-4)


def test_a_run_records_macro_f1_and_can_pick_its_best_epoch_by_it(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    summary = train_dnn.main(image_args(fashion_dir, out, "--epochs", "3", "--select-by", "macro_f1",
                                        "--class-weights", "balanced", "--hidden1-size", "16", "--hidden2-size", "8"))
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    best = max(rows, key=lambda row: row["val_macro_f1"])
    assert summary["best_epoch"] == best["epoch"] and summary["best_val_macro_f1"] == best["val_macro_f1"]
    assert summary["select_by"] == "macro_f1" and 0 <= summary["test_macro_f1"] <= 1
