"""Training throughput: the tutorial pipeline vs this project's, same model, batch size and optimizer.

    python bench/throughput.py --data-dir ../shared/data [--steps 400]

FashionMNIST: seed CNN and MLP at batch 64 with Adam 1e-3; (a) torchvision dataset + ToTensor +
Normalize + DataLoader and a plain loop, (b) whole-tensor batches and the shared engine with the
scripts' default settings (channels_last and augmentation for the CNN), in float32 and, on a CPU
with native bfloat16 (AMX or AVX512-BF16), in bf16 autocast too (what `--precision auto` picks there
for the CNN). TREC: the default LSTM on padded, unbucketed batches vs length-bucketed ones. Each
number is the median of --repeats measurements, (a) and (b) alternating. Prints a table, saves
bench/results/throughput.json (or --name).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time

import common
import torch
import torch.nn.functional as F

from data.builtin import fashion_mnist_bundle, trec_bundle
from data.examples import Holdout
from data.bundle import Batching, ImageSpec, TextSpec
from models import build_model
from utils.errors import one_line_errors
from utils.train.engine import Trainer, train_one_epoch
from utils.train.optim import build_optimizer, lr_schedule
from utils.runtime import Runtime, cpu_bf16_native, seed_everything


class Limited:
    """The first `steps` batches of a loader (whole epochs when steps is 0)."""

    def __init__(self, batches, steps: int):
        self.batches, self.steps = batches, steps

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.steps or None)

    def __len__(self) -> int:
        return min(self.steps, len(self.batches)) if self.steps else len(self.batches)


def ours(model, batches, steps: int, precision: str = "fp32") -> float:
    """Samples/s of the engine on our batches in `precision` on the CPU (after 20 warm-up steps)."""
    runtime = Runtime(torch.device("cpu"), precision)
    trainer = Trainer(model, build_optimizer("adam", model.parameters(), 1e-3), runtime, lr_schedule("none", 1e-3, 1),
                      torch.amp.GradScaler("cpu", enabled=False))
    train_one_epoch(trainer, Limited(batches, 20), 0)
    return train_one_epoch(trainer, Limited(batches, steps), 1)["samples_per_s"]


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
    parser.add_argument("--name", default="throughput", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    precisions = ["fp32", "bf16"] if cpu_bf16_native() else ["fp32"]
    rows = []
    for name, kwargs, channels_last, augment in (("cnn", {}, True, True), ("dnn", {"hidden_sizes": (256, 128)}, False, False)):
        loader = common.tutorial_loader(args.data_dir, True, 64, True)
        bundle = fashion_mnist_bundle(args.data_dir, Batching(64, 1024), ImageSpec(augment=augment,
                                                                                  channels_last=channels_last),
                                      Holdout(val_size=5000))
        bases, fasts = [], {precision: [] for precision in precisions}
        for _ in range(args.repeats):  # alternate them, so a slow spell of the machine hits each
            seed_everything(0)
            bases.append(tutorial(build_model(name, **kwargs), loader, args.steps))
            for precision in precisions:
                seed_everything(0)
                model = build_model(name, **kwargs)
                fasts[precision].append(ours(model.to(memory_format=torch.channels_last) if channels_last else model,
                                             bundle.train, args.steps, precision))
        base = statistics.median(bases)
        for precision in precisions:
            fast = statistics.median(fasts[precision])
            rows.append({"model": f"{name} (FashionMNIST, batch 64, ours in {precision})",
                         "tutorial_samples_per_s": round(base), "ours_samples_per_s": round(fast),
                         "ratio": round(fast / base, 2), "tutorial_epoch_s": round(55000 / base, 1),
                         "ours_epoch_s": round(55000 / fast, 1)})
    for bucket in (False, True):
        bundle = trec_bundle(args.data_dir, Batching(64, 512), TextSpec(min_freq=1, bucket=bucket),
                             Holdout(val_size=500))
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
    common.save_results(args.name, {"steps": args.steps, "repeats": args.repeats, "cpu_bf16_native": cpu_bf16_native(),
                                       "rows": rows})


if __name__ == "__main__":
    one_line_errors(main)
