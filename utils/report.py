"""Test reports of a run, and a command that redraws them from the saved files.

    python -m utils.report RUN_DIR [RUN_DIR ...]          # redraw each run's figures and report
    python -m utils.report RUN_A RUN_B --compare cmp.png  # overlay the learning curves of several runs
"""
from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np
import torch

from utils.checkpoint import CheckpointError, read_json, read_jsonl, save_json, save_text
from utils.config import ArgumentParser
from utils.metrics import classification_report, confusion_matrix, format_report

MAX_IMAGE_MISTAKES = 36


def mistakes_of(test: dict[str, Any], data: Any) -> list[dict[str, Any]]:
    """The misclassified test examples, most confident first, in a JSON-ready form."""
    wrong = (test["predictions"] != test["targets"]).nonzero().flatten()
    confidence = test["probabilities"].max(dim=1).values
    wrong = wrong[confidence[wrong].argsort(descending=True)]
    if data.task == "fashion_mnist":
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
    from utils.plots import plot_confusion, plot_curves, plot_mistakes  # matplotlib only when drawing

    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics_path):
        plot_curves({os.path.basename(run_dir.rstrip("/")): read_jsonl(metrics_path)},
                    os.path.join(run_dir, "curves.png"))
    saved = read_predictions(os.path.join(run_dir, "predictions.json"))
    names = saved["class_names"]
    matrix = confusion_matrix(torch.tensor(saved["targets"]), torch.tensor(saved["predictions"]), len(names))
    report = classification_report(matrix, names)
    save_json(os.path.join(run_dir, "report.json"), {**report, "confusion_matrix": matrix.tolist()})
    plot_confusion(matrix.numpy(), names, os.path.join(run_dir, "confusion_matrix.png"))
    mistakes = saved["mistakes"]
    if saved["task"] == "fashion_mnist":
        plot_mistakes([np.array(m["example"], dtype=np.uint8) for m in mistakes],
                      [f"true {m['true']}\npred {m['predicted']} ({m['confidence']:.2f})" for m in mistakes],
                      os.path.join(run_dir, "mistakes.png"))
    else:
        save_text(os.path.join(run_dir, "mistakes.txt"), "".join(
            f"true {m['true']:5}  predicted {m['predicted']:5} ({m['confidence']:.2f})  {m['example']}\n"
            for m in mistakes))
    return format_report(report)


def read_predictions(path: str) -> dict[str, Any]:
    """predictions.json, checked: class names, equally long target and prediction lists of valid
    class indices, mistakes; anything else raises CheckpointError naming the file."""
    saved = read_json(path)
    try:
        names, targets, predictions = saved["class_names"], saved["targets"], saved["predictions"]
        valid = (isinstance(names, list) and names and len(targets) == len(predictions)
                 and all(isinstance(v, int) and 0 <= v < len(names) for v in [*targets, *predictions])
                 and isinstance(saved["mistakes"], list) and saved["task"] in ("fashion_mnist", "trec"))
    except (KeyError, TypeError):
        valid = False
    if not valid:
        raise CheckpointError(f"{path} is not a predictions file of this repository (it was edited or damaged); "
                              "evaluate the checkpoint again with --eval-only")
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: redraw the report of each run folder, optionally overlaying their curves."""
    from utils.cli import run_tool

    def run() -> None:
        parser = ArgumentParser(description="Redraw run reports without retraining.")
        parser.add_argument("run_dirs", nargs="+", help="run folders holding metrics.jsonl and predictions.json")
        parser.add_argument("--compare", default="", help="also write one PNG overlaying all runs' curves "
                            "(its folder is created if needed)")
        args = parser.parse_intermixed_args(argv)
        for run_dir in args.run_dirs:
            if not os.path.exists(os.path.join(run_dir, "predictions.json")):
                raise CheckpointError(f"{run_dir} has no predictions.json (not a finished run folder)")
            print(f"== {run_dir}\n{draw_run(run_dir)}")
        if args.compare:
            from utils.plots import plot_curves
            plot_curves({os.path.basename(d.rstrip("/")): read_jsonl(os.path.join(d, "metrics.jsonl"))
                         for d in args.run_dirs}, args.compare)
            print(f"wrote {args.compare}")
    return run_tool(run)


if __name__ == "__main__":
    sys.exit(main())
