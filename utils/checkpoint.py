"""Atomic file writes and checkpoints that hold plain types only (weights_only-loadable)."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

import torch


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def save_json(path: str, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    atomic_write(path, write)


def write_jsonl(path: str, rows: list[Any]) -> None:
    """Write one JSON object per line, atomically."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    atomic_write(path, write)


def read_jsonl(path: str) -> list[dict]:
    """All JSON objects of a .jsonl file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Save a dict of plain types and tensors with torch.save, atomically."""
    atomic_write(path, lambda tmp_path: torch.save(state, tmp_path))


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True: no arbitrary unpickling)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} cannot be read: {error}") from error
