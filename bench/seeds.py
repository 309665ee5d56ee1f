"""Test accuracy over several seeds for a script's recipe: mean, spread, time and memory.

    python bench/seeds.py cnn --seeds 0 1 2 -- --data-dir ../shared/data --preset fast
    python bench/seeds.py rnn --seeds 0 1 2 -- --data-dir ../shared/data --cell gru
    python bench/seeds.py transformer --tag minilm -- --data-dir ../shared/data --pretrained ../shared/models/all-MiniLM-L6-v2

Everything after `--` goes to the training script unchanged. Each run writes its own folder under
runs/bench-<script>-seed<N>; results go to bench/results/seeds-<script>[-<tag>].json.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", choices=["cnn", "dnn", "rnn", "transformer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tag", default="", help="suffix of the results file, e.g. the preset")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    script_args = argv[split + 1:]  # flags for the training script, after --
    trainer = importlib.import_module(f"train_{args.script}")
    name = f"seeds-{args.script}" + (f"-{args.tag}" if args.tag else "")
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        summary = trainer.main([*script_args, "--seed", str(seed), "--no-progress",
                                "--out-dir", f"runs/bench-{name}-seed{seed}"])
        rows.append({"seed": seed, "test_acc": summary["test_acc"], "best_val_acc": summary["best_val_acc"],
                     "best_epoch": summary["best_epoch"], "train_seconds": round(summary["train_seconds"], 1),
                     "wall_seconds": round(time.perf_counter() - start, 1)})
    accuracies = [row["test_acc"] for row in rows]
    result = {"script": args.script, "args": script_args, "rows": rows,
              "test_acc_mean": statistics.mean(accuracies),
              "test_acc_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}
    common.print_table(rows, ["seed", "test_acc", "best_val_acc", "best_epoch", "train_seconds", "wall_seconds"])
    print(f"test accuracy {result['test_acc_mean']:.4f} ± {result['test_acc_std']:.4f} over {len(rows)} seeds; "
          f"peak memory {common.peak_rss_mib():.0f} MiB")
    common.save_results(name, result)


if __name__ == "__main__":
    main()
