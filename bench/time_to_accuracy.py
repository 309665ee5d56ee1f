"""Wall-clock training seconds until FashionMNIST test accuracy first reaches 0.91 and 0.93.

    python bench/time_to_accuracy.py --data-dir ../shared/data [--tutorial-epochs 10] [-- CNN FLAGS]

(a) The tutorial recipe: seed CNN, torchvision DataLoader with ToTensor + Normalize, batch 64,
Adam 1e-3, plain loop. (b) Ours: train_cnn.py's recipe on the shared engine, by default
`--preset fast --epochs 2` (the one-cycle schedule squeezed into two epochs; pass other flags
after --). Test accuracy is measured after every epoch, for this benchmark
only; the timer counts training, not those evaluations. Saves bench/results/time_to_accuracy.json.
"""
from __future__ import annotations

import argparse
import sys
import time

import common
import torch
import torch.nn.functional as F

import train_cnn
from models import build_model
from utils.errors import one_line_errors
from utils.config import parse_config
from utils.train.engine import Trainer, train_one_epoch
from utils.train.evaluation import evaluate
from utils.train.experiment import build_optimization
from utils.runtime import Runtime, epoch_seed, seed_everything
from utils.data_setup import image_data

CPU = Runtime(torch.device("cpu"), "fp32")
TARGETS = (0.91, 0.93)


def first_reached(curve: list[dict]) -> dict:
    """Training seconds at the first epoch whose test accuracy reaches each target (None if never)."""
    return {f"seconds_to_{t}": next((row["train_seconds"] for row in curve if row["test_acc"] >= t), None)
            for t in TARGETS}


def tutorial_curve(data_dir: str, epochs: int) -> list[dict]:
    seed_everything(0)
    model = build_model("cnn")
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    train = common.tutorial_loader(data_dir, True, 64, True)
    test = common.tutorial_loader(data_dir, False, 1000, False)
    curve, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        for images, targets in train:
            loss = F.cross_entropy(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        elapsed += time.perf_counter() - start
        model.eval()
        with torch.inference_mode():
            correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test)
        curve.append({"epoch": epoch, "train_seconds": round(elapsed, 1), "test_acc": correct / 10000})
        print(f"tutorial epoch {epoch}: {curve[-1]}")
    return curve


def our_curve(cnn_flags: list[str]) -> tuple[list[dict], dict]:
    config = parse_config(train_cnn.CNNConfig, cnn_flags, "", train_cnn.PRESETS)
    seed_everything(config.seed)
    data = image_data(config, CPU)
    model = build_model("cnn", **config.model_kwargs(), **data.model_kwargs)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scaler, schedule = build_optimization(config, model, len(data.train), CPU)
    trainer = Trainer(model, optimizer, CPU, schedule, scaler, config.label_smoothing, config.grad_clip)
    curve, elapsed = [], 0.0
    for epoch in range(1, config.epochs + 1):
        data.train.set_epoch(epoch)
        seed_everything(epoch_seed(config.seed, epoch))  # as the engine's fit does
        elapsed += train_one_epoch(trainer, data.train, epoch)["seconds"]
        curve.append({"epoch": epoch, "train_seconds": round(elapsed, 1),
                      "test_acc": evaluate(model, data.test, CPU)["acc"]})
        print(f"ours epoch {epoch}: {curve[-1]}")
    return curve, vars(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--tutorial-epochs", type=int, default=10)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    cnn_flags = argv[split + 1:] or ["--preset", "fast", "--epochs", "2"]  # train_cnn.py flags, after --
    ours, config = our_curve(["--data-dir", args.data_dir, *cnn_flags])
    tutorial = tutorial_curve(args.data_dir, args.tutorial_epochs)
    rows = [{"recipe": "tutorial", **first_reached(tutorial), "best_test_acc": max(r["test_acc"] for r in tutorial)},
            {"recipe": "ours " + " ".join(cnn_flags), **first_reached(ours),
             "best_test_acc": max(r["test_acc"] for r in ours)}]
    for target in TARGETS:
        a, b = rows[0][f"seconds_to_{target}"], rows[1][f"seconds_to_{target}"]
        rows[1][f"speedup_to_{target}"] = round(a / b, 2) if a and b else None
    common.print_table(rows, ["recipe", "seconds_to_0.91", "seconds_to_0.93", "speedup_to_0.91", "speedup_to_0.93",
                              "best_test_acc"])
    common.save_results("time_to_accuracy", {"rows": rows, "tutorial_curve": tutorial, "our_curve": ours,
                                             "our_config": config})


if __name__ == "__main__":
    one_line_errors(main)
