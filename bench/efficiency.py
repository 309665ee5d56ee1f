"""How close the CNN training step comes to this machine's dense float32 matmul speed.

    python bench/efficiency.py [--batch-sizes 64 256]

Counts the FLOPs of one forward+backward pass with torch's FlopCounterMode, times training steps
(the engine's train_step, channels_last as the script's default; the fastest of 3 rounds), and
divides by the FLOP/s of large float32 matrix multiplications measured in the same run (also the
fastest of 3 rounds). Saves bench/results/efficiency.json.
"""
from __future__ import annotations

import argparse
import time

import common
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from models import build_model
from utils.errors import one_line_errors
from utils.train.engine import Trainer, train_step
from utils.train.optim import build_optimizer, lr_schedule
from utils.runtime import Runtime

CPU = Runtime(torch.device("cpu"), "fp32")


def best_seconds_per_step(step, steps: int, rounds: int = 3) -> float:
    """Seconds per call of `step`: the fastest of `rounds` timings of `steps` calls each."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def matmul_flops_per_s(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of (size x size) @ (size x size) float32 products, from the fastest of 3 rounds."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    return 2 * size ** 3 / best_seconds_per_step(lambda: a @ b, repeats)


def step_flops(model, inputs, targets) -> int:
    """FLOPs of one forward and backward pass."""
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(inputs), targets).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    peak = matmul_flops_per_s()
    rows = []
    for batch_size in args.batch_sizes:
        for channels_last in (False, True):
            torch.manual_seed(0)
            model = build_model("cnn")
            inputs, targets = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            flops = step_flops(model, inputs, targets)
            trainer = Trainer(model, build_optimizer("adam", model.parameters(), 1e-3), CPU,
                              lr_schedule("none", 1e-3, 1), torch.amp.GradScaler("cpu", enabled=False))
            for _ in range(10):
                train_step(trainer, [(inputs, targets, None)])
            seconds = best_seconds_per_step(lambda: train_step(trainer, [(inputs, targets, None)]), args.steps)
            rows.append({"batch_size": batch_size, "channels_last": channels_last, "gflop_per_step": flops / 1e9,
                         "step_ms": seconds * 1e3, "gflop_per_s": flops / seconds / 1e9,
                         "fraction_of_matmul": flops / seconds / peak})
    print(f"dense float32 matmul (2048^3): {peak / 1e9:.1f} GFLOP/s")
    common.print_table(rows, ["batch_size", "channels_last", "gflop_per_step", "step_ms", "gflop_per_s",
                              "fraction_of_matmul"])
    common.save_results("efficiency", {"matmul_gflop_per_s": peak / 1e9, "rows": rows})


if __name__ == "__main__":
    one_line_errors(main)
