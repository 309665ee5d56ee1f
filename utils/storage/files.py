"""Atomic file writes and always-valid JSON.

Every file a run writes goes through `atomic_write`: the content is written to a temporary file
beside the target (`NAME.<pid>.<random>.tmp`), flushed to disk, then moved onto the target in one
`os.replace`. A crash or `kill -9` at any moment leaves the old file or the new one, never half
of one; a leftover temporary file is removed by the next run that opens the folder (or, in a
shared folder such as the teacher cache, by the next write there once its writer has ended).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from typing import Any, Callable

from utils.errors import CheckpointError, WriteError, one_line

TEMP_FILE = re.compile(r"\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")  # the end of atomic_write's temporary file names


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step.

    The file gets the usual permissions (0666 less the umask). Any failure of the writer or of
    the file system raises WriteError naming `path`; the previous `path` is then untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # matches TEMP_FILE
    try:
        os.makedirs(folder, exist_ok=True)
        os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
        write(tmp_path)
        with open(tmp_path, "rb+") as f:  # on disk before it replaces the old file
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as error:
        remove_quietly(tmp_path)
        if isinstance(error, (OSError, RuntimeError)):
            # torch.save reports a full disk as a RuntimeError
            raise WriteError(f"cannot write {path}: {one_line(error)}; the previous file is kept") from error
        raise


def atomic_folder(path: str, write: Callable[[str], None]) -> None:
    """Call `write(tmp_dir)` on a new temporary folder beside `path`, then put the finished folder at
    `path`: a folder already there is replaced only after the new one is complete. A failure of the
    writer removes the temporary folder and leaves `path` as it was (WriteError for the file system)."""
    tmp_dir, old = (f"{path}.{os.getpid()}.{secrets.token_hex(4)}.{end}" for end in ("tmp", "old"))
    try:
        os.makedirs(tmp_dir)
        write(tmp_dir)
        if os.path.isdir(path):
            os.replace(path, old)
        os.replace(tmp_dir, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if isinstance(error, OSError):
            raise WriteError(f"cannot write {path}: {one_line(error)}; the previous folder is kept") from error
        raise


def cache_dir(env_var: str, name: str) -> str:
    """A cache folder of this project: $`env_var` if set, else `name` in the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache, then cnn-rnn-dnn-classification)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(env_var) or os.path.join(root, "cnn-rnn-dnn-classification", name)


def process_is_alive(pid: int) -> bool:
    """Whether a process with id `pid` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


def remove_stale_temp_files(folder: str) -> None:
    """Remove atomic_write's temporary files in `folder` whose writing process has ended (killed
    mid-write), in a folder that several runs share without a lock, such as a cache."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = TEMP_FILE.search(name)
        if match and not process_is_alive(int(match.group("pid"))):
            remove_quietly(os.path.join(folder, name))


def remove_quietly(path: str) -> None:
    """Remove `path` if it exists, ignoring errors (cleanup after a failed write)."""
    try:
        os.remove(path)
    except OSError:
        pass


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, so that it is valid JSON (no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of `obj` (non-finite floats become null)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def save_json(path: str, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    save_text(path, dumps(obj, indent=2) + "\n")


def write_jsonl(path: str, rows: list[Any]) -> None:
    """Write one JSON object per line, atomically."""
    save_text(path, "".join(dumps(row) + "\n" for row in rows))


def save_text(path: str, text: str) -> None:
    """Write `text` (UTF-8), atomically."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def read_json(path: str) -> Any:
    """The JSON value in `path`; a missing, unreadable or malformed file raises CheckpointError."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} cannot be read ({one_line(error)}); it is missing, truncated "
                              "or not JSON") from error


def read_jsonl(path: str) -> list[dict]:
    """All JSON objects of a .jsonl file, in order; a malformed line raises CheckpointError."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} cannot be read ({one_line(error)})") from error
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CheckpointError(f"{path}, line {number}: not JSON ({error.msg}); the file is truncated "
                                      "or was edited") from error
            if not isinstance(row, dict):
                raise CheckpointError(f"{path}, line {number}: not a JSON object; the file was edited")
            rows.append(row)
    return rows
