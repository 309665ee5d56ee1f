"""Peak memory and speed of fine-tuning a pretrained encoder with and without gradient checkpointing,
and of the largest batch taken as --accumulate smaller ones (--grad-accum-steps).

    python bench/checkpointing.py --pretrained ../shared/models/all-MiniLM-L6-v2 --batch-sizes 32 128

Each setting trains in its own process (so each peak resident memory is its own): the model of
train_transformer.py --pretrained, AdamW, the engine's train_step, on random questions of --length
tokens; seconds per optimizer step are the fastest of 3 rounds after a warm-up step. Saves
bench/results/checkpointing.json with the machine and command.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import common


def measure(pretrained: str, batch_size: int, length: int, steps: int, checkpointing: bool, accumulate: int = 1) -> dict:
    """Train `steps` optimizer steps of `accumulate` batches each in this process; returns seconds per
    step and this process's peak memory."""
    import torch

    from efficiency import CPU, best_seconds_per_step
    from models import build_model
    from models.transformer import load_pretrained_weights
    from utils.pretrained import load_pretrained_encoder
    from utils.train.engine import Trainer, train_step
    from utils.train.optim import build_optimizer, lr_schedule

    torch.manual_seed(0)
    encoder = load_pretrained_encoder(pretrained)
    model = build_model("pretrained", encoder_config=encoder.config, num_classes=6)
    load_pretrained_weights(model, encoder.weights)
    del encoder
    if checkpointing:
        model.enable_gradient_checkpointing()
    trainer = Trainer(model.train(), build_optimizer("adamw", model.parameters(), 1e-4), CPU,
                      lr_schedule("none", 1e-4, 10 ** 6), torch.amp.GradScaler("cpu", enabled=False))
    batch = [((torch.randint(1000, 20000, (batch_size, length)), torch.full((batch_size,), length)),
              torch.randint(0, 6, (batch_size,)), None)] * accumulate
    train_step(trainer, batch)  # warm-up: the optimizer's state exists from here on
    seconds = best_seconds_per_step(lambda: train_step(trainer, batch), steps)
    return {"batch_size": batch_size, "accumulate": accumulate, "length": length, "checkpointing": checkpointing,
            "seconds_per_step": round(seconds, 4), "examples_per_s": round(batch_size * accumulate / seconds, 1),
            "peak_rss_mib": round(common.peak_rss_mib(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default="../shared/models/all-MiniLM-L6-v2")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--length", type=int, default=64, help="tokens per question")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing round")
    parser.add_argument("--accumulate", type=int, default=4, help="also: the largest batch as this many smaller ones")
    parser.add_argument("--worker", type=str, default="", help=argparse.SUPPRESS)  # "BATCH,CHECKPOINTING,ACCUMULATE"
    args = parser.parse_args()
    if args.worker:
        batch_size, checkpointing, accumulate = (int(part) for part in args.worker.split(","))
        print(json.dumps(measure(args.pretrained, batch_size, args.length, args.steps, bool(checkpointing), accumulate)))
        return
    largest = max(args.batch_sizes)
    settings = [(batch_size, checkpointing, 1) for batch_size in args.batch_sizes for checkpointing in (0, 1)]
    if args.accumulate > 1 and largest % args.accumulate == 0:
        settings.append((largest // args.accumulate, 0, args.accumulate))
    rows = []
    for batch_size, checkpointing, accumulate in settings:
        worker = [sys.executable, __file__, "--pretrained", args.pretrained, "--length", str(args.length),
                  "--steps", str(args.steps), "--worker", f"{batch_size},{checkpointing},{accumulate}"]
        rows.append(json.loads(subprocess.run(worker, capture_output=True, text=True, check=True).stdout.splitlines()[-1]))
        print(rows[-1], flush=True)
    common.print_table(rows, ["batch_size", "accumulate", "checkpointing", "seconds_per_step", "examples_per_s",
                              "peak_rss_mib"])
    common.save_results("checkpointing", {"pretrained": args.pretrained, "length": args.length, "rows": rows},
                        peak_mib=max(row["peak_rss_mib"] for row in rows))


if __name__ == "__main__":
    main()
