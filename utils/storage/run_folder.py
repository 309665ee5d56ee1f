"""A run folder as a small state machine with one commit point.

    .lock          held (flock) by the one process that owns the folder; the kernel drops it when
                   that process ends, however it ends, so a killed run never leaves it stuck
    config.json    the run's settings, its first file: written once the data and model are set up,
                   before anything else (TensorBoard's events, the first epoch)
    last.pt        THE COMMIT RECORD. After epoch k it holds everything a resume needs: weights,
                   optimizer, gradient scaler, epoch and step, the history of every epoch, the best
                   epoch with its accuracy and its weights, and whether early stopping has fired
    best.pt        view: the best-on-validation weights and what a predictor needs, stamped with
                   the epoch they come from
    metrics.jsonl  view: last.pt's history, one line per epoch
    summary.json   written last, after the test of the final state; then the test reports

Committing an epoch replaces last.pt in one `os.replace`, then brings the views up to date. So at
every instant last.pt is the state after epoch k or after epoch k+1, never a mix; views that lag
behind it (a kill between the two steps) are verified against it and rewritten when the folder is
opened again. Every checkpoint the other parts of the repository add (tokenizers, teachers) goes
into the commit record through `commit`. A run that fails before writing anything (bad data, say)
removes the folder again if it created it. A folder that holds anything but a run of this repository
(no config.json naming its script) is refused before anything, even the lock, is written into it.
"""
from __future__ import annotations

import os
from typing import Any

from utils.errors import CheckpointError, ConfigError, RunFolderError
from utils.storage.checkpoint import FORMAT, best_view, load_checkpoint, save_checkpoint
from utils.storage.files import TEMP_FILE, json_safe, read_json, read_jsonl, remove_quietly, save_json, write_jsonl

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the folder is then not protected from a second run
    fcntl = None

LAST, BEST, METRICS, CONFIG, SUMMARY, LOCK = "last.pt", "best.pt", "metrics.jsonl", "config.json", "summary.json", ".lock"


def folder_contents(path: str) -> list[str]:
    """The names in the folder `path` that someone put there, sorted: all but the lock and temporary
    files of unfinished writes ([] when there is no such folder)."""
    if not os.path.isdir(path):
        return []
    return sorted(name for name in os.listdir(path) if name != LOCK and not TEMP_FILE.search(name))


def refuse_foreign_folder(path: str) -> None:
    """Raise RunFolderError when `path` is a folder that is neither empty nor a run's (its config.json
    names the script that made it), before anything is written into it."""
    names = folder_contents(path)
    if not names:
        return
    try:
        marked = "script" in read_json(os.path.join(path, CONFIG))
    except (CheckpointError, TypeError):
        marked = False
    if not marked:
        raise RunFolderError(f"{path} is not a run folder of this repository (it holds {names[0]!r} and no run's "
                             "config.json): choose a new or empty --out-dir")


def load_saved_config(run_dir: str) -> dict[str, Any]:
    """The config.json saved in `run_dir`, as a dict; {} for a run killed before it saved one
    (the flags on the command line then describe it)."""
    if not os.path.isdir(run_dir):
        raise ConfigError(f"cannot resume: {run_dir} is not a run folder")
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        return {}
    try:
        saved = read_json(path)
    except CheckpointError as error:
        raise ConfigError(f"cannot resume: {error}") from error
    if not isinstance(saved, dict) or "script" not in saved:
        raise ConfigError(f"cannot resume: {run_dir} is not a run folder of this repository ({path} is not a "
                          "run's settings)")
    return saved


