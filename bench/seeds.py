"""Test accuracy over several seeds for a script's recipe: mean, spread, time and memory.

    python bench/seeds.py cnn --seeds 0 1 2 -- --data-dir ../shared/data --preset fast
    python bench/seeds.py rnn --seeds 0 1 2 -- --data-dir ../shared/data --cell gru
    python bench/seeds.py transformer --tag minilm -- --data-dir ../shared/data --pretrained ../shared/models/all-MiniLM-L6-v2
    python bench/seeds.py cnn --tag default --jobs 3 -- --data-dir ../shared/data   # 3 seeds at once

Everything after `--` goes to the training script unchanged. Each run writes its own folder under
runs/bench-<script>-seed<N>; results go to bench/results/seeds-<script>[-<tag>].json. With `--jobs N` the
seeds run in N processes at once, each with the CPU's cores divided among them (at least one thread):
long single-threaded recipes finish sooner that way on a few cores, and each run is still reproducible
for its thread count. If this process dies, even by SIGKILL, its workers get SIGTERM (Linux), so each run
stops after its current step with its folder resumable, instead of running on unowned.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import importlib
import multiprocessing
import os
import resource
import signal
import statistics
import sys
import time


import common
from utils.errors import one_line_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", choices=["cnn", "dnn", "rnn", "transformer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tag", default="", help="suffix of the results file, e.g. the preset")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, in separate processes")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    script_args = argv[split + 1:]  # flags for the training script, after --
    name = f"seeds-{args.script}" + (f"-{args.tag}" if args.tag else "")
    if args.jobs < 1:
        parser.error("--jobs: at least 1")
    jobs = [(args.script, [*script_args, "--seed", str(seed), "--no-progress", "--out-dir",
                           f"runs/bench-{name}-seed{seed}"], seed) for seed in args.seeds]
    if args.jobs == 1:
        rows = [run_seed(*job) for job in jobs]
        peak_mib = common.peak_rss_mib()
    else:
        rows = run_in_parallel(jobs, args.jobs)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest run's
    accuracies = [row["test_acc"] for row in rows]
    result = {"script": args.script, "args": script_args, "jobs": args.jobs, "rows": rows,
              "test_acc_mean": statistics.mean(accuracies),
              "test_acc_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}
    common.print_table(rows, ["seed", "test_acc", "best_val_acc", "best_epoch", "train_seconds", "wall_seconds"])
    print(f"test accuracy {result['test_acc_mean']:.4f} ± {result['test_acc_std']:.4f} over {len(rows)} seeds; "
          f"peak memory {peak_mib:.0f} MiB")
    common.save_results(name, result, peak_mib=peak_mib)


def run_seed(script: str, script_argv: list[str], seed: int) -> dict:
    """Train `train_<script>.py` once with `script_argv`; returns the seed's row of the results table."""
    import torch  # in the worker processes only

    start = time.perf_counter()
    summary = importlib.import_module(f"train_{script}").main(script_argv)
    return {"seed": seed, "test_acc": summary["test_acc"], "best_val_acc": summary["best_val_acc"],
            "num_params": summary["num_params"],
            "best_epoch": summary["best_epoch"], "train_seconds": round(summary["train_seconds"], 1),
            "wall_seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads()}


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def start_worker(threads: int) -> None:
    """Set up a worker process: `threads` threads, and SIGTERM when the parent dies (where Linux allows)."""
    import torch  # in the worker processes only

    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != multiprocessing.parent_process().pid:  # the parent died before that
            sys.exit("error: bench/seeds.py stopped before this worker started")


def run_in_parallel(jobs: list[tuple], processes: int) -> list[dict]:
    """`run_seed(*job)` for every job, `processes` at a time, the CPU's cores divided among them; the
    rows in job order. A failed run is reported when it fails and the others go on; then this exits."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=start_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(run_seed, *job): job[2] for job in jobs}
        failed = []
        try:
            for future in concurrent.futures.as_completed(futures):
                if future.exception() is not None:  # the run's own error line is already printed
                    failed.append(futures[future])
                    print(f"seed {futures[future]} failed: {future.exception()!r}", file=sys.stderr)
        except BaseException:  # Ctrl-C or SIGTERM: the runs stop after their step (resumable), not run on
            for worker in multiprocessing.active_children():
                worker.terminate()
            raise
    if failed:
        sys.exit(f"error: seed(s) {', '.join(map(str, sorted(failed)))} failed; nothing saved (the others' run "
                 "folders hold their results)")
    return [future.result() for future in futures]


if __name__ == "__main__":
    one_line_errors(main)
