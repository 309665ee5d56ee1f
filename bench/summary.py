"""The README's results tables, printed as Markdown from bench/results/*.json.

    python bench/summary.py
"""
from __future__ import annotations

import glob
import json
import os

import common
from utils.errors import one_line_errors


def load(name: str) -> dict | None:
    path = os.path.join(common.RESULTS_DIR, f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None


def markdown_table(header: list[str], rows: list[list]) -> None:
    """Print a Markdown table followed by a blank line."""
    for cells in [header, ["---"] * len(header), *rows]:
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print()


def main() -> None:
    seeds = sorted(glob.glob(os.path.join(common.RESULTS_DIR, "seeds-*.json")))
    if seeds:
        print("| recipe | command | test accuracy (mean ± std) | validation accuracy (mean) | seeds | "
              "training s per run | peak memory |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for path in seeds:
            result = json.load(open(path))
            seconds = sum(r["train_seconds"] for r in result["rows"]) / len(result["rows"])
            val_acc = sum(r["best_val_acc"] for r in result["rows"]) / len(result["rows"])
            tag = os.path.basename(path)[len(f"seeds-{result['script']}-"):-len(".json")]  # "" without --tag
            tag_flag = f" --tag {tag}" if tag else ""
            command = f"`python bench/seeds.py {result['script']}{tag_flag} -- {' '.join(result['args'])}`"
            print(f"| {os.path.basename(path)[6:-5]} | {command} | {result['test_acc_mean']:.4f} ± "
                  f"{result['test_acc_std']:.4f} | {val_acc:.4f} | {len(result['rows'])} | {seconds:.0f} | "
                  f"{result['peak_rss_mib']:.0f} MiB |")
        print()
    throughput = load("throughput")
    if throughput:
        markdown_table(["pipeline (`python bench/throughput.py`)", "tutorial samples/s", "ours samples/s", "ratio"],
                       [[r["model"], r.get("tutorial_samples_per_s", ""), r["ours_samples_per_s"], r.get("ratio", "")]
                        for r in throughput["rows"]])
    efficiency = load("efficiency")
    if efficiency:
        print(f"Dense float32 matmul: {efficiency['matmul_gflop_per_s']:.1f} GFLOP/s (`python bench/efficiency.py`).\n")
        markdown_table(["batch", "channels_last", "GFLOP/step", "ms/step", "GFLOP/s", "fraction of matmul"],
                       [[r["batch_size"], r["channels_last"], f"{r['gflop_per_step']:.3f}", f"{r['step_ms']:.1f}",
                         f"{r['gflop_per_s']:.1f}", f"{r['fraction_of_matmul']:.2f}"] for r in efficiency["rows"]])
    timing = load("time_to_accuracy")
    if timing:
        markdown_table(["recipe (`python bench/time_to_accuracy.py`)", "s to 0.91", "s to 0.93", "best test acc"],
                       [[r["recipe"], r["seconds_to_0.91"], r["seconds_to_0.93"], f"{r['best_test_acc']:.4f}"]
                        for r in timing["rows"]])
    for result in (throughput, efficiency, timing):
        if result:
            machine = result["machine"]
            print(f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
                  f"CUDA: {machine['cuda'] or 'none'}.")
            break


if __name__ == "__main__":
    one_line_errors(main)