class RunFolder:
    """The folder of one training run: its lock, its commit step and its repair on resume.

    Only the writer (the main process) locks, writes and repairs; other processes only read.
    """

    def __init__(self, path: str, writer: bool = True, claim: bool = True) -> None:
        self.path = path
        self.writer = writer
        self.claim = claim  # to hold a run: a folder that holds anything else is refused (False: only lock it)
        self.notes: list[str] = []  # what opening the folder repaired, for the caller to print
        self._lock_fd: int | None = None
        self._created = False  # this run made the folder, so may remove it again if it stays empty
        self._best_epoch_on_disk: int | None = None

    def file(self, name: str) -> str:
        """The path of `name` inside the folder."""
        return os.path.join(self.path, name)

    # ownership ---------------------------------------------------------------------------------
    def __enter__(self) -> "RunFolder":
        if self.writer:
            if self.claim:
                refuse_foreign_folder(self.path)  # before the lock: nothing is written into what is not ours
            self._create()
            self._lock()
            self._remove_leftovers()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: Any) -> None:
        if exc_type is not None and self._created:
            self._remove_if_empty()  # a run that failed before writing anything leaves no folder behind
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _remove_if_empty(self) -> None:
        if set(os.listdir(self.path)) <= {LOCK}:
            remove_quietly(self.file(LOCK))
            try:
                os.rmdir(self.path)
            except OSError:  # something appeared in it meanwhile: keep it
                pass

    def _create(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunFolderError(f"{self.path} is a file, not a folder: choose another --out-dir")
        self._created = not os.path.isdir(self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"cannot create the run folder {self.path} ({error.strerror}): "
                                 "choose a writable --out-dir") from error
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunFolderError(f"the run folder {self.path} is not writable: choose a writable --out-dir")

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            descriptor = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise RunFolderError(f"cannot create {self.file(LOCK)} ({error.strerror}): "
                                 "choose a writable --out-dir") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise RunFolderError(f"{self.path} is in use by another run (process {owner}): wait for it to end, "
                                 "or choose another --out-dir") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = descriptor

    def _remove_leftovers(self) -> None:
        for name in os.listdir(self.path):
            if TEMP_FILE.search(name):
                remove_quietly(self.file(name))

    # state -------------------------------------------------------------------------------------
    def has_commit(self) -> bool:
        """True when at least one epoch has been committed here."""
        return os.path.isfile(self.file(LAST))

    def open(self, resume: bool) -> dict[str, Any] | None:
        """The committed state to continue from (None for a new run), after repairing the views.

        A new run refuses a folder that already holds a committed epoch; a folder with settings
        but no committed epoch (killed before its first commit) is simply started again. A resume
        needs a committed epoch.
        """
        if not resume:
            if self.has_commit():
                raise RunFolderError(f"{self.path} already holds a run: continue it with --resume {self.path}, "
                                     "or choose another --out-dir")
            return None
        if not self.has_commit():
            raise RunFolderError(f"{self.path} has no completed epoch yet, so there is nothing to resume: start "
                                 "it again with the command that started it")
        state = load_checkpoint(self.file(LAST))
        if state.get("format") != FORMAT:
            raise RunFolderError(f"{self.file(LAST)} was written by another version of this repository "
                                 "and cannot be resumed exactly: start a new run")
        if self.writer:
            self.repair(state)
        return state

    def repair(self, state: dict[str, Any]) -> None:
        """Make the views agree with the commit record `state`; note what had to be rewritten."""
        stamped = None
        if state["best_epoch"]:
            try:
                stamped = load_checkpoint(self.file(BEST)).get("epoch")
            except CheckpointError:
                stamped = None
            self._best_epoch_on_disk = stamped
        expected = json_safe(state["history"])
        try:
            found = read_jsonl(self.file(METRICS))
        except CheckpointError:
            found = None
        rewritten = [name for name, stale in ((BEST, bool(state["best_epoch"]) and stamped != state["best_epoch"]),
                                              (METRICS, found != expected)) if stale]
        self.sync_views(state)
        if rewritten:
            self.notes.append(f"repaired {', '.join(rewritten)} from {LAST} (epoch {state['epoch']}): "
                              "the previous run stopped between two writes")

    def commit(self, state: dict[str, Any]) -> None:
        """Record the state after an epoch: last.pt in one step, then the views."""
        if not self.writer:
            return
        save_checkpoint(self.file(LAST), {**state, "format": FORMAT})
        self.sync_views(state)

    def sync_views(self, state: dict[str, Any]) -> None:
        """Rewrite metrics.jsonl, and best.pt when its epoch differs from the record's best epoch."""
        write_jsonl(self.file(METRICS), state["history"])
        if state["best_epoch"] and self._best_epoch_on_disk != state["best_epoch"]:
            save_checkpoint(self.file(BEST), best_view(state))
            self._best_epoch_on_disk = state["best_epoch"]

    def save_config(self, config: dict[str, Any]) -> None:
        """Write config.json (before the first epoch, and again on resume)."""
        if self.writer:
            save_json(self.file(CONFIG), config)

    def saved_config(self) -> dict[str, Any]:
        """The settings in config.json ({} when there is none)."""
        return read_json(self.file(CONFIG)) if os.path.isfile(self.file(CONFIG)) else {}

    def forget_results(self) -> None:
        """Remove summary.json before training further: it describes a state that is no longer final."""
        if self.writer:
            remove_quietly(self.file(SUMMARY))

    def describe(self, epoch: int, script_name: str) -> str:
        """What is kept after a stop at committed epoch `epoch`, and the command that resumes."""
        if epoch:
            command = f"python train_{script_name}.py --resume {self.path}"
            return f"{self.file(LAST)} holds epoch {epoch}. Resume with: {command}"
        return "no epoch was completed, so nothing was saved: run the same command again"
