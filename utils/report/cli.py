"""Redraw run reports from the saved files, without retraining.

    python -m utils.report RUN_DIR [RUN_DIR ...]          # redraw each run's figures and report
    python -m utils.report RUN_A RUN_B --compare cmp.png  # overlay the learning curves of several runs
"""
from __future__ import annotations

import os
from typing import Sequence

from utils.flags import ArgumentParser
from utils.errors import CheckpointError, run_tool
from utils.report.runs import draw_run, read_history, run_labels


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: redraw the report of each run folder, optionally overlaying their curves."""
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
            from utils.report.plots import plot_curves
            plot_curves({label: read_history(os.path.join(run_dir, "metrics.jsonl"))
                         for label, run_dir in zip(run_labels(args.run_dirs), args.run_dirs)}, args.compare)
            print(f"wrote {args.compare}")
    return run_tool(run)

