"""Helpers shared by the benchmarks: machine facts, peak memory, tables and saved results."""
from __future__ import annotations

import os
import resource
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS_DIR = os.path.join(ROOT, "bench", "results")


def machine() -> dict:
    """What the numbers were measured on (utils.runtime.machine_description)."""
    from utils.runtime import machine_description  # here, so that processes that only start workers need not import torch
    return machine_description()


def commit() -> str:
    """The checked-out commit, with '+changes' when the working tree differs from it."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Rows as an aligned text table."""
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def save_results(name: str, payload: dict, peak_mib: float | None = None) -> str:
    """Write bench/results/<name>.json with the machine facts and peak memory (this process's unless given)
    added; returns the path."""
    from utils.storage.files import save_json
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    peak = peak_rss_mib() if peak_mib is None else peak_mib
    save_json(path, {"machine": machine(), "command": " ".join(["python", *sys.argv]), "commit": commit(),
                     "peak_rss_mib": round(peak, 1), **payload})
    print(f"saved {os.path.relpath(path, ROOT)}")
    return path


def tutorial_loader(data_dir: str, train: bool, batch_size: int, shuffle: bool, workers: int = 0,
                    pin_memory: bool = False):
    """The usual tutorial pipeline: torchvision FashionMNIST, ToTensor + Normalize, DataLoader.

    torchvision unpacks the .gz files beside themselves, so they are copied to a temp folder first.
    """
    import shutil
    import tempfile

    import torch
    from torchvision import datasets, transforms
    root = os.path.join(tempfile.gettempdir(), "bench-torchvision-fashion")
    raw = os.path.join(root, "FashionMNIST", "raw")
    if not os.path.isdir(raw):
        shutil.copytree(os.path.join(data_dir, "FashionMNIST", "raw"), raw)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    dataset = datasets.FashionMNIST(root, train=train, download=True, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       pin_memory=pin_memory, persistent_workers=workers > 0)
