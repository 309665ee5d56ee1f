"""Classification metrics from predictions and targets (pure functions, no plotting)."""
from __future__ import annotations

from typing import Any, Sequence

import torch


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def classification_report(matrix: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support; macro and weighted averages; accuracy."""
    matrix = matrix.double()
    true_positive = matrix.diag()
    support = matrix.sum(dim=1)
    predicted = matrix.sum(dim=0)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), torch.zeros_like(predicted))
    recall = torch.where(support > 0, true_positive / support.clamp(min=1), torch.zeros_like(support))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12),
                     torch.zeros_like(denominator))
    total = support.sum().item()
    per_class = {name: {"precision": precision[i].item(), "recall": recall[i].item(), "f1": f1[i].item(),
                        "support": int(support[i].item())} for i, name in enumerate(class_names)}
    weights = support / max(total, 1)

    def average(values: torch.Tensor, weighted: bool) -> float:
        return (values * weights).sum().item() if weighted else values.mean().item()

    return {
        "classes": per_class,
        "macro avg": {"precision": average(precision, False), "recall": average(recall, False),
                      "f1": average(f1, False), "support": int(total)},
        "weighted avg": {"precision": average(precision, True), "recall": average(recall, True),
                         "f1": average(f1, True), "support": int(total)},
        "accuracy": true_positive.sum().item() / max(total, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table, like scikit-learn's."""
    names = list(report["classes"]) + ["macro avg", "weighted avg"]
    width = max(len(name) for name in names) + 2
    lines = [f"{'':{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in report["classes"].items():
        lines.append(f"{name:{width}}{row['precision']:10.4f}{row['recall']:10.4f}{row['f1']:10.4f}{row['support']:10d}")
    lines.append("")
    for name in ("macro avg", "weighted avg"):
        row = report[name]
        lines.append(f"{name:{width}}{row['precision']:10.4f}{row['recall']:10.4f}{row['f1']:10.4f}{row['support']:10d}")
    lines.append(f"{'accuracy':{width}}{'':20}{report['accuracy']:10.4f}{report['macro avg']['support']:10d}")
    return "\n".join(lines)
