"""Training throughput: the tutorial pipeline vs this project's, same model, batch size and optimizer.

    python bench/throughput.py --data-dir ../shared/data [--steps 400]

FashionMNIST: seed CNN and MLP at batch 64 with Adam 1e-3; (a) torchvision dataset + ToTensor +
Normalize + DataLoader and a plain loop, (b) whole-tensor batches and the shared engine with the
scripts' default settings (channels_last and augmentation for the CNN). TREC: the default LSTM
on padded, unbucketed batches vs length-bucketed ones. Each number is the median of --repeats
measurements, (a) and (b) alternating. Prints a table, saves bench/results/throughput.json.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time

import common
import torch
import torch.nn.functional as F

from data.tasks import fashion_mnist_bundle, trec_bundle
from models import build_model
from utils.engine import Trainer, train_one_epoch
from utils.optim import build_optimizer, lr_schedule
from utils.runtime import Runtime, seed_everything

CPU = Runtime(torch.device("cpu"), "fp32")


class Limited:
    """The first `steps` batches of a loader (whole epochs when steps is 0)."""

    def __init__(self, batches, steps: int):
        self.batches, self.steps = batches, steps

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.steps or None)


def ours(model, batches, steps: int) -> float:
    """Samples/s of the engine on our batches (after 20 warm-up steps)."""
    trainer = Trainer(model, build_optimizer("adam", model.parameters(), 1e-3), CPU, lr_schedule("none", 1e-3, 1),
                      torch.amp.GradScaler("cpu", enabled=False))
    train_one_epoch(trainer, Limited(batches, 20), 0, progress=False)
    return train_one_epoch(trainer, Limited(batches, steps), 1, progress=False)["samples_per_s"]


def tutorial(model, loader, steps: int) -> float:
    """Samples/s of a plain loop over a torchvision DataLoader (after 20 warm-up steps)."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    seen, start = 0, None
    for step, (images, targets) in enumerate(itertools.islice(loader, 20 + (steps or len(loader)))):
        if step == 20:
            seen, start = 0, time.perf_counter()
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(targets)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement (0 = a full epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each; the median is reported")
    args = parser.parse_args()
    rows = []
    for name, kwargs, channels_last, augment in (("cnn", {}, True, True), ("dnn", {"hidden_sizes": (256, 128)}, False, False)):
        loader = common.tutorial_loader(args.data_dir, True, 64, True)
        bundle = fashion_mnist_bundle(args.data_dir, batch_size=64, eval_batch_size=1024, val_size=5000, seed=0,
                                      augment=augment, channels_last=channels_last, device=torch.device("cpu"))
        bases, fasts = [], []
        for _ in range(args.repeats):  # alternate the two, so a slow spell of the machine hits both
            seed_everything(0)
            bases.append(tutorial(build_model(name, **kwargs), loader, args.steps))
            seed_everything(0)
            model = build_model(name, **kwargs)
            fasts.append(ours(model.to(memory_format=torch.channels_last) if channels_last else model,
                              bundle.train, args.steps))
        base, fast = statistics.median(bases), statistics.median(fasts)
        rows.append({"model": f"{name} (FashionMNIST, batch 64)", "tutorial_samples_per_s": round(base),
                     "ours_samples_per_s": round(fast), "ratio": round(fast / base, 2),
                     "tutorial_epoch_s": round(55000 / base, 1), "ours_epoch_s": round(55000 / fast, 1)})
    for bucket in (False, True):
        bundle = trec_bundle(args.data_dir, source="files", labels="coarse", batch_size=64, eval_batch_size=512,
                             val_size=500, seed=0, min_freq=1, bucket=bucket, device=torch.device("cpu"))
        seed_everything(0)
        model = build_model("rnn", cell="lstm", embed_dim=100, hidden_size=128, bidirectional=True, pooling="max",
                            dropout=0.5, **bundle.model_kwargs)
        padded = sum(ids.numel() for (ids, _), _ in bundle.train)
        speed = statistics.median(ours(model, bundle.train, 0) for _ in range(args.repeats))
        rows.append({"model": f"lstm (TREC, batch 64, {'bucketed' if bucket else 'padded'})",
                     "ours_samples_per_s": round(speed), "padded_tokens": padded})
    rows[-1]["ratio"] = round(rows[-1]["ours_samples_per_s"] / rows[-2]["ours_samples_per_s"], 2)
    common.print_table(rows, ["model", "tutorial_samples_per_s", "ours_samples_per_s", "ratio", "tutorial_epoch_s",
                              "ours_epoch_s", "padded_tokens"])
    common.save_results("throughput", {"steps": args.steps, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
