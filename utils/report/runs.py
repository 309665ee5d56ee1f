"""A run's test reports: predictions.json, then the figures, report.json and mistakes drawn from the saved files."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from data.bundle import TASK_KINDS, kind_of
from utils.errors import CheckpointError
from utils.storage.files import read_json, read_jsonl, save_json, save_text
from utils.report.metrics import classification_report, confusion_matrix, format_report

MAX_IMAGE_MISTAKES = 36


def mistakes_of(test: dict[str, Any], data: Any) -> list[dict[str, Any]]:
    """The misclassified test examples, most confident first, in a JSON-ready form."""
    wrong = (test["predictions"] != test["targets"]).nonzero().flatten()
    confidence = test["probabilities"].max(dim=1).values
    wrong = wrong[confidence[wrong].argsort(descending=True)]
    if kind_of(data.task) == "image":
        wrong = wrong[:MAX_IMAGE_MISTAKES]
    rows = []
    for index in wrong.tolist():
        example = data.test_examples[index]
        rows.append({"index": index, "true": data.class_names[test["targets"][index]],
                     "predicted": data.class_names[test["predictions"][index]],
                     "confidence": round(confidence[index].item(), 4),
                     "example": example.tolist() if isinstance(example, torch.Tensor) else example})
    return rows


def write_test_report(out_dir: str, test: dict[str, Any], data: Any) -> str:
    """Save predictions.json for the test set, draw every figure, and return the printed report."""
    save_json(os.path.join(out_dir, "predictions.json"), {
        "task": data.task, "class_names": data.class_names,
        "targets": test["targets"].tolist(), "predictions": test["predictions"].tolist(),
        "mistakes": mistakes_of(test, data)})
    return draw_run(out_dir)


def draw_run(run_dir: str) -> str:
    """(Re)draw curves.png, confusion_matrix.png, report.json and mistakes.* from saved files."""
    from utils.report.plots import plot_confusion, plot_curves, plot_mistakes  # matplotlib only when drawing

    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics_path):
        plot_curves({run_label(run_dir): read_history(metrics_path)}, os.path.join(run_dir, "curves.png"))
    saved = read_predictions(os.path.join(run_dir, "predictions.json"))
    names = saved["class_names"]
    matrix = confusion_matrix(torch.tensor(saved["targets"]), torch.tensor(saved["predictions"]), len(names))
    report = classification_report(matrix, names)
    save_json(os.path.join(run_dir, "report.json"), {**report, "confusion_matrix": matrix.tolist()})
    plot_confusion(matrix.numpy(), names, os.path.join(run_dir, "confusion_matrix.png"))
    mistakes = saved["mistakes"]
    if kind_of(saved["task"]) == "image":
        plot_mistakes([np.array(m["example"], dtype=np.uint8) for m in mistakes],
                      [f"true {m['true']}\npred {m['predicted']} ({m['confidence']:.2f})" for m in mistakes],
                      os.path.join(run_dir, "mistakes.png"))
    else:
        save_text(os.path.join(run_dir, "mistakes.txt"), "".join(
            f"true {m['true']:5}  predicted {m['predicted']:5} ({m['confidence']:.2f})  {m['example']}\n"
            for m in mistakes))
    return format_report(report)


def run_label(run_dir: str) -> str:
    """A run's name in figures: its folder's name."""
    return os.path.basename(os.path.normpath(run_dir))


def run_labels(run_dirs: list[str]) -> list[str]:
    """A distinct label for each run: its folder's name, or its whole path where names repeat."""
    names = [run_label(run_dir) for run_dir in run_dirs]
    labels = [os.path.normpath(run_dir) if names.count(name) > 1 else name for name, run_dir in zip(names, run_dirs)]
    return [f"{label} ({number})" if labels.count(label) > 1 else label for number, label in enumerate(labels, 1)]


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_history(path: str) -> list[dict[str, Any]]:
    """metrics.jsonl, checked: one object per epoch with its whole-number epoch and numbers (or null
    for a value that was not finite); else CheckpointError naming the file and line."""
    rows = read_jsonl(path)
    for number, row in enumerate(rows, 1):
        if not (isinstance(row.get("epoch"), int) and all(value is None or is_number(value) for value in row.values())):
            raise CheckpointError(f"{path}, line {number}: not an epoch's metrics (an epoch number and numbers); "
                                  "the file was edited")
    return rows


def valid_mistake(mistake: Any, names: list[str]) -> bool:
    """A mistake row as write_test_report saves it."""
    return (isinstance(mistake, dict) and mistake.get("true") in names and mistake.get("predicted") in names
            and is_number(mistake.get("confidence")) and "example" in mistake)


def read_predictions(path: str) -> dict[str, Any]:
    """predictions.json, checked: class names, equally long target and prediction lists of valid
    class indices, mistakes; anything else raises CheckpointError naming the file."""
    saved = read_json(path)
    try:
        names, targets, predictions = saved["class_names"], saved["targets"], saved["predictions"]
        valid = (isinstance(names, list) and names and all(isinstance(name, str) for name in names)
                 and len(targets) == len(predictions)
                 and all(isinstance(v, int) and 0 <= v < len(names) for v in [*targets, *predictions])
                 and isinstance(saved["mistakes"], list) and all(valid_mistake(m, names) for m in saved["mistakes"])
                 and saved["task"] in TASK_KINDS)
    except (KeyError, TypeError):
        valid = False
    if not valid:
        raise CheckpointError(f"{path} is not a predictions file of this repository (it was edited or damaged); "
                              "evaluate the checkpoint again with --eval-only")
    return saved
