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


MANIFEST = ".written-by-export.json"  # the files a folder writer put into a folder, for its next write there


def usual_permissions(path: str) -> None:
    """Give the file `path` the permissions a new file gets (0666 less the umask), whatever its writer chose."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def files_under(folder: str) -> list[str]:
    """The paths of the files under `folder`, relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def written_before(path: str) -> list[str] | None:
    """The files of `path` that the last write_into_folder put there (None: a folder it never wrote)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as file:
            listed = json.load(file)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [name for name in listed  # only names inside the folder: an edited list cannot reach beyond it
            if isinstance(name, str) and not os.path.isabs(name) and ".." not in name.split(os.sep)]


def write_into_folder(path: str, write: Callable[[str], None]) -> list[str]:
    """Call `write(tmp_dir)` on a new temporary folder beside `path`; once it returns, move each file it
    wrote into `path` (one os.replace each, with the usual permissions) and remove the files that the
    previous write listed and this one no longer writes. Nothing else in `path` is touched: a folder
    that holds other files (a user's notes, .git) keeps them. A failure of the writer leaves `path` as it
    was (WriteError for the file system). Returns the files written, relative to `path`."""
    tmp_dir = f"{path.rstrip(os.sep)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.makedirs(tmp_dir)
        write(tmp_dir)
        written = files_under(tmp_dir)
        earlier = written_before(path) or []
        os.makedirs(path, exist_ok=True)
        save_json(os.path.join(path, MANIFEST), {"files": sorted(set(written) | set(earlier))})  # a kill now: all ours
        for name in written:
            os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
            os.replace(os.path.join(tmp_dir, name), os.path.join(path, name))
            usual_permissions(os.path.join(path, name))
        for name in set(earlier) - set(written):
            remove_quietly(os.path.join(path, name))
        save_json(os.path.join(path, MANIFEST), {"files": written})
        return written
    except OSError as error:
        raise WriteError(f"cannot write {path}: {one_line(error)}; files not yet moved into it are kept as they "
                         "were") from error
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


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
