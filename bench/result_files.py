"""Reading bench/results/*.json for the generated documents: results, their machine and command,
and Markdown tables."""
from __future__ import annotations

import json
import os

import common


def load(name: str) -> dict | None:
    path = os.path.join(common.RESULTS_DIR, f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None


def machine_of(result: dict) -> str:
    """'CPU model, N cores[, GPU]' of a result, or 'unknown'."""
    machine = result.get("machine") or {}
    if not machine.get("cpu"):
        return "unknown"
    return ", ".join(part for part in (machine["cpu"], f"{machine.get('cores', '?')} cores", machine.get("cuda")) if part)


def table(header: list[str], rows: list[list]) -> list[str]:
    """Markdown table lines followed by a blank line."""
    return ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in [header, ["---"] * len(header), *rows]] + [""]


def seed_rows(result: dict) -> list[dict]:
    """The per-seed rows of a seeds result (`rows`, or `runs` in hand-assembled files)."""
    return result.get("rows") or result.get("runs") or []


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def command_of(result: dict, name: str) -> str:
    if result.get("command"):
        return f"`{result['command']}`"
    if "script" in result and "args" in result:
        tag = name[len(f"seeds-{result['script']}-"):] if name != f"seeds-{result['script']}" else ""
        return f"`python bench/seeds.py {result['script']}{' --tag ' + tag if tag else ''} -- {' '.join(result['args'])}`"
    return "unknown"


def seeds_row(name: str, label: str) -> list:
    """[label, test mean ± std (seeds), validation mean, training s per run, machine, command] of a result."""
    result = load(name)
    if result is None:
        return [label, "not measured", "", "", "", ""]
    runs = seed_rows(result)
    return [label, f"{result['test_acc_mean']:.4f} ± {result['test_acc_std']:.4f} ({len(runs)} seeds)",
            f"{mean([r['best_val_acc'] for r in runs]):.4f}", f"{mean([r['train_seconds'] for r in runs]):.0f}",
            machine_of(result), command_of(result, name)]


SEEDS_HEADER = ["data and loader", "test accuracy", "validation (mean)", "training s per run", "machine", "command"]
